import Logging
import Metrics
import MetricsTestKit
import ServiceKit
import Synchronization
import Testing

/// A clock the test moves by hand.
final class ManualClock: MonotonicClock {
    private let time = Mutex(Duration.zero)
    func now() -> Duration { time.withLock { $0 } }
    func advance(by duration: Duration) { time.withLock { $0 += duration } }
}

/// Keeps every log message, to check what a state change says.
final class LogCapture: Sendable {
    let messages = Mutex<[String]>([])

    var logger: Logger {
        Logger(label: "test") { _ in Handler(capture: self) }
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let upstream = metadata["upstream"].map { "\($0)" } ?? "?"
            capture.messages.withLock { $0.append("\(event.level) [\(upstream)] \(event.message)") }
        }
    }
}

struct UpstreamError: Error, Equatable {
    var status: Int
}

@Suite(.timeLimit(.minutes(5)))
struct CircuitBreakerTests {
    let clock = ManualClock()
    let metrics = TestMetrics()
    let logs = LogCapture()

    func breaker(
        _ configuration: CircuitBreakerConfiguration = CircuitBreakerConfiguration(
            failureRatio: 0.5, minimumCalls: 4, window: .seconds(10), buckets: 10, resetTimeout: .seconds(30),
            halfOpenTrials: 2)
    ) -> CircuitBreaker {
        CircuitBreaker(
            upstream: "user-service", configuration: configuration, clock: clock, logger: logs.logger,
            metricsFactory: metrics)
    }

    func fail(_ breaker: CircuitBreaker, times: Int = 1) async {
        for _ in 0..<times {
            _ = try? await breaker.run { () async throws -> Int in throw UpstreamError(status: 503) }
        }
    }

    func succeed(_ breaker: CircuitBreaker, times: Int = 1) async throws {
        for _ in 0..<times { _ = try await breaker.run { 1 } }
    }

    @Test func failuresBelowTheMinimumVolumeKeepItClosed() async throws {
        let breaker = breaker()
        await fail(breaker, times: 3)
        #expect(breaker.state == .closed)
        #expect(try await breaker.run { 42 } == 42)
    }

