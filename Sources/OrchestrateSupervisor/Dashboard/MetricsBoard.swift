import Foundation
import Synchronization

/// Each service's request rate, error rate, p50/p99 latency and circuit-breaker states over the last few minutes,
/// from its replicas' Prometheus `/metrics`, scraped only while a dashboard page is open.
///
/// It reads the names Hummingbird's metrics middleware writes (and ServiceKit's breakers): `hb_requests` (by
/// `http_response_status_code`; 5xx are errors), the `http_server_request_duration` histogram and
/// `circuit_breaker_state` (0 closed, 1 open, 2 half-open, by `upstream`). A service without them shows nothing.
public final class MetricsBoard: Sendable {
    public struct Point: Sendable, Codable, Equatable {
        /// Milliseconds since 1970.
        public var time: Int64
        public var requestsPerSecond: Double
        public var errorsPerSecond: Double
        /// Milliseconds; nil without requests in the interval.
        public var p50: Double?
        public var p99: Double?
        /// By upstream: `closed`, `open` or `half-open`, the worst state among the replicas.
        public var breakers: [String: String]
    }

    /// One replica's cumulative figures at one scrape.
    struct Totals {
        var requests = 0.0
        var errors = 0.0
        /// Upper bound (seconds) → cumulative count, summed over every route.
        var buckets: [Double: Double] = [:]
        var breakers: [String: Int] = [:]
        var at = ContinuousClock.now
    }

    private struct State {
        var previous: [String: Totals] = [:]
        var series: [String: [Point]] = [:]
        var lastScrape: ContinuousClock.Instant?
    }

    /// Points kept per service.
    public let length: Int
    private let state = Mutex(State())

    public init(length: Int = 120) {
        self.length = length
    }

    /// Whether a scrape is due (at most one per `interval`, however many pages are open); marks it started.
    func claimScrape(interval: Duration) -> Bool {
        state.withLock { state in
            let now = ContinuousClock.now
            if let last = state.lastScrape, now - last < interval { return false }
            state.lastScrape = now
            return true
        }
    }

    /// One scrape of every replica (`replica` → (service, the text of its /metrics, or nil when it did not answer)),
    /// added as one point per service.
    func record(_ scrapes: [String: (service: String, text: String?)], at instant: ContinuousClock.Instant = .now) {
        let time = Int64(Date().timeIntervalSince1970 * 1000)
        state.withLock { state in
            var perService:
                [String: (
                    requests: Double, errors: Double, buckets: [Double: Double], seconds: Double,
                    breakers: [String: Int]
                )] = [:]
            for (replica, scrape) in scrapes {
                guard let text = scrape.text else {
                    state.previous[replica] = nil
                    continue
                }
                var now = Self.totals(text)
                now.at = instant
                defer { state.previous[replica] = now }
                var entry = perService[scrape.service] ?? (0, 0, [:], 0, [:])
                entry.breakers.merge(now.breakers) { max($0, $1) }
                if let before = state.previous[replica], now.requests >= before.requests {
                    let elapsed = now.at - before.at
                    entry.seconds = max(
                        entry.seconds,
                        Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                    entry.requests += now.requests - before.requests
                    entry.errors += max(0, now.errors - before.errors)
                    for (bound, count) in now.buckets {
                        entry.buckets[bound, default: 0] += max(0, count - (before.buckets[bound] ?? 0))
                    }
                }
                perService[scrape.service] = entry
            }
            for (service, entry) in perService {
                let seconds = max(entry.seconds, 0.001)
                let point = Point(
                    time: time, requestsPerSecond: entry.seconds > 0 ? entry.requests / seconds : 0,
                    errorsPerSecond: entry.seconds > 0 ? entry.errors / seconds : 0,
                    p50: Self.quantile(0.5, entry.buckets), p99: Self.quantile(0.99, entry.buckets),
                    breakers: entry.breakers.mapValues { ["closed", "open", "half-open"][min(max($0, 0), 2)] })
                state.series[service, default: []].append(point)
                if state.series[service]!.count > length { state.series[service]!.removeFirst() }
            }
        }
    }

    public var series: [String: [Point]] { state.withLock { $0.series } }

    /// The quantile from cumulative bucket counts, interpolated within its bucket (as Prometheus's
    /// histogram_quantile does), in milliseconds.
    static func quantile(_ q: Double, _ buckets: [Double: Double]) -> Double? {
        let ordered = buckets.sorted { $0.key < $1.key }
        guard let total = ordered.last?.value, total > 0 else { return nil }
        let rank = q * total
        var lowerBound = 0.0
        var lowerCount = 0.0
        for (bound, count) in ordered {
            if count >= rank {
                if bound.isInfinite { return lowerBound * 1000 }
                let width = count - lowerCount
                let fraction = width > 0 ? (rank - lowerCount) / width : 1
                return (lowerBound + (bound - lowerBound) * fraction) * 1000
            }
            lowerBound = bound
            lowerCount = count
        }
        return lowerBound * 1000
    }

    /// The figures of one /metrics text.
    static func totals(_ text: String) -> Totals {
        var totals = Totals()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let sample = PrometheusSample(line) else { continue }
            switch sample.name {
            case "hb_requests", "hb_requests_total":
                totals.requests += sample.value
                if let code = sample.labels["http_response_status_code"].flatMap(Int.init), code >= 500 {
                    totals.errors += sample.value
                }
            case "http_server_request_duration_bucket":
                if let bound = sample.labels["le"].flatMap(Double.init)
                    ?? (sample.labels["le"] == "+Inf" ? .infinity : nil)
                {
                    totals.buckets[bound, default: 0] += sample.value
                }
            case "circuit_breaker_state":
                if let upstream = sample.labels["upstream"] { totals.breakers[upstream] = Int(sample.value) }
            default:
                continue
            }
        }
        return totals
    }
}

