import Foundation
import OrchestrateTestSupport
import Testing

@testable import OrchestrateSupervisor

/// A stale `.orchestrate/state.json` names PIDs that may have been reused since: only a process with the recorded
/// executable *and* start time is stopped.
@Suite(.timeLimit(.minutes(2))) struct StaleStateTests {
    @Test func aReusedPIDIsLeftAlone() async throws {
        let directory = try ExternalTool.temporaryDirectory("stale-state")
        defer { try? FileManager.default.removeItem(at: directory) }
        // Someone else's long-running program, as another project's postgres would be.
        let other = try ChildProcess(
            "/usr/bin/setsid", ["sleep", "300"], environment: ["PATH": "/usr/bin:/bin"],
            logPath: directory.appendingPathComponent("other.log").path)
        defer { other.signal(SIGKILL) }
        var executable: String?
        for _ in 0..<100 where executable?.hasSuffix("sleep") != true {  // bounded: 100 × 20 ms for the exec
            executable = ProcessInfoReader.executable(of: other.pid)
            if executable?.hasSuffix("sleep") != true { try await Task.sleep(for: .milliseconds(20)) }
        }
        let path = directory.appendingPathComponent("state.json").path
        let started = try #require(ProcessInfoReader.startTime(of: other.pid))
        func state(startTime: UInt64?) throws {
            try StateFile(
                supervisorPID: 4_194_305, dnsPort: 1, controlSocket: directory.path + "/control.sock",
                processes: [
                    .init(
                        service: "postgres", replica: 1, pid: other.pid, executable: try #require(executable),
                        startTime: startTime)
                ]
            ).write(to: path)
        }
        var said: [String] = []
        // Same PID and program, started at another time: a reused PID.
        try state(startTime: started + 1)
        try LeftoverProcesses.reclaim(statePath: path, say: { said.append($0) })
        #expect(ProcessInfoReader.isAlive(other.pid))
        // A state file of an older orchestrate, with no start time: nothing to be sure of, so nothing is stopped.
        try state(startTime: nil)
        try LeftoverProcesses.reclaim(statePath: path, say: { said.append($0) })
        #expect(ProcessInfoReader.isAlive(other.pid))
        #expect(said.isEmpty)
        // The very process recorded: stopped.
        try state(startTime: started)
        try LeftoverProcesses.reclaim(statePath: path, say: { said.append($0) })
        #expect(await other.wait(timeout: .seconds(10)) != nil)
        #expect(said.count == 1)
    }
}
