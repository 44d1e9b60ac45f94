public import FluentKit
import Foundation
import Instrumentation
public import Logging
import Metrics
import ServiceContextModule
public import ServiceKit
public import ServiceLifecycle
import Tracing

/// What a service does with one event type. The handler runs inside a transaction of the service's database, which
/// also records the event id in the inbox: it commits once per event, however often the event is delivered.
public struct EventSubscription: Sendable {
    public var type: String
    public var handle: @Sendable (EventEnvelope, any Database) async throws -> Void

    public init(_ type: String, handle: @escaping @Sendable (EventEnvelope, any Database) async throws -> Void) {
        self.type = type
        self.handle = handle
    }
}

/// How a consumer treats deliveries (`EVENT_VISIBILITY_TIMEOUT`, `EVENT_MAX_DELIVERIES`, `EVENT_BATCH_SIZE`,
/// `EVENT_CONCURRENCY`).
public struct EventConsumerSettings: Sendable, Equatable {
    /// A delivered message not acknowledged for this long is claimed again (by any member of the group).
    public var visibilityTimeout: Duration = .seconds(30)
    /// After this many failed deliveries a message moves to the dead-letter stream.
    public var maximumDeliveries = 5
    public var batchSize = 32
    /// Handlers running at once (1: strictly in stream order).
    public var concurrency = 8

    public init() {}

    init(environment: [String: String]) throws(ServiceKitError) {
        if let text = environment["EVENT_VISIBILITY_TIMEOUT"] {
            guard let timeout = ServiceRuntime.parseDuration(text), timeout >= .milliseconds(100) else {
                throw ServiceKitError.configuration(
                    "EVENT_VISIBILITY_TIMEOUT", "must be a duration of at least 100ms, not \"\(text)\"")
            }
            visibilityTimeout = timeout
        }
        func count(_ variable: String, _ range: ClosedRange<Int>) throws(ServiceKitError) -> Int? {
            guard let text = environment[variable] else { return nil }
            guard let count = Int(text), range.contains(count) else {
                throw ServiceKitError.configuration(
                    variable, "must be a number from \(range.lowerBound) to \(range.upperBound), not \"\(text)\"")
            }
            return count
        }
        maximumDeliveries = try count("EVENT_MAX_DELIVERIES", 1...1000) ?? maximumDeliveries
        batchSize = try count("EVENT_BATCH_SIZE", 1...1000) ?? batchSize
        concurrency = try count("EVENT_CONCURRENCY", 1...256) ?? concurrency
    }
}

/// Consumes one event type as a member of the service's consumer group: acknowledges a message only after the
/// handler's transaction committed; claims messages other members left unacknowledged past the visibility timeout;
/// moves a message that failed `maximumDeliveries` times (or is malformed) to the dead-letter stream and logs it.
/// Broker outages are waited out with backoff. Metrics: `events_consumed_total`, `events_redeliveries_total`,
/// `events_duplicates_total`, `events_handler_failures_total`, `events_dead_letters_total`, `events_consumer_lag`.
public struct EventConsumer: Service {
    let subscription: EventSubscription
    let group: String
    let consumer: String
    let database: ServiceDatabase
    let broker: BrokerLocation
    let settings: EventConsumerSettings
    let logger: Logger

    public init(
        subscription: EventSubscription, group: String, consumer: String, database: ServiceDatabase,
        broker: BrokerLocation,
        settings: EventConsumerSettings, logger: Logger
    ) {
        self.subscription = subscription
        self.group = group
        self.consumer = consumer
        self.database = database
        self.broker = broker
        self.settings = settings
        self.logger = logger
    }

    struct Meters {
        let consumed, redeliveries, duplicates, failures, deadLetters, trimmed: Counter
        let lag: Gauge

