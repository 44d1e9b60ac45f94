import FluentKit
import Foundation
import Logging
import NIOCore
import OrchestrateTestSupport
import ServiceKit
import Synchronization
import Testing

@testable import ServiceEvents

@Suite(.timeLimit(.minutes(5))) struct RESPDecoderTests {
    func decodeAll(_ text: String, splitEvery step: Int) throws -> [RESPValue] {
        var decoder = RESPDecoder()
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: step) {
            buffer.writeBytes(bytes[start..<min(start + step, bytes.count)])
            while let value = try decoder.decode(buffer: &buffer) { values.append(value) }
        }
        #expect(buffer.readableBytes == 0)
        return values
    }

    /// Every reply shape XREADGROUP and friends answer with, whole and arriving a byte at a time.
    @Test(arguments: [1, 3, 1000]) func repliesInAnyPieces(step: Int) throws {
        let text =
            "+OK\r\n-BUSYGROUP Consumer Group name already exists\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n"
            + "*2\r\n*2\r\n$3\r\nabc\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n:7\r\n$4\r\nx\r\ny\r\n"
        let values = try decodeAll(text, splitEvery: step)
        #expect(values.count == 8)
        #expect(values[0] == .simpleString("OK"))
        #expect(values[1] == .error("BUSYGROUP Consumer Group name already exists"))
        #expect(values[2] == .integer(42))
        #expect(values[3].string == "hello")
        #expect(values[4].isNull && values[5].isNull)
        let nested = try #require(values[6].array)
        #expect(nested[0].array?[0].string == "abc")
        #expect(nested[0].array?[1].array?.map(\.string) == ["a", ""])
        #expect(nested[1] == .integer(7))
        #expect(values[7].string == "x\r\ny", "a bulk string may hold CRLF")
    }

    @Test func malformedRepliesThrow() {
        for text in ["?what\r\n", ":12a\r\n", "$3\r\nabcXY", "*-5\r\n", "$-7\r\n", "+OK\rX"] {
            var decoder = RESPDecoder()
            var buffer = ByteBuffer(string: text)
            #expect(throws: EventsError.self, "\(text.debugDescription)") {
                _ = try decoder.decode(buffer: &buffer)
            }
        }
        var decoder = RESPDecoder()
        var deep = ByteBuffer(string: String(repeating: "*1\r\n", count: 40) + ":1\r\n")
        #expect(throws: EventsError.self) { _ = try decoder.decode(buffer: &deep) }
    }

    @Test func commandsAreArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RESPValue.encode(command: ["XADD", "s", "*", "k", "välue"], into: &buffer)
        #expect(String(buffer: buffer) == "*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$1\r\nk\r\n$6\r\nvälue\r\n")
    }
}

/// Both brokers, one set of expectations: Redis Streams on a real redis-server, and the embedded SQLite log.
enum BrokerKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case redis, sqlite
    var testDescription: String { rawValue }
}

/// A broker for one test, and what to remove after it.
/// An SQLite producer database with the outbox and its relay running to `test`'s broker; the relay is cancelled and
/// the database shut down afterwards, also when `body` fails.
func withRelay(
    _ test: TestBroker, types: [String], _ body: (ServiceDatabase, Outbox) async throws -> Void
) async throws {
    let database = try ServiceDatabase(
        url: "sqlite://" + test.directory.appendingPathComponent("producer.sqlite").path, password: nil,
        defaultFile: "", migrations: [CreateOutbox()], logger: Logger(label: "test"))
    try await closing(database, close: { await $0.shutdown() }) { database in
        try await database.migrate()
        let outbox = Outbox(types: types)
        let relay = OutboxRelay(
            outbox: outbox, database: database, broker: test.location, logger: Logger(label: "relay"))
        try await closing(
            Task { try await relay.run() },
            close: {
                $0.cancel(); _ = await $0.result
            }
        ) { _ in
            try await body(database, outbox)
        }
    }
}

final class TestBroker: Sendable {
    let location: BrokerLocation
    let redis: RedisServer?
    let directory: URL

