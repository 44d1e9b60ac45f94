import OrchestrateSupervisor
import Testing

@Suite(.timeLimit(.minutes(5)))
struct ProbeTrackerTests {
    @Test func readinessNeedsItsSuccessesAndLosesItAfterItsFailures() {
        var readiness = ProbeTracker(failureThreshold: 3, successThreshold: 2, initiallyPassing: false)
        #expect(readiness.record(success: true) == nil)
        #expect(readiness.record(success: true) == true)
        #expect(readiness.isPassing)
        // Failures must be consecutive: one success in between starts the count again.
        #expect(readiness.record(success: false) == nil)
        #expect(readiness.record(success: false) == nil)
        #expect(readiness.record(success: true) == nil)
        #expect(readiness.record(success: false) == nil)
        #expect(readiness.record(success: false) == nil)
        #expect(readiness.record(success: false) == false)
        #expect(!readiness.isPassing)
        #expect(readiness.record(success: false) == nil)  // reported once
    }

    @Test func livenessStartsPassingAndThresholdsAreAtLeastOne() {
        var liveness = ProbeTracker(failureThreshold: 0, successThreshold: 0, initiallyPassing: true)
        #expect(liveness.failureThreshold == 1 && liveness.successThreshold == 1)
        #expect(liveness.record(success: true) == nil)
        #expect(liveness.record(success: false) == false)
        #expect(liveness.record(success: true) == true)
    }
}
