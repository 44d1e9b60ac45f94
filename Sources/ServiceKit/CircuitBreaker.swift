public import Logging
public import Metrics
import Synchronization

/// Fails fast when an upstream keeps failing, and lets it recover: closed → open when the failure ratio over a
/// rolling window passes a threshold (with a minimum number of calls), open → half-open after a reset timeout,
/// half-open → closed after enough successful trial calls, or back to open on a failed one.
///
/// Safe to share between concurrent requests. State changes are logged and exported as metrics:
/// `circuit_breaker_state` (0 closed, 1 open, 2 half-open), `circuit_breaker_transitions_total` by target state and
/// `circuit_breaker_rejections_total`, each with the dimension `upstream`.
public final class CircuitBreaker: Sendable {
    public let upstream: String
    private let configuration: CircuitBreakerConfiguration
    private let clock: any MonotonicClock
    private let logger: Logger
    private let stateGauge: Gauge
    private let transitionCounters: [CircuitState: Counter]
    private let rejections: Counter
    private let inner: Mutex<State>

    private struct State: Sendable {
        var state: CircuitState = .closed
        var window: RollingWindow
        var openedAt: Duration = .zero
        var trialsInFlight = 0
        var trialSuccesses = 0
    }

    /// How a call was let through, which decides what its outcome does.
    fileprivate enum Permit {
        case normal
        case trial
    }

    /// A call the breaker let through, for callers that cannot wrap the call in a closure (a proxy on an event
    /// loop): `admit()` before the call, `record(_:_:)` exactly once after it.
    public struct Ticket: Sendable {
        fileprivate let permit: Permit
    }

    /// What a call said about its upstream.
    public enum Outcome: Sendable {
        case success
        case failure
        /// Cancelled, or failed because of its own caller: says nothing about the upstream.
        case ignored
    }

    private struct Transition {
        var from: CircuitState
        var to: CircuitState
        var reason: String
    }