    static func make(_ kind: BrokerKind, _ name: String) async throws -> TestBroker {
        let directory = try ExternalTool.temporaryDirectory(name)
        switch kind {
        case .redis:
            let redis = try await RedisServer.start(name)
            return TestBroker(location: try BrokerLocation(url: redis.url), redis: redis, directory: directory)
        case .sqlite:
            let path = directory.appendingPathComponent("events.sqlite").path
            return TestBroker(location: try BrokerLocation(url: "sqlite://" + path), redis: nil, directory: directory)
        }
    }

    init(location: BrokerLocation, redis: RedisServer?, directory: URL) {
        self.location = location
        self.redis = redis
        self.directory = directory
    }

    func remove() {
        redis?.remove()
        try? FileManager.default.removeItem(at: directory)
    }
}

func fields(_ pairs: (String, String)...) -> EventFields { pairs.map { (name: $0.0, value: $0.1) } }

@Suite(.timeLimit(.minutes(10)), .serialized) struct EventBrokerTests {
    /// The consumer-group semantics both brokers promise: read once per group, pending until acknowledged, claimed
    /// again after the idle time with the delivery counted, a group created later reads from the start.
    @Test(.requires("redis-server", RedisServer.isInstalled), arguments: BrokerKind.allCases)
    func consumerGroupSemantics(kind: BrokerKind) async throws {
        let test = try await TestBroker.make(kind, "broker-\(kind)")
        defer { test.remove() }
        let broker = try await test.location.connect()
        let ids = try await broker.append(stream: "s", messages: (1...3).map { fields(("n", "\($0)")) })
        #expect(ids.count == 3 && Set(ids).count == 3)
        try await broker.createGroup(stream: "s", group: "g")
        try await broker.createGroup(stream: "s", group: "g")  // again: no error

        let first = try await broker.readNew(stream: "s", group: "g", consumer: "a", count: 2, wait: .milliseconds(50))
        #expect(first.map { $0.fields["n"] } == ["1", "2"])
        #expect(first.map(\.deliveries) == [1, 1])
        let second = try await broker.readNew(
            stream: "s", group: "g", consumer: "a", count: 10, wait: .milliseconds(50))
        #expect(second.map { $0.fields["n"] } == ["3"])
        let start = ContinuousClock.now
        #expect(
            try await broker.readNew(stream: "s", group: "g", consumer: "a", count: 10, wait: .milliseconds(200))
                .isEmpty)
        #expect(ContinuousClock.now - start >= .milliseconds(150), "an empty read waits")
        #expect(try await broker.backlog(stream: "s", group: "g") == 3)

        try await broker.acknowledge(stream: "s", group: "g", ids: first.map(\.id))
        #expect(try await broker.backlog(stream: "s", group: "g") == 1)
        // Not idle long enough yet: nothing to claim.
        #expect(
            try await broker.claimIdle(stream: "s", group: "g", consumer: "b", minimumIdle: .seconds(10), count: 10)
                .isEmpty)
        try await Task.sleep(for: .milliseconds(120))
        let claimed = try await broker.claimIdle(
            stream: "s", group: "g", consumer: "b", minimumIdle: .milliseconds(100), count: 10)
        #expect(claimed.map { $0.fields["n"] } == ["3"])
        #expect(claimed.map(\.deliveries) == [2])
        try await Task.sleep(for: .milliseconds(120))
        let again = try await broker.claimIdle(
            stream: "s", group: "g", consumer: "a", minimumIdle: .milliseconds(100), count: 10)
        #expect(again.map(\.deliveries) == [3])
        try await broker.acknowledge(stream: "s", group: "g", ids: again.map(\.id))
        #expect(try await broker.backlog(stream: "s", group: "g") == 0)

        // A second group reads everything from the beginning, independently; a new message reaches both.
        try await broker.createGroup(stream: "s", group: "other")
        #expect(
            try await broker.readNew(stream: "s", group: "other", consumer: "x", count: 10, wait: .milliseconds(50))
                .count == 3)
        _ = try await broker.append(stream: "s", messages: [fields(("n", "4"))])
        #expect(
            try await broker.readNew(stream: "s", group: "g", consumer: "a", count: 10, wait: .seconds(1)).map {
                $0.fields["n"]
            } == ["4"])
        #expect(try await broker.messages(stream: "s", limit: 100).count == 4)
        await broker.close()
    }

    /// The Redis client reconnects: a command after the server went away and came back works.
    @Test(.requires("redis-server", RedisServer.isInstalled))
    func redisClientReconnects() async throws {
        let redis = try await RedisServer.start("redis-reconnect")
        defer { redis.remove() }
        let client = try RedisClient(url: redis.url)
        #expect(try await client.command("PING") == .simpleString("PONG"))
        await redis.stop()
        await #expect(throws: EventsError.self) { try await client.command("PING") }
        try await redis.start()
        #expect(try await client.command("PING") == .simpleString("PONG"))
        // An error reply is the command's error, not the connection's.
        await #expect(throws: EventsError.self) { try await client.command("NOSUCHCOMMAND") }
        #expect(try await client.command("PING") == .simpleString("PONG"))
        await client.close()
    }

    @Test func brokerURLs() throws {
        #expect(try BrokerLocation(url: nil).kind == .sqlite(path: ".orchestrate/data/events.sqlite"))
        #expect(try BrokerLocation(url: "sqlite:///tmp/e.sqlite").kind == .sqlite(path: "/tmp/e.sqlite"))
        #expect(try BrokerLocation(url: "redis://127.0.0.1:6380/2").kind == .redis(url: "redis://127.0.0.1:6380/2"))
        for bad in ["amqp://x", "redis://", "redis://h/x", "sqlite://"] {
            #expect(throws: ServiceKitError.self, "\(bad)") { try BrokerLocation(url: bad) }
        }
    }
}

