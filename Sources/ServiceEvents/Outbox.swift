public import FluentKit
import Foundation
import Instrumentation
import Logging
import Metrics
import SQLKit
import ServiceContextModule
import ServiceKit
import ServiceLifecycle
import Synchronization

/// An event as it travels: its id (the consumers' deduplication key), type, when it happened, its JSON payload and
/// the W3C `traceparent` of the transaction that produced it.
public struct EventEnvelope: Sendable, Equatable {
    public var id: String
    public var type: String
    public var occurredAt: Date
    /// The payload as JSON text.
    public var payload: String
    public var traceparent: String?

    public init(id: String, type: String, occurredAt: Date, payload: String, traceparent: String?) {
        self.id = id
        self.type = type
        self.occurredAt = occurredAt
        self.payload = payload
        self.traceparent = traceparent
    }

    /// The stream an event type travels on: `events:order.created`.
    public static func stream(for type: String) -> String { "events:" + type }
    /// Where messages of a stream that cannot be processed go.
    public static func deadLetterStream(for type: String) -> String { stream(for: type) + ":dead-letter" }

    /// The broker fields: id, type, occurred_at (ISO 8601, milliseconds), payload, traceparent.
    public var fields: EventFields {
        var fields: EventFields = [
            ("id", id), ("type", type), ("occurred_at", occurredAt.formatted(Self.timestamp)), ("payload", payload),
        ]
        if let traceparent { fields.append(("traceparent", traceparent)) }
        return fields
    }

    /// The event a broker message carries; nil when a field is missing or malformed.
    public init?(fields: [String: String]) {
        guard let id = fields["id"], !id.isEmpty, let type = fields["type"], !type.isEmpty,
            let payload = fields["payload"],
            let text = fields["occurred_at"], let occurredAt = try? Date(text, strategy: Self.timestamp)
        else { return nil }
        self.init(id: id, type: type, occurredAt: occurredAt, payload: payload, traceparent: fields["traceparent"])
    }

    /// The payload decoded.
    public func decode<Payload: Decodable>(_: Payload.Type) throws -> Payload {
        try JSONDecoder().decode(Payload.self, from: Data(payload.utf8))
    }

    static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}

/// Writes events into the producer's own database in the same transaction as the state change (the transactional
/// outbox); `OutboxRelay` publishes them. An event is thus stored exactly when the change is, whatever crashes.
public struct EventPublisher: Sendable {
    let database: any Database
    let types: Set<String>

    /// Adds the event to the transaction. Only types the service declares (`publishes`) may be published.
    @discardableResult
    public func publish<Payload: Encodable>(_ type: String, _ payload: Payload, id: UUID = UUID()) async throws
        -> EventEnvelope
    {
        precondition(types.contains(type), "\(type) is not in the service's publishes: \(types.sorted())")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var carrier: [String: String] = [:]
        if let context = ServiceContext.current {
            InstrumentationSystem.instrument.inject(context, into: &carrier, using: EventFieldsInjector())
        }
        let envelope = EventEnvelope(
            id: id.uuidString.lowercased(), type: type, occurredAt: Date(),
            payload: String(decoding: try encoder.encode(payload), as: UTF8.self), traceparent: carrier["traceparent"])
        try await OutboxRow(envelope).create(on: database)
        return envelope
    }
}

/// A service's outbox: the transactions that publish, and the signal that wakes the relay after they commit.
public final class Outbox: Sendable {
    let types: Set<String>
    let wakeup = Wakeup()

    /// An outbox for the given event types (services.yaml's `publishes`); `publish` refuses any other type.
    public init(types: [String]) {
        self.types = Set(types)
    }

    /// Runs `body` in one transaction of `database`; the events it publishes commit or roll back with its changes, and
    /// the relay is woken once they have committed.
    @discardableResult
    public func transaction<T: Sendable>(
        on database: any Database, _ body: @escaping @Sendable (any Database, EventPublisher) async throws -> T
    ) async throws -> T {
        let types = self.types
        let result = try await database.transaction { transaction in
            try await body(transaction, EventPublisher(database: transaction, types: types))
        }
        wakeup.signal()
        return result
    }
}

/// Publishes the outbox's pending rows to the broker in the order they were written, then marks them sent. While the
/// broker is unreachable the rows wait (the service keeps working) and the relay retries with backoff; it catches up
/// when the broker returns. A crash between publishing and marking publishes those rows again: consumers deduplicate
/// by event id (the inbox). Sent rows are deleted after an hour.
///
/// A stream the broker refuses (an error reply, such as WRONGTYPE when something else wrote a plain key of that name)
/// holds back only its own type: its rows wait, in order, and are retried with backoff up to 30 s, while every other
/// type is published as usual.
struct OutboxRelay: Service {
    let outbox: Outbox
    let database: ServiceDatabase
    let broker: BrokerLocation
    let logger: Logger
    var batchSize = 256

