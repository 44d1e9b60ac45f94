import Foundation

/// Redis Streams as the broker: XADD, XGROUP CREATE, XREADGROUP, XAUTOCLAIM, XPENDING, XACK, XINFO GROUPS.
public struct RedisStreamsBroker: EventBroker {
    let client: RedisClient

    public init(client: RedisClient) {
        self.client = client
    }

    public var address: String { client.address }

    public func append(stream: String, messages: [EventFields]) async throws -> [String] {
        guard !messages.isEmpty else { return [] }
        let commands = messages.map { fields in ["XADD", stream, "*"] + fields.flatMap { [$0.name, $0.value] } }
        return try await client.pipeline(commands).map { reply in
            guard let id = try reply.get().string else {
                throw EventsError(.malformedReply, "XADD answered without an id")
            }
            return id
        }
    }

    public func createGroup(stream: String, group: String) async throws {
        do {
            try await client.command("XGROUP", "CREATE", stream, group, "0", "MKSTREAM")
        } catch let error as EventsError where error.code == .redisReply && error.context.hasPrefix("BUSYGROUP") {
            // It exists already.
        }
    }

    public func readNew(stream: String, group: String, consumer: String, count: Int, wait: Duration) async throws
        -> [StreamDelivery]
    {
        let milliseconds = max(1, wait.wholeMilliseconds)
        let reply = try await client.command(
            "XREADGROUP", "GROUP", group, consumer, "COUNT", String(count), "BLOCK", String(milliseconds),
            "STREAMS", stream, ">", blocking: wait)
        guard let streams = reply.array else { return [] }  // the block time passed
        return streams.flatMap { entry in
            (entry.array?.last?.array ?? []).compactMap { Self.delivery($0, deliveries: 1) }
        }
    }

    public func claimIdle(stream: String, group: String, consumer: String, minimumIdle: Duration, count: Int)
        async throws
        -> [StreamDelivery]
    {
        let idle = minimumIdle.wholeMilliseconds
        let reply = try await client.command(
            "XAUTOCLAIM", stream, group, consumer, String(idle), "0-0", "COUNT", String(count))
        guard let parts = reply.array, parts.count >= 2, let entries = parts[1].array else {
            throw EventsError(.malformedReply, "XAUTOCLAIM answered \(reply)")
        }
        // Entries deleted from the stream come back without fields (Redis 6.2) or in the third part (7.0+): either
        // way nothing can deliver them, so they are acknowledged.
        var gone = (parts.count > 2 ? parts[2].array ?? [] : []).compactMap(\.string)
        var claimed: [StreamDelivery] = []
        for entry in entries {
            if let delivery = Self.delivery(entry, deliveries: 0) {
                claimed.append(delivery)
            } else if let id = entry.array?.first?.string {
                gone.append(id)
            }
        }
        if !gone.isEmpty { try await acknowledge(stream: stream, group: group, ids: gone) }
        guard !claimed.isEmpty else { return [] }
        // XAUTOCLAIM counted the delivery; XPENDING tells how many there have been.
        let counts = try await client.pipeline(claimed.map { ["XPENDING", stream, group, $0.id, $0.id, "1"] })
        for (index, count) in counts.enumerated() {
            let row = try count.get().array?.first?.array
            claimed[index].deliveries = row?.count == 4 ? row?[3].integer ?? 1 : 1
        }
        return claimed
    }

    public func acknowledge(stream: String, group: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        _ = try await client.pipeline([["XACK", stream, group] + ids])[0].get()
    }

    public func backlog(stream: String, group: String) async throws -> Int {
        let groups = try await client.command("XINFO", "GROUPS", stream)
        for entry in groups.array ?? [] {
            let pairs = entry.array ?? []
            var info: [String: RESPValue] = [:]
            for index in stride(from: 0, to: pairs.count - 1, by: 2) {
                if let key = pairs[index].string { info[key] = pairs[index + 1] }
            }
            guard info["name"]?.string == group else { continue }
            let pending = info["pending"]?.integer ?? 0
            // `lag` is null when Redis cannot tell (after deletions): then count what the group has not read, up to
            // a cap, so a metric never pulls a whole stream (it reads as "at least" beyond).
            if let lag = info["lag"]?.integer { return pending + lag }
            let last = info["last-delivered-id"]?.string ?? "0-0"
            let unread =
                try await client.command("XRANGE", stream, "(" + last, "+", "COUNT", String(Self.backlogCountCap))
                .array?.count ?? 0
            return pending + unread
        }
        return 0
    }

    static let backlogCountCap = 1000

    /// `XTRIM MINID` at the oldest id some group still needs: its oldest pending message (`XPENDING`), or the one
    /// after the last it was delivered.
    public func trim(stream: String) async throws -> Int {
        let groups: RESPValue
        do {
            groups = try await client.command("XINFO", "GROUPS", stream)
        } catch let error as EventsError where error.code == .redisReply && error.context.contains("no such key") {
            return 0
        }
        var floor: (Int, Int)?
        for entry in groups.array ?? [] {
            let pairs = entry.array ?? []
            var info: [String: RESPValue] = [:]
            for index in stride(from: 0, to: pairs.count - 1, by: 2) {
                if let key = pairs[index].string { info[key] = pairs[index + 1] }
            }
            guard let name = info["name"]?.string, var keep = Self.streamID(info["last-delivered-id"]?.string)
            else { return 0 }
            keep.1 += 1  // the first message after the last delivered
            if info["pending"]?.integer ?? 0 > 0 {
                let summary = try await client.command("XPENDING", stream, name)
                guard let oldest = Self.streamID(summary.array?.count == 4 ? summary.array?[1].string : nil) else {
                    return 0
                }
                if oldest < keep { keep = oldest }
            }
            if floor.map({ keep < $0 }) ?? true { floor = keep }
        }
        guard let floor, floor > (0, 1) else { return 0 }
        return try await client.command("XTRIM", stream, "MINID", "\(floor.0)-\(floor.1)").integer ?? 0
    }

    /// `1700000000000-3` as a pair that compares in stream order.
    static func streamID(_ text: String?) -> (Int, Int)? {
        guard let text, let dash = text.firstIndex(of: "-"), let milliseconds = Int(text[..<dash]),
            let sequence = Int(text[text.index(after: dash)...])
        else { return nil }
        return (milliseconds, sequence)
    }

    public func messages(stream: String, limit: Int) async throws -> [StreamDelivery] {
        let reply = try await client.command("XRANGE", stream, "-", "+", "COUNT", String(limit))
        return (reply.array ?? []).compactMap { Self.delivery($0, deliveries: 0) }
    }

    public func close() async {
        await client.close()
    }

    /// `[id, [field, value, …]]` → a delivery; nil when the entry has no fields (deleted).
    static func delivery(_ entry: RESPValue, deliveries: Int) -> StreamDelivery? {
        guard let parts = entry.array, parts.count == 2, let id = parts[0].string, let flat = parts[1].array else {
            return nil
        }
        var fields: [String: String] = [:]
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string, let value = flat[index + 1].string { fields[name] = value }
        }
        return StreamDelivery(id: id, fields: fields, deliveries: deliveries)
    }
}