/// What a test handler saw.
final class Handled: Sendable {
    let events = Mutex<[String]>([])
    let attempts = Mutex<[String: Int]>([:])

    func attempt(_ id: String) -> Int {
        attempts.withLock {
            $0[id, default: 0] += 1; return $0[id]!
        }
    }

    var ids: [String] { events.withLock { $0 } }
}

@Suite(.timeLimit(.minutes(10)), .serialized) struct EventConsumerTests {

    /// A redelivered event is handled once (inbox); a handler that fails once succeeds on the next delivery after the
    /// visibility timeout; a poison event lands in the dead-letter stream after N deliveries and a malformed message
    /// at once; the consumer keeps going and ends with nothing pending. The consumer's database (the inbox) is SQLite
    /// or, with Redis, PostgreSQL (scripts/test's throwaway server; its database outlives the test, so ids are fresh).
    @Test(
        .requires(
            "redis-server and scripts/test's PostgreSQL (ORCHESTRATE_TEST_POSTGRES)",
            RedisServer.isInstalled && ProcessInfo.processInfo.environment["ORCHESTRATE_TEST_POSTGRES"] != nil),
        arguments: [(BrokerKind.redis, "sqlite"), (.sqlite, "sqlite"), (.redis, "postgres")])
    func deliverySemantics(kind: BrokerKind, inbox: String) async throws {
        let test = try await TestBroker.make(kind, "consumer-\(kind)")
        defer { test.remove() }
        var url = "sqlite://" + test.directory.appendingPathComponent("consumer.sqlite").path
        if inbox == "postgres" {
            let base = try #require(
                ProcessInfo.processInfo.environment["ORCHESTRATE_TEST_POSTGRES"],
                "ORCHESTRATE_TEST_POSTGRES is not set: scripts/test starts PostgreSQL")
            url = base + "/notification_service"
        }
        let database = try ServiceDatabase(
            url: url, password: nil, defaultFile: "", migrations: [CreateInbox()], logger: Logger(label: "test"))
        try await closing(database, close: { await $0.shutdown() }) { database in
            try await database.migrate()
            let run = UUID().uuidString.prefix(8) + "-"
            let handled = Handled()
            let subscription = EventSubscription("thing.happened") { event, _ in
                let id = String(event.id.dropFirst(run.count))
                let attempt = handled.attempt(id)
                if id == "poison" { throw CancellationError() }
                if id == "flaky", attempt == 1 { throw CancellationError() }
                handled.events.withLock { $0.append(id) }
            }
            var settings = EventConsumerSettings()
            settings.visibilityTimeout = .milliseconds(300)
            settings.maximumDeliveries = 3
            let consumer = EventConsumer(
                subscription: subscription, group: "test-service", consumer: "c1", database: database,
                broker: test.location,
                settings: settings, logger: Logger(label: "consumer"))
            func envelope(_ id: String) -> EventEnvelope {
                EventEnvelope(id: run + id, type: "thing.happened", occurredAt: Date(), payload: "{}", traceparent: nil)
            }
            let producer = try await test.location.connect()
            let stream = EventEnvelope.stream(for: "thing.happened")
            _ = try await producer.append(
                stream: stream,
                messages: [
                    envelope("one").fields, envelope("flaky").fields, envelope("poison").fields,
                    fields(("garbage", "yes")), envelope("one").fields, envelope("two").fields,
                ])
            let running = Task { try await consumer.run() }
            try await closing(
                running,
                close: {
                    $0.cancel(); _ = await $0.result
                }
            ) { _ in
                let deadLetters = EventEnvelope.deadLetterStream(for: "thing.happened")
                var dead: [StreamDelivery] = []
                _ = try await eventually(.seconds(60), every: .milliseconds(100)) {
                    dead = try await producer.messages(stream: deadLetters, limit: 10)
                    return dead.count == 2 && handled.ids.count == 3
                }
                #expect(handled.ids.sorted() == ["flaky", "one", "two"], "each once")
                #expect(handled.attempts.withLock { $0["poison"] } == 3)
                #expect(handled.attempts.withLock { $0["one"] } == 1, "the duplicate never reached the handler")
                #expect(dead.count == 2)
                let poison = try #require(dead.first { $0.fields["id"] == run + "poison" })
                #expect(poison.fields["dead_letter_reason"] == "failed 3 deliveries")
                #expect(poison.fields["dead_letter_group"] == "test-service")
                #expect(
                    dead.contains {
                        $0.fields["garbage"] == "yes" && $0.fields["dead_letter_reason"]?.hasPrefix("malformed") == true
                    })
                // The consumer keeps going after the dead letters, and nothing is left pending.
                _ = try await producer.append(stream: stream, messages: [envelope("three").fields])
                #expect(await eventually(.seconds(60)) { handled.ids.contains("three") })
                #expect(
                    try await eventually(.seconds(60), every: .milliseconds(100)) {
                        try await producer.backlog(stream: stream, group: "test-service") == 0
                    })
            }
            await producer.close()
        }
    }

    /// The outbox keeps events while the broker is down (the transaction still commits), and the relay publishes them
    /// in order when it returns.
    @Test(.requires("redis-server", RedisServer.isInstalled))
    func outboxWaitsForTheBroker() async throws {
        let test = try await TestBroker.make(.redis, "outbox")
        defer { test.remove() }
        let redis = try #require(test.redis)
        await redis.stop()
        try await withRelay(test, types: ["thing.happened"]) { database, outbox in
            for number in 0..<20 {
                try await outbox.transaction(on: database.database(logger: Logger(label: "test"))) { _, events in
                    try await events.publish("thing.happened", ["n": number])
                }
            }
            // A transaction that fails publishes nothing.
            await #expect(throws: CancellationError.self) {
                try await outbox.transaction(on: database.database(logger: Logger(label: "test"))) { _, events in
                    try await events.publish("thing.happened", ["n": -1])
                    throw CancellationError()
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            let waiting = try await OutboxRow.query(on: database.database(logger: Logger(label: "test"))).filter(
                \.$publishedAt == nil
            ).count()
            #expect(waiting == 20)
            try await redis.start()
            let reader = try await test.location.connect()
            var messages: [StreamDelivery] = []
            _ = try await eventually(.seconds(60), every: .milliseconds(100)) {  // the relay's backoff is ≤ 5 s
                messages = try await reader.messages(
                    stream: EventEnvelope.stream(for: "thing.happened"), limit: 100)
                return messages.count >= 20
            }
            let numbers = messages.compactMap { EventEnvelope(fields: $0.fields) }.map {
                try? $0.decode([String: Int].self)["n"]
            }
            #expect(numbers == (0..<20).map { $0 }, "all, in order, once")
            await reader.close()
        }
    }
}
