import Foundation
import NIOCore
import NIOPosix
import OrchestrateSpec
import OrchestrateSupervisor
import OrchestrateTestSupport
import Testing

/// Probes against real peers: Python's http.server on loopback, a closed port, and real commands.
@Suite(.timeLimit(.minutes(5)), .serialized) struct ProbeRunnerTests {
    let runner = ProbeRunner()

    func withHTTPServer(_ body: (Int) async throws -> Void) async throws {
        try await PythonFileServer.with(files: ["health": Data("ok".utf8)], body)
    }

    /// The verdicts, not the timeout, are under test: the timeouts are generous, since with every suite starting at
    /// once on two cores an answer from Python's server once took over 2 s in CI.
    @Test func httpSucceedsOn2xxAnd3xxOnly() async throws {
        try await withHTTPServer { port in
            let ok = await runner.run(.http(path: "/health"), host: "127.0.0.1", port: port, timeout: .seconds(30))
            #expect(ok == .init(success: true, detail: "HTTP 200"))
            let missing = await runner.run(
                .http(path: "/missing"), host: "127.0.0.1", port: port, timeout: .seconds(30))
            #expect(missing == .init(success: false, detail: "HTTP 404"))
            let tcp = await runner.run(.tcp(port: port), host: "127.0.0.1", port: nil, timeout: .seconds(30))
            #expect(tcp.success)
        }
    }

    @Test func aClosedPortFailsFast() async throws {
        let closed = try ChildProcess.freePort()
        // Refused, not timed out: the verdict comes from the refusal, without waiting for the 2 s timeout.
        let http = await runner.run(.http(path: "/"), host: "127.0.0.1", port: closed, timeout: .seconds(2))
        let tcp = await runner.run(.tcp(port: closed), host: "127.0.0.1", port: nil, timeout: .seconds(2))
        #expect(!http.success && !tcp.success)
        #expect(http.detail == "connection refused")
        #expect(tcp.detail != "timed out")
    }

    /// A server that takes the connection and never answers: the probe fails at its timeout.
    @Test func anHTTPProbeOfAServerThatSaysNothingTimesOut() async throws {
        try await SilentServer.with { port in
            let probe = await runner.run(.http(path: "/"), host: "127.0.0.1", port: port, timeout: .milliseconds(500))
            #expect(probe == .init(success: false, detail: "timed out"))
        }
    }

    @Test func commandsByExitStatusWithinTheTimeout() async throws {
        #expect(await runner.run(.command(["true"]), host: "", port: nil, timeout: .seconds(2)).success)
        #expect(
            await runner.run(.command(["false"]), host: "", port: nil, timeout: .seconds(2))
                == .init(success: false, detail: "exit 1"))
        let env = await runner.run(
            .command(["sh", "-c", "test \"$PROBE_ME\" = yes"]), host: "", port: nil, timeout: .seconds(2),
            environment: ["PROBE_ME": "yes"])
        #expect(env.success)
        // The verdict is the timeout's, not the exit of `sleep`, which would come after 10 s.
        let slow = await runner.run(.command(["sleep", "10"]), host: "", port: nil, timeout: .milliseconds(300))
        #expect(slow == .init(success: false, detail: "timed out"))
        #expect(
            await runner.run(.command(["no-such-program-here"]), host: "", port: nil, timeout: .seconds(1)).success
                == false)
    }

    /// A command holds nothing of the supervisor's but standard input, output and error: here a descriptor opened
    /// without close-on-exec, as Foundation's Process opens the socket by which it sees its own child end.
    @Test func aCommandInheritsNoDescriptorOfTheSupervisors() async throws {
        let descriptor = open("/dev/null", O_RDONLY)
        try #require(descriptor > 2)
        defer { close(descriptor) }
        let check = ["sh", "-c", "test ! -e /proc/$$/fd/\(descriptor)"]
        #expect(await runner.run(.command(check), host: "", port: nil, timeout: .seconds(5)).success)
        // The check itself sees one that is there.
        let present = ["sh", "-c", "exec 3</dev/null; test -e /proc/$$/fd/3"]
        #expect(await runner.run(.command(present), host: "", port: nil, timeout: .seconds(5)).success)
    }
}

/// The tests' own children (ChildProcess) inherit nothing either: a validator's Foundation Process, run beside one,
/// would otherwise wait for that child's end as well as its own (the hang of a CI run).
@Suite(.timeLimit(.minutes(1))) struct ChildProcessDescriptorTests {
    @Test func aChildOfTheTestsInheritsNoDescriptor() async throws {
        let descriptor = open("/dev/null", O_RDONLY)
        try #require(descriptor > 2)
        defer { close(descriptor) }
        let directory = try ExternalTool.temporaryDirectory("child-fds")
        defer { try? FileManager.default.removeItem(at: directory) }
        let child = try ChildProcess(
            "/bin/sh", ["-c", "test ! -e /proc/$$/fd/\(descriptor)"], environment: [:],
            logPath: directory.appendingPathComponent("log").path)
        #expect(await child.wait(timeout: .seconds(10)) == 0)
    }
}

/// Python's http.server on 127.0.0.1, serving `files` (name → contents) from a temporary directory.
enum PythonFileServer {
    static func with(files: [String: Data], _ body: (Int) async throws -> Void) async throws {
        let python = try #require(ExternalTool.find("python3"), "python3 is missing")
        let directory = try ExternalTool.temporaryDirectory("probe")
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, contents) in files { try contents.write(to: directory.appendingPathComponent(name)) }
        let port = try ChildProcess.freePort()
        let server = try ChildProcess(
            python.path, ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory.path],
            environment: ["PATH": "/usr/bin:/bin"], logPath: directory.appendingPathComponent("server.log").path)
        defer { server.signal(SIGKILL) }
        // Bounded wait for the server: 100 × 50 ms.
        let runner = ProbeRunner()
        for _ in 0..<100 {
            if await runner.run(.tcp(port: port), host: "127.0.0.1", port: nil, timeout: .seconds(1)).success { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await body(port)
    }
}

/// A server on 127.0.0.1 that accepts connections and never says anything.
enum SilentServer {
    static func with(_ body: (Int) async throws -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        try await body(try #require(server.localAddress?.port))
    }
}
