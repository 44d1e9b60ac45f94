/// Where time-based policies read the time: a monotonic reading as a `Duration` since an arbitrary origin.
///
/// A protocol so tests can drive time by hand instead of sleeping.
public protocol MonotonicClock: Sendable {
    func now() -> Duration
}

/// The system's monotonic clock (`ContinuousClock`), which wall-clock changes do not move.
public struct SystemMonotonicClock: MonotonicClock {
    private let origin: ContinuousClock.Instant

    public init() {
        origin = ContinuousClock().now
    }

    public func now() -> Duration {
        ContinuousClock().now - origin
    }
}
