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

    /// A child given a hosts file sees it as /etc/hosts, through glibc's resolver as any program would, and the
    /// machine's /etc/hosts is left as it was.
    @Test func aChildResolvesNamesFromItsPrivateHostsFile() async throws {
        let directory = try ExternalTool.temporaryDirectory("hosts")
        defer { try? FileManager.default.removeItem(at: directory) }
        let hosts = directory.appendingPathComponent("hosts").path
        try PrivateHosts.write("127.0.0.1\tlocalhost\n127.0.2.7\tcatalog catalog.demo.local\n", to: hosts)
        try #require(PrivateHosts.unavailableReason(path: hosts) == nil, "no private mount namespace here")
        let machine = try String(contentsOfFile: "/etc/hosts", encoding: .utf8)
        let lines = Mutex<[String]>([])
        let process = try await launcher.launch(
            LaunchRequest(
                executable: "/usr/bin/getent", arguments: ["hosts", "catalog.demo.local"], environment: [:],
                hostsFile: hosts)
        ) { line in lines.withLock { $0.append(line) } }
        #expect(await process.exitStatus() == .exited(0))
        #expect(await eventually { !lines.withLock { $0 }.isEmpty })
        #expect(lines.withLock { $0.joined() }.hasPrefix("127.0.2.7"), "\(lines.withLock { $0 })")
        #expect(try String(contentsOfFile: "/etc/hosts", encoding: .utf8) == machine)
        #expect(!machine.contains("catalog.demo.local"))
    }

    /// A symbolic link where the hosts file should be is not mounted in its place: the child does not start.
    @Test func aLinkPlantedAsTheHostsFileIsNotMounted() async throws {
        let directory = try ExternalTool.temporaryDirectory("hosts-planted")
        defer { try? FileManager.default.removeItem(at: directory) }
        let other = directory.appendingPathComponent("other")
        try "127.0.0.66\tcatalog.demo.local\n".write(to: other, atomically: true, encoding: .utf8)
        let hosts = directory.appendingPathComponent("hosts").path
        try FileManager.default.createSymbolicLink(atPath: hosts, withDestinationPath: other.path)
        let error = await #expect(throws: SupervisorError.self) {
            _ = try await launcher.launch(
                LaunchRequest(
                    executable: "/usr/bin/getent", arguments: ["hosts", "catalog.demo.local"], environment: [:],
                    hostsFile: hosts)
            ) { _ in }
        }
        #expect(error?.code == .launch)
        #expect(PrivateHosts.unavailableReason(path: hosts) != nil)
    }

    /// The hosts file is written in place (a replica's bind mount holds the file), and a symbolic link planted at
    /// its path is refused, not followed: the file it points at is untouched.
    @Test func theHostsFileIsNeverWrittenThroughASymbolicLink() throws {
        let directory = try ExternalTool.temporaryDirectory("hosts-link")
        defer { try? FileManager.default.removeItem(at: directory) }
        let victim = directory.appendingPathComponent("victim")
        try "keep me\n".write(to: victim, atomically: true, encoding: .utf8)
        let hosts = directory.appendingPathComponent("hosts").path
        try FileManager.default.createSymbolicLink(atPath: hosts, withDestinationPath: victim.path)
        let error = #expect(throws: SupervisorError.self) { try PrivateHosts.write("127.0.0.1 x\n", to: hosts) }
        #expect(error?.code == .start)
        #expect(try String(contentsOf: victim, encoding: .utf8) == "keep me\n")
        // A regular file is rewritten in place: the same inode, new contents.
        let file = directory.appendingPathComponent("regular").path
        try PrivateHosts.write("one\n", to: file)
        let inode = try FileManager.default.attributesOfItem(atPath: file)[.systemFileNumber] as? Int
        try PrivateHosts.write("two\n", to: file)
        #expect(try FileManager.default.attributesOfItem(atPath: file)[.systemFileNumber] as? Int == inode)
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "two\n")
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
