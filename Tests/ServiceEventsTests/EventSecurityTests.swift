import FluentKit
import Foundation
import Logging
import NIOCore
import OrchestrateTestSupport
import ServiceKit
import Testing

@testable import ServiceEvents

/// Events that strangers cannot forge or stall: Redis's password, a stream key of the wrong type, trimming, and
/// replies too large to parse twice.
@Suite(.timeLimit(.minutes(5)), .serialized) struct EventSecurityTests {
    /// A 100,000-entry reply arriving in 1,000 reads: after every read, all that has fully arrived is consumed (a
    /// decoder that starts over would leave the whole reply in the buffer until its last byte), so every byte is read
    /// once and the work is linear in the reply's size.
    @Test func aHundredThousandEntryReplyIsReadOnce() throws {
        let entry = "*2\r\n$15\r\n1700000000000-0\r\n*2\r\n$1\r\nn\r\n$5\r\nvalue\r\n"
        let bytes = Array(("*100000\r\n" + String(repeating: entry, count: 100_000)).utf8)
        var decoder = RESPDecoder()
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        let step = bytes.count / 1000 + 1
        var leftBehind = 0
        for start in stride(from: 0, to: bytes.count, by: step) {
            buffer.writeBytes(bytes[start..<min(start + step, bytes.count)])
            while let value = try decoder.decode(buffer: &buffer) { values.append(value) }
            leftBehind = max(leftBehind, buffer.readableBytes)
        }
        #expect(leftBehind < 32, "bytes of whole values were left to be read again: \(leftBehind)")
        #expect(values.count == 1)
        let entries = try #require(values.first?.array)
        #expect(entries.count == 100_000)
        #expect(entries.last?.array?[1].array?.map(\.string) == ["n", "value"])
    }

    /// The same through a real Redis: XRANGE of a 100,000-entry stream, in one reply.
    @Test(.requires("redis-server", RedisServer.isInstalled))
    func aHundredThousandEntryReplyFromRedis() async throws {
        let redis = try await RedisServer.start("resp-large")
        defer { redis.remove() }
        let client = try RedisClient(url: redis.url, replyTimeout: .seconds(60))
        // Filled by Redis itself (one script), so the test's time goes to the one large reply.
        try await client.command(
            "EVAL", "for i = 0, 99999 do redis.call('XADD', KEYS[1], '*', 'n', i) end return 1", "1", "big")
        let reply = try await client.command("XRANGE", "big", "-", "+")
        #expect(reply.array?.count == 100_000)
        #expect(RedisStreamsBroker.delivery(try #require(reply.array?.last), deliveries: 0)?.fields["n"] == "99999")
        await client.close()
    }

    /// Redis with `requirepass`: without the password, or with a wrong one, nothing is read or written; with it
    /// (`BROKER_PASSWORD`, or in the URL), everything works.
    @Test(.requires("redis-server", RedisServer.isInstalled))
    func redisRequiresItsPassword() async throws {
        let redis = try await RedisServer.start("redis-auth", password: "s3cret-pass word")
        defer { redis.remove() }
        let anonymous = try RedisClient(url: redis.url)
        let refused = await #expect(throws: EventsError.self) { try await anonymous.command("XLEN", "events:x") }
        #expect("\(refused.map(String.init(describing:)) ?? "")".contains("NOAUTH"))
        let wrong = try await BrokerLocation(url: redis.url, password: "guess").connect()
        await #expect(throws: EventsError.self) {
            _ = try await wrong.append(stream: "s", messages: [fields(("a", "b"))])
        }
        let right = try await BrokerLocation(url: redis.url, password: "s3cret-pass word").connect()
        #expect(try await right.append(stream: "s", messages: [fields(("a", "b"))]).count == 1)
        let inURL = try RedisClient(url: "redis://:s3cret-pass%20word@127.0.0.1:\(redis.port)")
        #expect(try await inURL.command("XLEN", "s") == .integer(1))
        await anonymous.close()
        await wrong.close()
        await right.close()
        await inURL.close()
    }

    /// Something SETs a plain key where a stream should be: XADD answers WRONGTYPE. The relay keeps that type's events
    /// in the outbox, in order, and publishes every other type meanwhile; once the key is gone they follow.
    @Test(.requires("redis-server", RedisServer.isInstalled))
    func aStreamKeyOfTheWrongTypeHoldsBackOnlyItsType() async throws {
        let test = try await TestBroker.make(.redis, "wrongtype")
        defer { test.remove() }
        let redis = try #require(test.redis)
        let client = try RedisClient(url: redis.url)
        try await client.command("SET", EventEnvelope.stream(for: "a.happened"), "not a stream")
        try await withRelay(test, types: ["a.happened", "b.happened"]) { database, outbox in
            for number in 0..<6 {
                try await outbox.transaction(on: database.database(logger: Logger(label: "test"))) { _, events in
                    try await events.publish(number % 2 == 0 ? "a.happened" : "b.happened", ["n": number])
                }
            }
            let reader = try await test.location.connect()
            func numbers(_ type: String) async throws -> [Int] {
                try await reader.messages(stream: EventEnvelope.stream(for: type), limit: 100)
                    .compactMap { EventEnvelope(fields: $0.fields) }
                    .compactMap { try? $0.decode([String: Int].self)["n"] }
            }
            var published: [Int] = []
            _ = try await eventually(.seconds(60), every: .milliseconds(100)) {
                published = try await numbers("b.happened")
                return published.count >= 3
            }
            #expect(published == [1, 3, 5], "the other type waited behind the refused stream")
            #expect(
                try await client.command("TYPE", EventEnvelope.stream(for: "a.happened")) == .simpleString("string")
            )
            try await client.command("DEL", EventEnvelope.stream(for: "a.happened"))
            var held: [Int] = []
            // The backoff is at most 30 s; it is short here.
            _ = await eventually(.seconds(60), every: .milliseconds(100)) {
                held = (try? await numbers("a.happened")) ?? []
                return held.count >= 3
            }
            #expect(held == [0, 2, 4])
            await reader.close()
        }
        await client.close()
    }

    /// Trimming keeps exactly what some group still needs: its oldest pending message and everything after the last
    /// it read; a stream every group has read and acknowledged ends empty.
    @Test(.requires("redis-server", RedisServer.isInstalled), arguments: BrokerKind.allCases)
    func streamsAreTrimmedOnceEveryGroupHasReadThem(kind: BrokerKind) async throws {
        let test = try await TestBroker.make(kind, "trim-\(kind)")
        defer { test.remove() }
        let broker = try await test.location.connect()
        #expect(try await broker.trim(stream: "s") == 0)  // no stream, no groups
        _ = try await broker.append(stream: "s", messages: (1...10).map { fields(("n", "\($0)")) })
        #expect(try await broker.trim(stream: "s") == 0)  // no group has read anything
        try await broker.createGroup(stream: "s", group: "fast")
        try await broker.createGroup(stream: "s", group: "slow")
        let all = try await broker.readNew(stream: "s", group: "fast", consumer: "f", count: 10, wait: .zero)
        try await broker.acknowledge(stream: "s", group: "fast", ids: all.map(\.id))
        let some = try await broker.readNew(stream: "s", group: "slow", consumer: "s", count: 4, wait: .zero)
        try await broker.acknowledge(stream: "s", group: "slow", ids: some.prefix(2).map(\.id))
        // slow still needs message 3 (pending) onward.
        #expect(try await broker.trim(stream: "s") == 2)
        #expect(try await broker.messages(stream: "s", limit: 100).map { $0.fields["n"] } == (3...10).map { "\($0)" })
        let rest = try await broker.readNew(stream: "s", group: "slow", consumer: "s", count: 10, wait: .zero)
        try await broker.acknowledge(stream: "s", group: "slow", ids: some.suffix(2).map(\.id) + rest.map(\.id))
        #expect(try await broker.trim(stream: "s") == 8)
        #expect(try await broker.messages(stream: "s", limit: 100).isEmpty)
        // New messages are read as usual after a trim.
        _ = try await broker.append(stream: "s", messages: [fields(("n", "11"))])
        let after = try await broker.readNew(stream: "s", group: "slow", consumer: "s", count: 10, wait: .zero)
        #expect(after.map { $0.fields["n"] } == ["11"])
        await broker.close()
    }
}
