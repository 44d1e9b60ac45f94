import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Token buckets per (route, client): `rps` tokens a second, up to `burst`.
///
/// Memory is bounded without ever handing a client a fresh bucket early: when `maxClients` buckets exist, only
/// those that have refilled (which behave exactly as a missing bucket would) are dropped, at most once a second; if
/// the table is still full, every client without a bucket shares one overflow bucket per route. A flood of new client
/// keys therefore limits itself and cannot reset anyone's bucket.
final class RateLimiter: Sendable {
    struct Decision: Equatable {
        var allowed: Bool
        /// Whole seconds until a token is available, for `Retry-After`.
        var retryAfterSeconds: Int
    }

    fileprivate struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
        /// When this bucket is full again if nothing takes from it.
        var refilled: ContinuousClock.Instant
    }

    fileprivate struct State {
        var buckets: [String: Bucket] = [:]
        var lastPrune: ContinuousClock.Instant?
    }

    fileprivate let state = Mutex<State>(State())
    private let maxClients: Int
    private let now: @Sendable () -> ContinuousClock.Instant

    init(maxClients: Int = 100_000, now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.maxClients = maxClients
        self.now = now
    }

    /// The key of a client address: an IPv4 address as it is, an IPv6 address by its /64 (one host usually holds a
    /// whole /64, so per-address keys would let it rotate through billions); an IPv4-mapped IPv6 address as IPv4.
    static func clientKey(_ address: String?) -> String {
        guard let address else { return "?" }
        var v6 = in6_addr()
        guard address.contains(":"), inet_pton(AF_INET6, address, &v6) == 1 else { return address }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return bytes[12..<16].map(String.init).joined(separator: ".")
        }
        let hextets = stride(from: 0, to: 8, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
        }
        return hextets.joined(separator: ":") + "::/64"
    }

    /// `overflowKey` names the bucket clients share when the table is full (the route's).
    func take(key: String, overflowKey: String = "overflow", rps: Double, burst: Int) -> Decision {
        let now = now()
        let capacity = Double(max(burst, 1))
        return state.withLock { state in
            var key = key
            if state.buckets[key] == nil, state.buckets.count >= maxClients {
                if state.lastPrune.map({ now - $0 >= .seconds(1) }) ?? true {
                    state.lastPrune = now
                    state.buckets = state.buckets.filter { $0.value.refilled > now }
                }
                if state.buckets.count >= maxClients { key = "\u{0}" + overflowKey }
            }
            var bucket = state.buckets[key] ?? Bucket(tokens: capacity, updated: now, refilled: now)
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
            let missing = capacity - bucket.tokens
            bucket.refilled = now + .seconds(rps > 0 ? missing / rps : 86_400)
            state.buckets[key] = bucket
            return decision
        }
    }
}

extension RateLimiter {
    /// How many clients have a bucket now.
    var count: Int { state.withLock { $0.buckets.count } }
}
