import Synchronization

/// Where every replica's readiness is posted, and where waiting for it happens: a dependent waiting for its
/// dependencies, `up` waiting for everything, a restart waiting for its replica. Each waiter is woken by the change
/// itself, so nothing polls.
///
/// A change bumps `version`; `change(after:)` returns once the version has moved past the one the waiter saw, so a
/// change between looking and waiting is never missed.
final class ReadinessBoard: Sendable {
    struct Entry: Sendable, Equatable {
        var isReady = false
        /// Ready at least once since the supervisor last (re)started it: what dependents wait for.
        var hasBeenReady = false
        var hasFailed = false
    }

    private struct State {
        var version: UInt64 = 0
        /// By service, then by replica address (two replicas of a service share an index during a swap).
        var entries: [String: [String: Entry]] = [:]
        var waiters: [UInt64: CheckedContinuation<UInt64, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    var version: UInt64 { state.withLock { $0.version } }

    /// Changes one replica's entry and wakes whoever waits, when it changed.
    func update(service: String, address: String, _ change: (inout Entry) -> Void) {
        let woken = state.withLock { state -> [CheckedContinuation<UInt64, Never>] in
            var entry = state.entries[service]?[address] ?? Entry()
            let before = entry
            change(&entry)
            guard entry != before else { return [] }
            state.entries[service, default: [:]][address] = entry
            return Self.bump(&state)
        }
        let version = self.version
        for continuation in woken { continuation.resume(returning: version) }
    }

    /// Wakes every waiter without a change (a deadline passed, or a shutdown began).
    func poke() {
        let woken = state.withLock { Self.bump(&$0) }
        let version = self.version
        for continuation in woken { continuation.resume(returning: version) }
    }

    private static func bump(_ state: inout State) -> [CheckedContinuation<UInt64, Never>] {
        state.version += 1
        let woken = Array(state.waiters.values)
        state.waiters.removeAll()
        return woken
    }

    /// The entries of one service's replicas.
    func entries(of service: String) -> [Entry] {
        state.withLock { state in Array((state.entries[service] ?? [:]).values) }
    }

    /// One replica's entry; nil before it first posted.
    func entry(service: String, address: String) -> Entry? {
        state.withLock { $0.entries[service]?[address] }
    }

    /// Forgets a replica that no longer runs, and wakes whoever waits.
    func remove(service: String, address: String) {
        let woken = state.withLock { state -> [CheckedContinuation<UInt64, Never>] in
            guard state.entries[service]?.removeValue(forKey: address) != nil else { return [] }
            return Self.bump(&state)
        }
        let version = self.version
        for continuation in woken { continuation.resume(returning: version) }
    }

    /// Returns the new version once it has moved past `seen` (at once when it already has), or when the task is
    /// cancelled.
    @discardableResult
    func change(after seen: UInt64) async -> UInt64 {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> UInt64? in
                    if state.version > seen || Task.isCancelled { return state.version }
                    state.waiters[id] = continuation
                    return nil
                }
                if let version = resumeNow { continuation.resume(returning: version) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(returning: self.version)
        }
    }

}