    public init(
        upstream: String, configuration: CircuitBreakerConfiguration = CircuitBreakerConfiguration(),
        clock: any MonotonicClock = SystemMonotonicClock(), logger: Logger = Logger(label: "circuit-breaker"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.upstream = upstream
        self.configuration = configuration
        self.clock = clock
        var logger = logger
        logger[metadataKey: "upstream"] = "\(upstream)"
        self.logger = logger
        let dimensions = [("upstream", upstream)]
        stateGauge = Gauge(label: "circuit_breaker_state", dimensions: dimensions, factory: metricsFactory)
        transitionCounters = Dictionary(
            uniqueKeysWithValues: CircuitState.allCases.map { state in
                (
                    state,
                    Counter(
                        label: "circuit_breaker_transitions_total", dimensions: dimensions + [("to", state.rawValue)],
                        factory: metricsFactory)
                )
            })
        rejections = Counter(label: "circuit_breaker_rejections_total", dimensions: dimensions, factory: metricsFactory)
        inner = Mutex(State(window: RollingWindow(window: configuration.window, buckets: configuration.buckets)))
        stateGauge.record(CircuitState.closed.metricValue)
    }

    /// The state now. An open breaker whose reset timeout has passed reports half-open: the next call is a trial.
    public var state: CircuitState {
        inner.withLock { state in
            if state.state == .open, clock.now() - state.openedAt >= configuration.resetTimeout { return .halfOpen }
            return state.state
        }
    }

    /// Runs `operation` unless the breaker refuses it.
    ///
    /// - Parameters:
    ///   - isFailure: Which errors count against the upstream; by default all. Cancellation never counts.
    ///   - operation: The call to the upstream, with its own deadline.
    /// - Throws: `ServiceKitError` (`circuitOpen` or `trialsBusy`) when refused (the operation did not run), or the operation's error.
    public func run<Value>(
        isFailure: (any Error) -> Bool = { _ in true },
        _ operation: () async throws -> Value
    ) async throws -> Value {
        let permit = try acquire()
        do {
            let result = try await operation()
            finish(permit, outcome: .success)
            return result
        } catch {
            finish(permit, outcome: error is CancellationError ? .ignored : (isFailure(error) ? .failure : .success))
            throw error
        }
    }

    /// Like `run`, but a refused or failed call returns `fallback(error)` instead of throwing.
    public func run<Value>(
        isFailure: (any Error) -> Bool = { _ in true },
        _ operation: () async throws -> Value,
        fallback: (any Error) async throws -> Value
    ) async throws -> Value {
        do {
            return try await run(isFailure: isFailure, operation)
        } catch {
            return try await fallback(error)
        }
    }

    /// Lets a call through, or refuses it (`circuitOpen` or `trialsBusy`, with the time to wait).
    public func admit() throws(ServiceKitError) -> Ticket {
        Ticket(permit: try acquire())
    }

    /// Records the outcome of a call `admit()` let through.
    public func record(_ ticket: Ticket, _ outcome: Outcome) {
        finish(ticket.permit, outcome: outcome)
    }

    private func acquire() throws(ServiceKitError) -> Permit {
        let now = clock.now()
        var transition: Transition?
        let decision: Result<Permit, ServiceKitError> = inner.withLock { state in
            if state.state == .open {
                let elapsed = now - state.openedAt
                guard elapsed >= configuration.resetTimeout else {
                    return .failure(
                        ServiceKitError(
                            .circuitOpen, subject: upstream, "its circuit breaker is open",
                            retryAfter: configuration.resetTimeout - elapsed))
                }
                transition = Transition(
                    from: .open, to: .halfOpen, reason: "reset timeout of \(configuration.resetTimeout) passed")
                state.state = .halfOpen
                state.trialsInFlight = 0
                state.trialSuccesses = 0
            }
            switch state.state {
            case .closed:
                return .success(.normal)
            case .halfOpen:
                guard state.trialsInFlight < configuration.halfOpenTrials else {
                    return .failure(
                        ServiceKitError(
                            .trialsBusy, subject: upstream,
                            "its circuit breaker is half-open with every trial call in flight",
                            retryAfter: configuration.window / configuration.buckets))
                }
                state.trialsInFlight += 1
                return .success(.trial)
            case .open:
                preconditionFailure("an open breaker past its timeout became half-open above")
            }
        }
        if let transition { report(transition) }
        switch decision {
        case .success(let permit):
            return permit
        case .failure(let error):
            rejections.increment()
            throw error
        }
    }

    private func finish(_ permit: Permit, outcome: Outcome) {
        let now = clock.now()
        let transition: Transition? = inner.withLock { state in
            switch permit {
            case .normal:
                // A call let through before the breaker opened says nothing about the state now.
                guard state.state == .closed, outcome != .ignored else { return nil }
                state.window.record(success: outcome == .success, at: now)
                let totals = state.window.totals(at: now)
                guard totals.calls >= configuration.minimumCalls,
                    Double(totals.failures) / Double(totals.calls) >= configuration.failureRatio
                else { return nil }
                state.state = .open
                state.openedAt = now
                return Transition(
                    from: .closed, to: .open,
                    reason:
                        "\(totals.failures) of the last \(totals.calls) calls failed (threshold \(configuration.failureRatio))"
                )
            case .trial:
                state.trialsInFlight -= 1
                guard state.state == .halfOpen else { return nil }
                switch outcome {
                case .ignored:
                    return nil
                case .failure:
                    state.state = .open
                    state.openedAt = now
                    return Transition(from: .halfOpen, to: .open, reason: "a trial call failed")
                case .success:
                    state.trialSuccesses += 1
                    guard state.trialSuccesses >= configuration.halfOpenTrials else { return nil }
                    state.state = .closed
                    state.window.reset()
                    return Transition(
                        from: .halfOpen, to: .closed, reason: "\(configuration.halfOpenTrials) trial calls succeeded")
                }
            }
        }
        if let transition { report(transition) }
    }

    /// Logs and exports a state change; outside the lock, so a slow log handler never holds up calls.
    private func report(_ transition: Transition) {
        stateGauge.record(transition.to.metricValue)
        transitionCounters[transition.to]?.increment()
        let message: Logger.Message =
            "circuit breaker \(transition.from.rawValue) → \(transition.to.rawValue): \(transition.reason)"
        if transition.to == .open { logger.warning(message) } else { logger.notice(message) }
    }
}
