import OrchestrateSpec
import OrchestrateSupervisor
import OrchestrateTestSupport
import Testing

@Suite(.timeLimit(.minutes(5)))
struct RestartTrackerTests {
    func delay(_ decision: RestartTracker.Decision) -> Duration? {
        if case .restart(let after) = decision { return after }
        return nil
    }

    @Test func backoffDoublesWithJitterUpToTheCap() {
        var settings = RestartTracker.Settings()
        settings.crashLoopLimit = 100
        var tracker = RestartTracker(policy: .always, settings: settings)
        var random = SeededGenerator(seed: 1)
        var now = Duration.zero
        var delays: [Duration] = []
        for _ in 0..<10 {
            let after = delay(tracker.exited(at: now, uptime: .seconds(1), status: 1, random: &random))!
            delays.append(after)
            now += after + .seconds(1)
        }
        #expect(delays[0] == .zero)  // the first restart is immediate
        for (attempt, after) in delays.enumerated().dropFirst() {
            let base = min(Duration.seconds(30), .milliseconds(250) * (1 << (attempt - 1)))
            #expect(after >= base * 0.8 && after <= min(.seconds(30), base * 1.2), "attempt \(attempt): \(after)")
        }
        #expect(delays.last == nil || delays.last! <= .seconds(30))
        #expect(Set(delays.dropFirst().prefix(5)).count == 5)  // jittered, not lockstep
    }

    @Test func aStableRunResetsTheBackoff() {
        var tracker = RestartTracker(policy: .always)
        var random = SeededGenerator(seed: 2)
        for second in 0..<4 {
            _ = tracker.exited(at: .seconds(second * 20), uptime: .seconds(1), status: 1, random: &random)
        }
        #expect(tracker.attempt == 4)
        let afterStable = delay(tracker.exited(at: .seconds(200), uptime: .seconds(45), status: 1, random: &random))!
        #expect(afterStable == .zero)
        #expect(tracker.attempt == 1)
    }

    @Test func aCrashLoopMarksTheServiceFailed() {
        var tracker = RestartTracker(policy: .always)
        var random = SeededGenerator(seed: 3)
        var decisions: [RestartTracker.Decision] = []
        for second in 0..<6 {
            decisions.append(
                tracker.exited(at: .seconds(second), uptime: .milliseconds(100), status: 1, random: &random))
        }
        #expect(decisions.prefix(5).allSatisfy { delay($0) != nil })
        guard case .failed(let reason) = decisions[5] else {
            Issue.record("not failed: \(decisions[5])")
            return
        }
        #expect(reason.contains("6 times within 60 s"))
        // Exits spread over more than the window are not a loop.
        var slow = RestartTracker(policy: .always)
        for minute in 0..<10 {
            #expect(
                delay(slow.exited(at: .seconds(minute * 61), uptime: .seconds(1), status: 1, random: &random)) != nil)
        }
    }

    @Test func policies() {
        var random = SeededGenerator(seed: 4)
        var never = RestartTracker(policy: .never)
        #expect(
            never.exited(at: .zero, uptime: .zero, status: 1, random: &random) == .stayStopped(reason: "restart: never")
        )
        var onFailure = RestartTracker(policy: .onFailure)
        #expect(delay(onFailure.exited(at: .zero, uptime: .zero, status: 0, random: &random)) == nil)
        #expect(delay(onFailure.exited(at: .seconds(1), uptime: .zero, status: 137, random: &random)) != nil)
        var always = RestartTracker(policy: .always)
        #expect(delay(always.exited(at: .zero, uptime: .zero, status: 0, random: &random)) != nil)
    }
}
