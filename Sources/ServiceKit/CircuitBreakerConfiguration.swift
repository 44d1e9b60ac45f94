/// When a circuit breaker opens, how long it stays open, and how it tests the upstream again.
public struct CircuitBreakerConfiguration: Sendable {
    /// The share of failed calls in the window that opens the breaker (0.5: half of them).
    public var failureRatio: Double
    /// The fewest calls in the window before the ratio counts: two failures of two calls open nothing.
    public var minimumCalls: Int
    /// How far back calls count: a rolling window of `buckets` slices.
    public var window: Duration
    public var buckets: Int
    /// How long the breaker stays open before it lets trial calls through (half-open).
    public var resetTimeout: Duration
    /// How many trial calls may run at once when half-open, and how many must succeed to close again.
    public var halfOpenTrials: Int

    public init(
        failureRatio: Double = 0.5, minimumCalls: Int = 10, window: Duration = .seconds(10), buckets: Int = 10,
        resetTimeout: Duration = .seconds(30), halfOpenTrials: Int = 3
    ) {
        self.failureRatio = min(max(failureRatio, 0), 1)
        self.minimumCalls = max(1, minimumCalls)
        self.window = window > .zero ? window : .seconds(10)
        self.buckets = max(1, buckets)
        self.resetTimeout = max(resetTimeout, .zero)
        self.halfOpenTrials = max(1, halfOpenTrials)
    }
}

/// The three states of a circuit breaker.
public enum CircuitState: String, Sendable, CaseIterable {
    /// Calls go through; failures are counted.
    case closed
    /// Calls are refused at once, without touching the upstream.
    case open
    /// A bounded number of trial calls go through; their outcome closes or reopens the breaker.
    case halfOpen = "half-open"

    /// The value the state gauge reports: 0 closed, 1 open, 2 half-open.
    public var metricValue: Int64 {
        switch self {
        case .closed: 0
        case .open: 1
        case .halfOpen: 2
        }
    }
}