    func run() async throws {
        let published = Counter(label: "events_published_total")
        let pendingGauge = Gauge(label: "events_outbox_pending")
        let failures = Counter(label: "events_publish_failures_total")
        var connection = BrokerConnection(location: broker)
        var delay = Duration.milliseconds(100)
        var failing = false
        var lastPrune = ContinuousClock.now
        /// Types whose stream refused the last append: not before `until`, then with the next backoff.
        var refused: [String: (until: ContinuousClock.Instant, backoff: Duration)] = [:]
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                do {
                    guard database.isMigrated else {
                        await outbox.wakeup.wait(timeout: .milliseconds(100))
                        continue
                    }
                    let db = database.database(logger: logger)
                    let now = ContinuousClock.now
                    let waiting = refused.filter { $0.value.until > now }.map(\.key)
                    var query = OutboxRow.query(on: db).filter(\.$publishedAt == nil)
                    if !waiting.isEmpty { query = query.filter(\.$type !~ waiting) }
                    let rows = try await query.sort(\.$id).limit(batchSize).all()
                    pendingGauge.record(
                        rows.count < batchSize
                            ? rows.count : try await OutboxRow.query(on: db).filter(\.$publishedAt == nil).count())
                    if rows.isEmpty {
                        if ContinuousClock.now - lastPrune > .seconds(60) {
                            lastPrune = .now
                            try await OutboxRow.query(on: db).filter(\.$publishedAt < Date().addingTimeInterval(-3600))
                                .delete()
                        }
                        await outbox.wakeup.wait(timeout: .seconds(1))
                        continue
                    }
                    let broker = try await connection.open().broker
                    // Consecutive rows of one type go in one pipelined append; the order is kept across types too.
                    // A type refused in this batch keeps its later rows back, so its order holds.
                    var sent: [Int] = []
                    var held: Set<String> = []
                    var start = 0
                    while start < rows.count {
                        var end = start + 1
                        while end < rows.count, rows[end].type == rows[start].type { end += 1 }
                        let segment = rows[start..<end]
                        let type = rows[start].type
                        start = end
                        guard !held.contains(type) else { continue }
                        do {
                            _ = try await broker.append(
                                stream: EventEnvelope.stream(for: type), messages: segment.map { $0.envelope.fields })
                            sent += segment.compactMap(\.id)
                            if refused.removeValue(forKey: type) != nil {
                                logger.info("publishing \(type) events again", metadata: ["type": "\(type)"])
                            }
                        } catch let error as EventsError where error.code == .redisReply {
                            held.insert(type)
                            failures.increment()
                            let backoff = min((refused[type]?.backoff ?? .milliseconds(50)) * 2, .seconds(30))
                            if refused[type] == nil {
                                logger.error(
                                    "the broker refuses \(type) events; they wait in the outbox, other types go on",
                                    metadata: [
                                        "type": "\(type)", "stream": "\(EventEnvelope.stream(for: type))",
                                        "error": "\(error)",
                                    ])
                            }
                            refused[type] = (.now + backoff, backoff)
                        }
                    }
                    if !sent.isEmpty {
                        try await OutboxRow.query(on: db).filter(\.$id ~~ sent).set(\.$publishedAt, to: Date()).update()
                    }
                    published.increment(by: sent.count)
                    if failing {
                        logger.info("publishing events again", metadata: ["broker": "\(broker.address)"])
                        failing = false
                    }
                    delay = .milliseconds(100)
                } catch {
                    failures.increment()
                    if !failing {
                        logger.warning(
                            "cannot publish events; they wait in the outbox",
                            metadata: ["error": "\(error)", "broker": "\(broker.address)"])
                        failing = true
                    }
                    await connection.drop()
                    await outbox.wakeup.wait(timeout: delay)
                    delay = min(delay * 2, .seconds(5))
                }
            }
        } onGracefulShutdown: {
            outbox.wakeup.signal()
        }
        await connection.drop()
    }
}

extension BrokerLocation {
    var address: String {
        switch kind {
        case .redis(let url): (try? RedisClient(url: url).address) ?? "redis"
        case .sqlite(let path): "sqlite://" + path
        }
    }
}

/// Wakes one waiter: the relay after a commit, or at shutdown.
final class Wakeup: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns when signalled (or at once if a signal came since the last wait), or after `timeout`.
    func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.state.withLock { state -> Bool in
                        if state.pending {
                            state.pending = false
                            return true
                        }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask {
                // Also when cancelled (the wait is over, or the caller was cancelled): the waiter above must resume
                // either way, and a spare signal is cleared below.
                try? await Task.sleep(for: timeout)
                self.signal()
            }
            await group.next()
            group.cancelAll()
        }
        state.withLock { $0.pending = false }
    }
}

struct EventFieldsInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}

struct EventFieldsExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }
}

/// A row of the outbox table (`event_outbox`), in the producer's database.
final class OutboxRow: Model, @unchecked Sendable {
    static let schema = "event_outbox"

    /// The order of publication.
    @ID(custom: "seq", generatedBy: .database) var id: Int?
    @Field(key: "event_id") var eventID: String
    @Field(key: "type") var type: String
    @Field(key: "payload") var payload: String
    @OptionalField(key: "traceparent") var traceparent: String?
    @Field(key: "occurred_at") var occurredAt: Date
    @OptionalField(key: "published_at") var publishedAt: Date?

    init() {}

    init(_ envelope: EventEnvelope) {
        eventID = envelope.id
        type = envelope.type
        payload = envelope.payload
        traceparent = envelope.traceparent
        occurredAt = envelope.occurredAt
    }

    var envelope: EventEnvelope {
        EventEnvelope(id: eventID, type: type, occurredAt: occurredAt, payload: payload, traceparent: traceparent)
    }
}

/// Creates the outbox table and its index of unsent rows.
public struct CreateOutbox: AsyncMigration {
    public init() {}

    public func prepare(on database: any Database) async throws {
        try await database.schema(OutboxRow.schema)
            .field("seq", .int64, .identifier(auto: true))
            .field("event_id", .string, .required)
            .field("type", .string, .required)
            .field("payload", .string, .required)
            .field("traceparent", .string)
            .field("occurred_at", .datetime, .required)
            .field("published_at", .datetime)
            .create()
        if let sql = database as? any SQLDatabase {
            try await sql.raw("CREATE INDEX event_outbox_unsent ON event_outbox (seq) WHERE published_at IS NULL").run()
        }
    }

    public func revert(on database: any Database) async throws {
        try await database.schema(OutboxRow.schema).delete()
    }
}
