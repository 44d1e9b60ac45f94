import Synchronization

/// Token buckets per (route, client): `rps` tokens a second, up to `burst`. Memory is bounded: when more than
/// `maxClients` buckets exist, full ones (clients that have been quiet) are dropped first.
final class RateLimiter: Sendable {
    struct Decision: Equatable {
        var allowed: Bool
        /// Whole seconds until a token is available, for `Retry-After`.
        var retryAfterSeconds: Int
    }

    fileprivate struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    fileprivate let buckets = Mutex<[String: Bucket]>([:])
    private let maxClients: Int
    private let now: @Sendable () -> ContinuousClock.Instant

    init(maxClients: Int = 100_000, now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.maxClients = maxClients
        self.now = now
    }

    func take(key: String, rps: Double, burst: Int) -> Decision {
        let now = now()
        let capacity = Double(max(burst, 1))
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(capacity, bucket.tokens + seconds * rps)
            bucket.updated = now
            let decision: Decision
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                decision = Decision(allowed: true, retryAfterSeconds: 0)
            } else {
                let wait = rps > 0 ? (1 - bucket.tokens) / rps : 60
                decision = Decision(allowed: false, retryAfterSeconds: max(1, Int(wait.rounded(.up))))
            }
            buckets[key] = bucket
            if buckets.count > maxClients {
                // Drop buckets idle long enough to have refilled; if a flood of clients is still too many, start over
                // (every client gets a full bucket: lenient for a moment, never unbounded memory).
                let idle = Duration.seconds(max(1, capacity / max(rps, 0.001)))
                buckets = buckets.filter { now - $0.value.updated < idle }
                if buckets.count > maxClients { buckets.removeAll(keepingCapacity: true) }
            }
            return decision
        }
    }
}

extension RateLimiter {
    /// How many clients have a bucket now.
    var count: Int { buckets.withLock { $0.count } }
}
