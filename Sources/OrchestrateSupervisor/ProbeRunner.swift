import Foundation
public import NIOCore
import NIOHTTP1
public import NIOPosix
public import OrchestrateSpec

/// Runs one probe against one replica, as Kubernetes does: an HTTP GET that answers 200–399, a TCP connect that
/// succeeds, or a command that exits 0 — each within the probe's timeout.
public struct ProbeRunner: Sendable {
    public struct Result: Sendable, Equatable {
        public var success: Bool
        /// What happened, for `orchestrate status` and the log: `HTTP 503`, `connection refused`, `timed out`, …
        public var detail: String

        public init(success: Bool, detail: String) {
            self.success = success
            self.detail = detail
        }
    }

    let group: any EventLoopGroup

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
    }

    /// - Parameters:
    ///   - host: The replica's address; `port` its declared port (an HTTP probe's port).
    ///   - environment: The replica's environment, for a command probe.
    public func run(
        _ check: Probe.Check, host: String, port: Int?, timeout: Duration, environment: [String: String] = [:]
    ) async -> Result {
        switch check {
        case .http(let path):
            guard let port else { return Result(success: false, detail: "no port to probe") }
            return await http(host: host, port: port, path: path, timeout: timeout)
        case .tcp(let port):
            return await tcp(host: host, port: port, timeout: timeout)
        case .command(let words):
            return await command(words, environment: environment, timeout: timeout)
        }
    }

    private func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }

    func tcp(host: String, port: Int, timeout: Duration) async -> Result {
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(.nanoseconds(nanoseconds(timeout)))
                .connect(host: host, port: port).get()
            try? await channel.close()
            return Result(success: true, detail: "connected")
        } catch {
            return Result(success: false, detail: Self.describe(error))
        }
    }

    func http(host: String, port: Int, path: String, timeout: Duration) async -> Result {
        do {
            let answer = try await OneShotHTTP.get(
                host: host, port: port, path: path, userAgent: "orchestrate-probe",
                timeout: .nanoseconds(nanoseconds(timeout)), bodyLimit: nil, group: group)
            return Result(success: (200..<400).contains(Int(answer.status.code)), detail: "HTTP \(answer.status.code)")
        } catch {
            return Result(success: false, detail: Self.describe(error))
        }
    }

    func command(_ words: [String], environment: [String: String], timeout: Duration) async -> Result {
        guard !words.isEmpty else { return Result(success: false, detail: "empty command") }
        let merged = ProcessInfo.processInfo.environment.merging(environment) { _, own in own }
        // Its own group, so a timeout kills what it started too.
        let pid: pid_t
        switch Spawn.start(words, environment: merged, output: .null, ownGroup: true) {
        case .success(let started): pid = started
        case .failure(let error): return Result(success: false, detail: "\(error)")
        }
        let end = ContinuousClock.now + timeout
        while true {
            var code: Int32 = 0
            if waitpid(pid, &code, WNOHANG) == pid {
                let exited = code & 0x7f == 0
                let exit = (code >> 8) & 0xff
                return exited && exit == 0
                    ? Result(success: true, detail: "exit 0")
                    : Result(success: false, detail: exited ? "exit \(exit)" : "killed by signal \(code & 0x7f)")
            }
            if ContinuousClock.now >= end {
                kill(-pid, SIGKILL)
                var ignored: Int32 = 0
                waitpid(pid, &ignored, 0)
                return Result(success: false, detail: "timed out")
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    static func describe(_ error: any Error) -> String {
        if (error as? SupervisorError)?.code == .probeTimeout { return "timed out" }
        if case ChannelError.connectTimeout = error { return "timed out" }
        let text = "\(error)"
        if text.contains("Connection refused") || text.contains("errno: 111") { return "connection refused" }
        return text
    }
}
