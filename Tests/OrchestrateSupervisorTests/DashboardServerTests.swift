import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OrchestrateTestSupport
import Synchronization
import Testing

@testable import OrchestrateSupervisor

#if canImport(Glibc)
    import Glibc
#endif

/// The dashboard's server over real sockets: who it answers (token, host, origin), what it refuses, and its live
/// feed. The session behind it is a fixed state and a recorder of actions; `up` with the real session and a real
/// browser is scripts/test-dashboard's.
@Suite(.timeLimit(.minutes(2))) struct DashboardServerTests {
    static let state = DashboardState(
        project: "p",
        services: [.init(name: "catalog", kind: "product", port: 8081, dependsOn: [], url: nil)],
        replicas: [], logCapacity: 10)

    final class Actions: Sendable {
        let requests = Mutex<[ControlRequest]>([])
    }

    func withDashboard(
        _ body: @Sendable (DashboardServer, LogRing, Actions) async throws -> Void
    ) async throws {
        let ring = LogRing(capacity: 10)
        let actions = Actions()
        let server = try await DashboardServer.start(
            port: 0,
            source: .init(
                state: { Self.state },
                act: { request in
                    actions.requests.withLock { $0.append(request) }
                    return ControlResponse(ok: true)
                }, logs: ring))
        do {
            try await body(server, ring, actions)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func call(
        _ method: HTTPMethod, _ server: DashboardServer, _ path: String, token: String? = nil,
        headers: [(String, String)] = [], body: String? = nil
    ) async throws -> (status: Int, json: [String: Any]) {
        let query = token.map { (path.contains("?") ? "&" : "?") + "token=" + $0 } ?? ""
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)\(path)\(query)")
        request.method = method
        for (name, value) in headers { request.headers.replaceOrAdd(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
        return (Int(response.status.code), json)
    }

    func code(_ json: [String: Any]) -> String? { (json["error"] as? [String: Any])?["code"] as? String }

    @Test func onlyTheTokenOpensIt() async throws {
        try await withDashboard { server, _, _ in
            #expect(server.token.count == 32)
            #expect(server.url == "http://127.0.0.1:\(server.port)/?token=\(server.token)")
            let other = server.token.first == "0" ? "1" : "0"
            let wrong: [String?] = [
                nil, "", other + server.token.dropFirst(), server.token + "0", "%00" + server.token,
            ]
            for token in wrong {
                let answer = try await call(.GET, server, "/api/state", token: token)
                #expect(answer.status == 401, "\(token ?? "none")")
                #expect(code(answer.json) == "token")
            }
            let page = try await call(.GET, server, "/", token: nil)
            #expect(page.status == 401)
            let answer = try await call(.GET, server, "/api/state", token: server.token)
            #expect(answer.status == 200)
            #expect(answer.json["project"] as? String == "p")
        }
    }

    /// A page on another name that resolves to 127.0.0.1 (DNS rebinding) sends its own Host: refused, token or not.
    @Test func anotherHostIsRefused() async throws {
        try await withDashboard { server, _, actions in
            for host in [
                "evil.example:\(server.port)", "127.0.0.1", "127.0.0.1:1", "localhost.evil.example:\(server.port)",
            ] {
                let answer = try await call(
                    .POST, server, "/api/services/catalog/restart", token: server.token, headers: [("host", host)])
                #expect(answer.status == 403, "\(host)")
                #expect(code(answer.json) == "forbidden-host")
            }
            #expect(actions.requests.withLock { $0 }.isEmpty)
        }
    }

    @Test func actionsComeFromItsOwnPageOnly() async throws {
        try await withDashboard { server, _, actions in
            let foreign = try await call(
                .POST, server, "/api/services/catalog/restart", token: server.token,
                headers: [("origin", "http://evil.example")])
            #expect(foreign.status == 403)
            #expect(code(foreign.json) == "forbidden-origin")
            let unknown = try await call(.POST, server, "/api/services/nope/restart", token: server.token)
            #expect(unknown.status == 404)
            #expect(code(unknown.json) == "no-such-service")
            for path in ["/api/services/catalog/down", "/api/services/catalog", "/api/services/catalog/restart/x"] {
                #expect(try await call(.POST, server, path, token: server.token).status == 404, "\(path)")
            }
            #expect(try await call(.GET, server, "/api/services/catalog/restart", token: server.token).status == 404)
            #expect(try await call(.PUT, server, "/api/state", token: server.token).status == 405)
            let large = try await call(
                .POST, server, "/api/services/catalog/stop", token: server.token,
                body: String(repeating: "x", count: 10_000))
            #expect(large.status == 413)
            #expect(actions.requests.withLock { $0 }.isEmpty, "a refused request reached the session")

            let own = try await call(
                .POST, server, "/api/services/catalog/restart", token: server.token,
                headers: [("origin", "http://127.0.0.1:\(server.port)")])
            #expect(own.status == 202)
            #expect(
                await eventually {
                    actions.requests.withLock { $0 } == [ControlRequest(command: .restart, service: "catalog")]
                })
        }
    }

    @Test func theLiveFeedCarriesStateAndNewLines() async throws {
        try await withDashboard { server, ring, _ in
            ring.append("before", service: "catalog", replica: "catalog-1")
            let request = HTTPClientRequest(
                url: "http://127.0.0.1:\(server.port)/api/events?token=\(server.token)&after=\(ring.latest)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
            #expect(response.headers.first(name: "content-type") == "text/event-stream")
            ring.append(
                #"{"level":"error","message":"broke","trace_id":"abc"}"#, service: "catalog", replica: "catalog-2")
            var text = ""
            for try await chunk in response.body {  // bounded: the request's 20 s
                text += String(buffer: chunk)
                if text.contains("event: state"), text.contains("broke") { break }
            }
            #expect(text.contains("event: state\ndata: {"))
            #expect(text.contains(#""traceID":"abc""#))
            #expect(!text.contains("before"), "a line from before `after` was sent again")
        }
    }

    /// A page's values are text: the page builds its nodes with textContent, never markup from a service.
    @Test func thePageInsertsNoMarkupFromData() async throws {
        try await withDashboard { server, _, _ in
            let request = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/?token=\(server.token)")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let page = String(buffer: try await response.body.collect(upTo: 1 << 20))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-security-policy")?.contains("default-src 'none'") == true)
            #expect(!page.contains("innerHTML"))
            #expect(!page.contains("http://") || !page.contains("<script src"), "the page loads nothing from elsewhere")
        }
    }

    @Test func theRingKeepsTheNewestLinesOfEachService() {
        let ring = LogRing(capacity: 3)
        for index in 1...5 { ring.append("chatty \(index)", service: "a", replica: "a-1") }
        ring.append("quiet", service: "b", replica: "b-1")
        let lines = ring.entries()
        #expect(lines.map(\.text) == ["chatty 3", "chatty 4", "chatty 5", "quiet"])
        #expect(lines.map(\.sequence) == [3, 4, 5, 6])
        #expect(ring.entries(after: 5).map(\.text) == ["quiet"])
        ring.append(#"{"level":"info","message":"m","traceID":"t"}"#, service: "b", replica: "b-1")
        let last = ring.entries().last
        #expect(last?.level == "info" && last?.message == "m" && last?.traceID == "t")
    }

    @Test func cpuAndMemoryComeFromProc() throws {
        #expect(ProcessUsage.cpuTicks("12 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 700 300 0 0") == 1000)
        let usage = ProcessUsage()
        let first = try #require(usage.read(getpid()))
        #expect(first.cpuPercent == nil)
        #expect(first.residentBytes > 1 << 20)
        var sum = 0
        for index in 0..<3_000_000 { sum &+= index }  // some CPU between the readings
        #expect(sum != 0)
        let second = try #require(usage.read(getpid()))
        #expect((second.cpuPercent ?? -1) >= 0)
        #expect(usage.read(-1) == nil)
    }
}