    @Test func aFailureRatioAtTheThresholdOpensItAndCallsAreRefusedWithoutRunning() async throws {
        let breaker = breaker()
        try await succeed(breaker, times: 2)
        await fail(breaker, times: 1)
        #expect(breaker.state == .closed)
        await fail(breaker, times: 1)  // 2 of 4 failed: 0.5
        #expect(breaker.state == .open)
        clock.advance(by: .seconds(10))
        let ran = Mutex(false)
        let error = await #expect(throws: ServiceKitError.self) {
            try await breaker.run { ran.withLock { $0 = true } }
        }
        #expect(error?.code == .circuitOpen)
        #expect(error?.retryAfter == .seconds(20))
        #expect(!ran.withLock { $0 })
        #expect(
            try metrics.expectCounter("circuit_breaker_rejections_total", [("upstream", "user-service")]).totalValue
                == 1)
    }

    @Test func callsOlderThanTheWindowStopCounting() async throws {
        let breaker = breaker()
        await fail(breaker, times: 3)
        clock.advance(by: .seconds(11))
        try await succeed(breaker, times: 3)
        await fail(breaker, times: 1)  // 1 of 4 in the window
        #expect(breaker.state == .closed)
    }

    @Test func afterTheResetTimeoutTrialCallsAreBoundedAndEnoughSuccessesClose() async throws {
        let breaker = breaker()
        await fail(breaker, times: 4)
        clock.advance(by: .seconds(30))
        #expect(breaker.state == .halfOpen)
        // Two trial calls may be in flight; a third is refused while they run.
        let gate = AsyncGate()
        async let first: Int = breaker.run {
            await gate.wait(); return 1
        }
        async let second: Int = breaker.run {
            await gate.wait(); return 2
        }
        while gate.waiting < 2 { await Task.yield() }
        let busy = await #expect(throws: ServiceKitError.self) { try await breaker.run { 3 } }
        #expect(busy?.code == .trialsBusy)
        gate.open()
        #expect(try await first + second == 3)
        #expect(breaker.state == .closed)
        // Closed again with a fresh window: earlier failures are forgotten.
        await fail(breaker, times: 3)
        #expect(breaker.state == .closed)
    }

    @Test func aFailedTrialReopensWithAFreshTimeout() async throws {
        let breaker = breaker()
        await fail(breaker, times: 4)
        clock.advance(by: .seconds(31))
        await fail(breaker, times: 1)
        #expect(breaker.state == .open)
        clock.advance(by: .seconds(29))
        #expect(breaker.state == .open)
        clock.advance(by: .seconds(1))
        #expect(breaker.state == .halfOpen)
    }

    @Test func theFallbackAnswersRefusalsAndFailures() async throws {
        let breaker = breaker()
        let failed = try await breaker.run({ () async throws -> String in throw UpstreamError(status: 500) }) { error in
            "fallback after \(error)"
        }
        #expect(failed == "fallback after UpstreamError(status: 500)")
        await fail(breaker, times: 3)
        let refused = try await breaker.run({ "upstream" }) { error in
            (error as? ServiceKitError)?.code == .circuitOpen ? "refused" : "other"
        }
        #expect(refused == "refused")
    }

    @Test func nonUpstreamErrorsAndCancellationDoNotCount() async throws {
        let breaker = breaker()
        for _ in 0..<10 {
            _ = try? await breaker.run(isFailure: { ($0 as? UpstreamError).map { $0.status >= 500 } ?? true }) {
                () async throws -> Int in throw UpstreamError(status: 404)
            }
            _ = try? await breaker.run { () async throws -> Int in throw CancellationError() }
        }
        #expect(breaker.state == .closed)
    }

    @Test func stateChangesAreLoggedAndExported() async throws {
        let breaker = breaker()
        let gauge = try metrics.expectGauge("circuit_breaker_state", [("upstream", "user-service")])
        #expect(gauge.lastValue == 0)
        await fail(breaker, times: 4)
        #expect(gauge.lastValue == 1)
        clock.advance(by: .seconds(30))
        try await succeed(breaker, times: 2)
        #expect(gauge.values == [0, 1, 2, 0])
        for (state, count) in [("open", 1), ("half-open", 1), ("closed", 1)] {
            let counter = try metrics.expectCounter(
                "circuit_breaker_transitions_total", [("upstream", "user-service"), ("to", state)])
            #expect(counter.totalValue == Int64(count))
        }
        #expect(
            logs.messages.withLock { $0 } == [
                "warning [user-service] circuit breaker closed → open: 4 of the last 4 calls failed (threshold 0.5)",
                "notice [user-service] circuit breaker open → half-open: reset timeout of 30.0 seconds passed",
                "notice [user-service] circuit breaker half-open → closed: 2 trial calls succeeded",
            ])
    }

    @Test func concurrentCallsKeepConsistentCounts() async throws {
        // It opens at exactly 2,000 recorded calls with 1,000 failures (0.5 of them): one lost update among the
        // 2,000 concurrent calls and it stays closed.
        let breaker = breaker(CircuitBreakerConfiguration(failureRatio: 0.5, minimumCalls: 2_000, window: .seconds(60)))
        let succeeded = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<2_000 {
                group.addTask {
                    (try? await breaker.run { () async throws -> Int in
                        if index % 2 == 0 { throw UpstreamError(status: 503) }
                        return index
                    }) != nil
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        // Every call ran (the breaker opened only when the last one was recorded), and every one was counted.
        #expect(succeeded == 1_000)
        #expect(breaker.state == .open, "the breaker saw fewer than 2,000 calls or 1,000 failures: updates were lost")
    }
}

/// Holds trial calls in flight until the test lets them finish.
final class AsyncGate: Sendable {
    private let state = Mutex<(isOpen: Bool, waiters: [CheckedContinuation<Void, Never>], count: Int)>((false, [], 0))

    var waiting: Int { state.withLock { $0.count } }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resume = state.withLock { state -> Bool in
                state.count += 1
                if state.isOpen { return true }
                state.waiters.append(continuation)
                return false
            }
            if resume { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
