import Synchronization

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
        guard let hextets = ipv6Hextets(address) else { return address }
        if hextets[0..<5].allSatisfy({ $0 == 0 }), hextets[5] == 0xFFFF {
            return [hextets[6] >> 8, hextets[6] & 0xFF, hextets[7] >> 8, hextets[7] & 0xFF].map(String.init)
                .joined(separator: ".")
        }
        return hextets[0..<4].map { String($0, radix: 16) }.joined(separator: ":") + "::/64"
    }

    /// The eight 16-bit groups of an IPv6 address in text (`::` expanded, an IPv4 tail as two groups), or nil when
    /// `text` is not one.
    static func ipv6Hextets(_ text: String) -> [UInt16]? {
        guard text.contains(":") else { return nil }
        func groups(_ part: Substring) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains(".") {
                    let octets = piece.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
                    guard octets.count == 4 else { return nil }
                    result += [UInt16(octets[0]) << 8 | UInt16(octets[1]), UInt16(octets[2]) << 8 | UInt16(octets[3])]
                } else {
                    guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                    result.append(value)
                }
            }
            return result
        }
        let halves = text.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 8 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
        return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
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
