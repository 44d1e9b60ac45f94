import Foundation
import Synchronization

/// The recent lines of every service, for the dashboard: a bounded ring per service, so a chatty service cannot
/// push out a quiet one's lines and memory stays flat however long `up` runs. Each line gets a sequence number
/// across all services, which is its order in time and what a reader resumes from.
public final class LogRing: Sendable {
    public struct Entry: Sendable, Codable, Equatable {
        public var sequence: UInt64
        /// Milliseconds since 1970, when the supervisor read the line.
        public var time: Int64
        public var service: String
        /// `user-service-1`, or `orchestrate` for what the supervisor says about the service.
        public var replica: String
        public var text: String
        /// From a JSON line: its `level`, `message` and `trace_id` (or `traceID`/`traceId`).
        public var level: String?
        public var message: String?
        public var traceID: String?
    }

    private struct State {
        var rings: [String: [Entry]] = [:]
        /// Where the next line of each service goes once its ring is full.
        var heads: [String: Int] = [:]
        var next: UInt64 = 1
    }

    /// Lines kept per service.
    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 2000) {
        self.capacity = max(1, capacity)
    }

    public func append(_ text: String, service: String, replica: String) {
        let time = Int64(Date().timeIntervalSince1970 * 1000)
        let fields = Self.fields(of: text)
        state.withLock { state in
            let entry = Entry(
                sequence: state.next, time: time, service: service, replica: replica, text: text,
                level: fields.level, message: fields.message, traceID: fields.traceID)
            state.next += 1
            if state.rings[service, default: []].count < capacity {
                state.rings[service, default: []].append(entry)
            } else {
                let head = state.heads[service, default: 0]
                state.rings[service]![head] = entry
                state.heads[service] = (head + 1) % capacity
            }
        }
    }

    /// Lines after `sequence`, oldest first, at most `limit` (the newest of them).
    public func entries(after sequence: UInt64 = 0, limit: Int = 5000) -> [Entry] {
        let all = state.withLock { state in
            state.rings.values.flatMap { $0.filter { $0.sequence > sequence } }
        }
        return Array(all.sorted { $0.sequence < $1.sequence }.suffix(limit))
    }

    /// The sequence number of the newest line (0 when there is none).
    public var latest: UInt64 { state.withLock { $0.next - 1 } }

    /// The level, message and trace id of a JSON log line; nothing for any other line.
    static func fields(of text: String) -> (level: String?, message: String?, traceID: String?) {
        guard text.first == "{", let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return (nil, nil, nil) }
        let trace = ["trace_id", "traceID", "traceId", "trace-id"].lazy.compactMap { object[$0] as? String }.first
        return (object["level"] as? String, object["message"] as? String ?? object["msg"] as? String, trace)
    }
}
