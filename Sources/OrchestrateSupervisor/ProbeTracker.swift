/// Turns probe results into state changes with Kubernetes' thresholds: `failureThreshold` failures in a row flip a
/// passing probe to failing, `successThreshold` successes in a row flip it back. A readiness probe starts failing
/// (a replica is not ready until it says so); a liveness probe starts passing.
public struct ProbeTracker: Sendable, Equatable {
    public let failureThreshold: Int
    public let successThreshold: Int
    public private(set) var isPassing: Bool
    private var successes = 0
    private var failures = 0

    public init(failureThreshold: Int, successThreshold: Int, initiallyPassing: Bool) {
        self.failureThreshold = max(1, failureThreshold)
        self.successThreshold = max(1, successThreshold)
        isPassing = initiallyPassing
    }

    /// Records one result; returns the new state when it changed, nil otherwise.
    public mutating func record(success: Bool) -> Bool? {
        if success {
            successes += 1
            failures = 0
            if !isPassing, successes >= successThreshold {
                isPassing = true
                return true
            }
        } else {
            failures += 1
            successes = 0
            if isPassing, failures >= failureThreshold {
                isPassing = false
                return false
            }
        }
        return nil
    }
}
