public import OTLPSpan
import Synchronization

/// The spans the services exported to `up`, newest kept: at most `capacity`, the oldest dropped first, so a busy
/// run cannot grow the supervisor without bound.
public final class SpanStore: Sendable {
    /// One trace as the list shows it.
    public struct TraceSummary: Sendable, Codable, Equatable {
        public var traceID: String
        /// The root span's name (the earliest span when the root has not arrived).
        public var root: String
        /// In the order they first appear in the trace.
        public var services: [String]
        public var startNanoseconds: UInt64
        public var durationNanoseconds: UInt64
        public var spans: Int
        public var errors: Int
    }

    public let capacity: Int
    private let state = Mutex<(spans: [ReceivedSpan], head: Int)>(([], 0))

    public init(capacity: Int = 20_000) {
        self.capacity = max(1, capacity)
    }

    public func add(_ spans: [ReceivedSpan]) {
        state.withLock { state in
            for span in spans {
                if state.spans.count < capacity {
                    state.spans.append(span)
                } else {
                    state.spans[state.head] = span
                    state.head = (state.head + 1) % capacity
                }
            }
        }
    }

    public var count: Int { state.withLock { $0.spans.count } }

    /// The spans of one trace, by start time.
    public func spans(of traceID: String) -> [ReceivedSpan] {
        state.withLock { $0.spans.filter { $0.traceID == traceID } }.sorted {
            $0.startNanoseconds < $1.startNanoseconds
        }
    }

    /// The most recent traces first, at most `limit`.
    public func traces(limit: Int = 100) -> [TraceSummary] {
        let all = state.withLock { $0.spans }
        let byTrace = Dictionary(grouping: all, by: \.traceID)
        let summaries = byTrace.map { traceID, spans -> TraceSummary in
            let ordered = spans.sorted { $0.startNanoseconds < $1.startNanoseconds }
            let ids = Set(spans.map(\.spanID))
            let root = ordered.first { $0.parentSpanID == nil || !ids.contains($0.parentSpanID!) } ?? ordered[0]
            let start = ordered[0].startNanoseconds
            let end = spans.map(\.endNanoseconds).max() ?? start
            var services: [String] = []
            for span in ordered where !services.contains(span.service) { services.append(span.service) }
            return TraceSummary(
                traceID: traceID, root: "\(root.service): \(root.name)", services: services,
                startNanoseconds: start, durationNanoseconds: end >= start ? end - start : 0, spans: spans.count,
                errors: spans.count(where: \.isError))
        }
        return Array(summaries.sorted { $0.startNanoseconds > $1.startNanoseconds }.prefix(limit))
    }
}