        init(type: String, group: String) {
            let dimensions = [("type", type), ("group", group)]
            consumed = Counter(label: "events_consumed_total", dimensions: dimensions)
            redeliveries = Counter(label: "events_redeliveries_total", dimensions: dimensions)
            duplicates = Counter(label: "events_duplicates_total", dimensions: dimensions)
            failures = Counter(label: "events_handler_failures_total", dimensions: dimensions)
            deadLetters = Counter(label: "events_dead_letters_total", dimensions: dimensions)
            lag = Gauge(label: "events_consumer_lag", dimensions: dimensions)
            trimmed = Counter(label: "events_trimmed_total", dimensions: dimensions)
        }
    }

    public func run() async throws {
        let stream = EventEnvelope.stream(for: subscription.type)
        let meters = Meters(type: subscription.type, group: group)
        let claimEvery = min(settings.visibilityTimeout / 2, .seconds(5))
        var connection = BrokerConnection(location: broker)
        var delay = Duration.milliseconds(100)
        var failing = false
        var nextClaim = ContinuousClock.now
        var nextLag = ContinuousClock.now
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                guard database.isMigrated else {
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                }
                let (broker, fresh) = try await connection.open()
                if fresh {
                    try await broker.createGroup(stream: stream, group: group)
                    logger.info(
                        failing ? "consuming events again" : "consuming events",
                        metadata: ["type": "\(subscription.type)", "group": "\(group)", "broker": "\(broker.address)"])
                    failing = false
                }
                if ContinuousClock.now >= nextClaim {
                    let claimed = try await broker.claimIdle(
                        stream: stream, group: group, consumer: consumer, minimumIdle: settings.visibilityTimeout,
                        count: settings.batchSize)
                    meters.redeliveries.increment(by: claimed.count)
                    try await process(claimed, stream: stream, broker: broker, meters: meters)
                    if claimed.count < settings.batchSize { nextClaim = .now + claimEvery }
                }
                if ContinuousClock.now >= nextLag {
                    // Housekeeping never stops consumption: a failure here is logged, and reading goes on.
                    nextLag = .now + .seconds(2)
                    do {
                        meters.lag.record(try await broker.backlog(stream: stream, group: group))
                        meters.trimmed.increment(by: try await broker.trim(stream: stream))
                    } catch {
                        logger.debug("cannot measure or trim the stream", metadata: ["error": "\(error)"])
                    }
                }
                // A shutdown ends the wait for new messages at once (none is taken while waiting).
                let batch = try await cancelWhenGracefulShutdown {
                    try await broker.readNew(
                        stream: stream, group: group, consumer: consumer, count: settings.batchSize,
                        wait: min(.seconds(1), claimEvery))
                }
                try await process(batch, stream: stream, broker: broker, meters: meters)
                delay = .milliseconds(100)
            } catch {
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                if !failing {
                    logger.warning(
                        "cannot consume events; retrying",
                        metadata: ["type": "\(subscription.type)", "error": "\(error)", "broker": "\(broker.address)"])
                    failing = true
                }
                await connection.drop()
                let pause = delay
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
                delay = min(delay * 2, .seconds(5))
            }
        }
        await connection.drop()
    }

    /// Handles a batch: dead-letters what cannot be handled, runs up to `concurrency` handlers at once and
    /// acknowledges each message whose transaction committed. Only this task talks to the broker; it throws only
    /// what the broker throws, and a failing handler leaves its message pending.
    func process(_ batch: [StreamDelivery], stream: String, broker: any EventBroker, meters: Meters) async throws {
        var runnable: [(StreamDelivery, EventEnvelope)] = []
        for delivery in batch {
            guard let event = EventEnvelope(fields: delivery.fields) else {
                try await deadLetter(
                    delivery, stream: stream, reason: "malformed: not an event (id, type, occurred_at, payload)",
                    broker: broker, meters: meters)
                continue
            }
            if delivery.deliveries > settings.maximumDeliveries {
                try await deadLetter(
                    delivery, stream: stream, reason: "failed \(delivery.deliveries - 1) deliveries", broker: broker,
                    meters: meters)
                continue
            }
            runnable.append((delivery, event))
        }
        try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            var pending = runnable[...]
            func startNext() {
                guard let (delivery, event) = pending.popFirst() else { return }
                group.addTask { (delivery.id, await self.handle(delivery, event, stream: stream, meters: meters)) }
            }
            for _ in 0..<settings.concurrency { startNext() }
            while let (id, committed) = try await group.next() {
                if committed { try await broker.acknowledge(stream: stream, group: self.group, ids: [id]) }
                startNext()
            }
        }
    }

    /// Runs the handler in a transaction with the inbox; true when the event is now processed (or already was).
    func handle(_ delivery: StreamDelivery, _ event: EventEnvelope, stream: String, meters: Meters) async -> Bool {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(delivery.fields, into: &context, using: EventFieldsExtractor())
        let handle = subscription.handle
        do {
            let db = database.database(logger: logger)
            let first = try await withSpan("consume \(event.type)", context: context, ofKind: .consumer) { span in
                span.attributes["messaging.message.id"] = event.id
                span.attributes["messaging.destination.name"] = stream
                return try await db.transaction { transaction in
                    if try await InboxRow.find(event.id, on: transaction) != nil { return false }
                    try await InboxRow(id: event.id, type: event.type).create(on: transaction)
                    try await handle(event, transaction)
                    return true
                }
            }
            if first {
                meters.consumed.increment()
            } else {
                meters.duplicates.increment()
                logger.debug("event already processed", metadata: ["event_id": "\(event.id)"])
            }
            return true
        } catch {
            meters.failures.increment()
            logger.warning(
                "event handler failed; the event will be delivered again",
                metadata: [
                    "event_id": "\(event.id)", "type": "\(event.type)", "delivery": "\(delivery.deliveries)",
                    "max_deliveries": "\(settings.maximumDeliveries)", "retry_in": "\(settings.visibilityTimeout)",
                    "error": "\(String(reflecting: error))",
                ])
            return false
        }
    }

    func deadLetter(_ delivery: StreamDelivery, stream: String, reason: String, broker: any EventBroker, meters: Meters)
        async throws
    {
        var fields: EventFields = delivery.fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        fields += [
            ("dead_letter_reason", reason), ("dead_letter_group", group), ("dead_letter_message_id", delivery.id),
            ("dead_letter_deliveries", String(delivery.deliveries)),
        ]
        _ = try await broker.append(stream: EventEnvelope.deadLetterStream(for: subscription.type), messages: [fields])
        try await broker.acknowledge(stream: stream, group: group, ids: [delivery.id])
        meters.deadLetters.increment()
        logger.error(
            "event moved to the dead-letter stream",
            metadata: [
                "event_id": "\(delivery.fields["id"] ?? "?")", "message_id": "\(delivery.id)", "reason": "\(reason)",
                "dead_letter_stream": "\(EventEnvelope.deadLetterStream(for: subscription.type))",
            ])
    }
}

/// The inbox (`event_inbox`): the ids of the events a consumer has processed, written in the handler's transaction.
final class InboxRow: Model, @unchecked Sendable {
    static let schema = "event_inbox"

    @ID(custom: "event_id", generatedBy: .user) var id: String?
    @Field(key: "type") var type: String
    @Timestamp(key: "processed_at", on: .create) var processedAt: Date?

    init() {}

    init(id: String, type: String) {
        self.id = id
        self.type = type
    }
}

/// Creates the inbox table.
public struct CreateInbox: AsyncMigration {
    public init() {}

    public func prepare(on database: any Database) async throws {
        try await database.schema(InboxRow.schema)
            .field("event_id", .string, .identifier(auto: false))
            .field("type", .string, .required)
            .field("processed_at", .datetime)
            .create()
    }

    public func revert(on database: any Database) async throws {
        try await database.schema(InboxRow.schema).delete()
    }
}
