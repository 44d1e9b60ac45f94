import Foundation
import OrchestrateTestSupport
import Synchronization
import Testing

@testable import OrchestrateSupervisor

/// The real launcher against real processes (/bin/sh): output lines, exit statuses, process groups.
@Suite(.timeLimit(.minutes(5))) struct NativeLauncherTests {
    let launcher = NativeLauncher()

    @Test func linesOfBothStreamsArriveAndTheExitStatusIsReported() async throws {
        let lines = Mutex<[String]>([])
        let process = try await launcher.launch(
            LaunchRequest(
                executable: "/bin/sh", arguments: ["-c", "echo one; echo two >&2; printf three; exit 3"],
                environment: ["PATH": "/usr/bin:/bin"])
        ) { line in lines.withLock { $0.append(line) } }
        #expect(await process.exitStatus() == .exited(3))
        #expect(await eventually { lines.withLock { $0.count } == 3 })
        #expect(lines.withLock { Set($0) } == ["one", "two", "three"])
    }

    @Test func theEnvironmentIsExactlyTheOneGiven() async throws {
        let lines = Mutex<[String]>([])
        let process = try await launcher.launch(
            LaunchRequest(executable: "/usr/bin/env", arguments: [], environment: ["ONLY": "this"])
        ) { line in lines.withLock { $0.append(line) } }
        #expect(await process.exitStatus() == .exited(0))
        #expect(await eventually { lines.withLock { $0 } == ["ONLY=this"] })
    }

    /// Run as root (as CI is), a child can become another user, as PostgreSQL must: uid, gid and groups change.
    @Test(.requires("root and a nobody user", geteuid() == 0 && ProcessUser.named("nobody") != nil))
    func aRootSupervisorRunsAChildAsAnotherUser() async throws {
        try #require(geteuid() == 0, "not root: CI and scripts/test run as root")
        let nobody = try #require(ProcessUser.named("nobody"), "there is no user nobody")
        let lines = Mutex<[String]>([])
        let process = try await launcher.launch(
            LaunchRequest(executable: "/usr/bin/id", arguments: [], environment: [:], user: nobody)
        ) { line in lines.withLock { $0.append(line) } }
        #expect(await process.exitStatus() == .exited(0))
        #expect(await eventually { !lines.withLock { $0 }.isEmpty })
        let output = lines.withLock { $0.joined() }
        #expect(output.hasPrefix("uid=\(nobody.uid)(nobody) gid=\(nobody.gid)"), "\(output)")
        #expect(
            output.hasSuffix("groups=\(nobody.gid)(\(output.contains("nogroup") ? "nogroup" : "nobody"))"), "\(output)")
    }

    @Test func aMissingProgramIsALaunchErrorNotAnExitStatus() async throws {
        let error = await #expect(throws: SupervisorError.self) {
            _ = try await launcher.launch(
                LaunchRequest(executable: "/nonexistent/program", arguments: [], environment: [:])
            ) { _ in }
        }
        #expect(error?.code == .launch)
    }

    @Test func signallingTheGroupReachesGrandchildrenAndAnExitingLeaderTakesItsGroupAlong() async throws {
        let lines = Mutex<[String]>([])
        // A shell that starts a grandchild and waits: SIGTERM to the group ends both.
        let shell = try await launcher.launch(
            LaunchRequest(
                executable: "/bin/sh", arguments: ["-c", "sleep 300 & echo $!; wait"],
                environment: ["PATH": "/usr/bin:/bin"])
        ) { line in lines.withLock { $0.append(line) } }
        #expect(await eventually { !lines.withLock { $0 }.isEmpty })
        let grandchild = try #require(Int32(lines.withLock { $0[0] }))
        #expect(ProcessInfoReader.isAlive(grandchild))
        shell.signalGroup(SIGTERM)
        #expect(await shell.exitStatus() == .signaled(SIGTERM))
        #expect(await eventually { !ProcessInfoReader.isAlive(grandchild) })

        // A leader that exits on its own, leaving a grandchild in its group: the group is killed before it is reaped.
        lines.withLock { $0 = [] }
        let leader = try await launcher.launch(
            LaunchRequest(
                executable: "/bin/sh", arguments: ["-c", "sleep 300 & echo $!; exit 0"],
                environment: ["PATH": "/usr/bin:/bin"])
        ) { line in lines.withLock { $0.append(line) } }
        #expect(await leader.exitStatus() == .exited(0))
        #expect(await eventually { !lines.withLock { $0 }.isEmpty })
        let left = try #require(Int32(lines.withLock { $0[0] }))
        #expect(await eventually { !ProcessInfoReader.isAlive(left) })
    }

    /// A descriptor the supervisor holds without close-on-exec (a socket from a library, a control connection)
    /// does not reach a child: it would keep a port bound or a connection open after the supervisor is done.
    @Test func theChildGetsOnlyStandardInputOutputAndError() async throws {
        let leaked = open("/dev/null", O_RDONLY)  // deliberately without O_CLOEXEC
        #expect(leaked >= 3)
        defer { close(leaked) }
        let lines = Mutex<[String]>([])
        let process = try await launcher.launch(
            LaunchRequest(
                executable: "/bin/sh", arguments: ["-c", "ls /proc/$$/fd"], environment: ["PATH": "/usr/bin:/bin"])
        ) { line in lines.withLock { $0.append(line) } }
        #expect(await process.exitStatus() == .exited(0))
        #expect(await eventually { lines.withLock { $0.count } >= 3 })
        #expect(lines.withLock { Set($0) } == ["0", "1", "2"])
    }
}