/// One line of the Prometheus text format: `name{label="value",…} value [timestamp]`.
struct PrometheusSample {
    var name: String
    var labels: [String: String] = [:]
    var value: Double

    init?(_ line: Substring) {
        let text = Array(line.utf8)
        var index = 0
        while index < text.count, text[index] != UInt8(ascii: "{"), text[index] != UInt8(ascii: " ") { index += 1 }
        name = String(decoding: text[0..<index], as: UTF8.self)
        guard !name.isEmpty else { return nil }
        if index < text.count, text[index] == UInt8(ascii: "{") {
            index += 1
            while index < text.count, text[index] != UInt8(ascii: "}") {
                var keyEnd = index
                while keyEnd < text.count, text[keyEnd] != UInt8(ascii: "=") { keyEnd += 1 }
                guard keyEnd + 1 < text.count, text[keyEnd + 1] == UInt8(ascii: "\"") else { return nil }
                let key = String(decoding: text[index..<keyEnd], as: UTF8.self)
                var value: [UInt8] = []
                var cursor = keyEnd + 2
                while cursor < text.count, text[cursor] != UInt8(ascii: "\"") {
                    if text[cursor] == UInt8(ascii: "\\"), cursor + 1 < text.count {
                        cursor += 1
                        value.append(text[cursor] == UInt8(ascii: "n") ? UInt8(ascii: "\n") : text[cursor])
                    } else {
                        value.append(text[cursor])
                    }
                    cursor += 1
                }
                guard cursor < text.count else { return nil }
                labels[key] = String(decoding: value, as: UTF8.self)
                index = cursor + 1
                if index < text.count, text[index] == UInt8(ascii: ",") { index += 1 }
            }
            index += 1
        }
        let rest = String(decoding: text[min(index, text.count)...], as: UTF8.self).split(separator: " ")
        guard let first = rest.first else { return nil }
        switch first {
        case "+Inf": value = .infinity
        case "-Inf": value = -.infinity
        case "NaN": value = .nan
        default:
            guard let number = Double(first) else { return nil }
            value = number
        }
    }
}
