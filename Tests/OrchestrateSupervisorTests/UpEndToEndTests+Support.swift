import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OrchestrateSupervisor
import OrchestrateTestSupport
import Testing

/// What the end-to-end tests do beside the runs they check: commands, processes, requests.
extension UpEndToEndTests {
    /// Runs an `orchestrate` command to its end (at most 60 s) and returns its exit status and output.
    func command(_ arguments: [String], in directory: URL) async throws -> (Int32?, String) {
        let log = directory.appendingPathComponent("command-\(UUID().uuidString).log").path
        let process = try ChildProcess(
            orchestrate, arguments, environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path], logPath: log)
        let status = await process.wait(timeout: .seconds(60))
        if status == nil { await process.stop() }
        return (status, process.log)
    }

    /// Every live process this supervisor started, grandchildren included: those whose environment names its DNS
    /// server (other tests run the same products at the same time, so the executable alone does not tell).
    func processes(withDNSPort port: Int) -> [Int32] {
        let marker = Data("ORCHESTRATE_DNS=127.0.0.1:\(port)\u{0}".utf8)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let environment = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return environment.range(of: marker) != nil && ProcessInfoReader.isAlive(pid)
        }
    }

    /// A process and everything below it (parents read from /proc/PID/stat, which any user may read: a server
    /// running as another user hides its environment).
    func family(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var parents: [Int32: Int32] = [:]
        for pid in entries.compactMap(Int32.init) {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let parent = Int32(fields[1]) { parents[pid] = parent }
        }
        var family: [Int32] = [pid]
        var index = 0
        while index < family.count {
            family += parents.filter { $0.value == family[index] }.map(\.key)
            index += 1
        }
        return family.filter(ProcessInfoReader.isAlive)
    }

    func replicas(_ directory: URL) async throws -> [ReplicaStatus] {
        let (status, output) = try await command(
            ["status", "--format", "json", "-f", directory.appendingPathComponent("services.yaml").path], in: directory)
        guard status == 0 else { return [] }
        return (try? JSONDecoder().decode([ReplicaStatus].self, from: Data(output.utf8))) ?? []
    }

    /// A request to the gateway at localhost (its port in this test's spec); the status and body.
    func call(_ method: HTTPMethod, _ path: String, _ body: String? = nil, token: String?) async throws -> (
        UInt, String
    ) {
        var request = HTTPClientRequest(url: "http://localhost:\(gatewayPort)\(path)")
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return (response.status.code, String(buffer: bytes))
    }

    /// Polls the notifications of a user until one contains `text`; bounded: 100 polls, 10 s.
    func notification(for userID: String, containing text: String, token: String) async throws -> String {
        var notifications = ""
        for _ in 0..<100 {
            notifications = try await call(.GET, "/api/notifications?userId=\(userID)", token: token).1
            if notifications.contains(text) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return notifications
    }
}
