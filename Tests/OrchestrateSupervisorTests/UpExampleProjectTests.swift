import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OrchestrateSupervisor
import OrchestrateTestSupport
import Testing

/// `orchestrate up` on examples/storefront, a project that is not the shop: plain Hummingbird services that know
/// nothing of orchestrate, and a Python one run by `command:`.
extension UpEndToEndTests {
    /// Which catalog replica answered a call (`HOST:PORT` from its body); nil when the call failed.
    func answeredBy(_ url: String) async -> String? {
        guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10)),
            response.status == .ok, let body = try? await response.body.collect(upTo: 1 << 16),
            let object = try? JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any]
        else { return nil }
        return object["replica"] as? String
    }

    /// The replicas that answered `count` calls made at once (so a pooled client opens several connections).
    func answers(_ url: String, count: Int) async -> [String?] {
        await withTaskGroup(of: String?.self) { group in
            for _ in 0..<count { group.addTask { await self.answeredBy(url) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
    }

    func post(_ url: String) async throws -> UInt {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        return try await HTTPClient.shared.execute(request, timeout: .seconds(10)).status.code
    }

    @Test(.requires("the example project built (scripts/test builds it)", ExampleProject.products != nil))
    func aProjectThatIsNotTheShopCallsByNameSpreadsFollowsReadinessAndHeals() async throws {
        let products = try #require(ExampleProject.products, "examples/storefront is not built")
        let directory = try ExternalTool.temporaryDirectory("example-up")
        defer { try? FileManager.default.removeItem(at: directory) }
        var ports: [Int: Int] = [:]
        for port in ExampleProject.declaredPorts { ports[port] = try ChildProcess.freePort() }
        // catalog's readiness every second, one failure enough: turning it off shows at once.
        let text = try ExampleProject.spec(ports: ports).replacingOccurrences(
            of: "    replicas: 2\n",
            with: """
                    replicas: 2
                    probes:
                      liveness: /health
                      readiness: { http: /ready, interval: 1s, failureThreshold: 1 }

                """)
        #expect(text.contains("interval: 1s"))
        let spec = directory.appendingPathComponent("services.yaml")
        try text.write(to: spec, atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(
            at: ExampleProject.directory.appendingPathComponent("recommender.py"),
            to: directory.appendingPathComponent("recommender.py"))
        let up = try ChildProcess(
            orchestrate, ["up", "-f", spec.path, "--no-build", "--bin-path", products.path, "--color", "never"],
            environment: [
                "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": directory.path,
            ],
            logPath: directory.appendingPathComponent("up.log").path)
        var stopped = false
        defer { if !stopped { up.signal(SIGKILL) } }
        #expect(await eventually(.seconds(120)) { up.log.contains("all 5 replicas of 4 services ready") }, "\(up.log)")
        #expect(!up.log.contains("a private /etc/hosts is not available"), "\(up.log)")
        let rows = try await replicas(directory)
        let catalogs = rows.filter { $0.service == "catalog" }.sorted { $0.replica < $1.replica }
        try #require(catalogs.count == 2, "\(rows)")
        let both: Set<String> = Set(catalogs.map { "\($0.address):\($0.port ?? 0)" })
        let first = "\(catalogs[0].address):\(catalogs[0].port ?? 0)"
        let second = "\(catalogs[1].address):\(catalogs[1].port ?? 0)"
        let recommender = try #require(rows.first { $0.service == "recommender" })
        let storefront = "http://localhost:\(ports[8080]!)"
        // orchestrate's own gateway, which this project asks for with `builtin: gateway`: its route to storefront.
        let gateway = "http://localhost:\(ports[8000]!)"
        let python = "http://\(recommender.address):\(recommender.port ?? 0)"

        // storefront (AsyncHTTPClient, pooled) and the Python service (a new connection per call) reach catalog
        // by CATALOG_URL and by the name written in code, and the calls spread over both replicas.
        for url in [
            storefront + "/products", storefront + "/products/by-name", python + "/recommendations",
            python + "/recommendations/by-name", gateway + "/shop/products",
        ] {
            var seen: Set<String> = []
            var failed = 0
            for _ in 0..<10 where seen.count < 2 {
                let answers = await answers(url, count: 8)
                failed += answers.filter { $0 == nil }.count
                seen.formUnion(answers.compactMap { $0 })
            }
            #expect(failed == 0, "\(url): \(failed) calls failed")
            #expect(seen == both, "\(url) reached \(seen)")
        }

        // catalog-1 stops being ready: it gets no new connection, and a pooled connection to it is closed once it
        // has been quiet for a second (as a draining server closes its own): calls stop going to it, through the
        // name and through the URL.
        #expect(try await post("http://\(first)/ready/off") == 200)
        #expect(
            await eventually {
                (try? await self.replicas(directory))?.first { $0.replica == 1 && $0.service == "catalog" }?.ready
                    == false
            })
        try await Task.sleep(for: .milliseconds(1500))
        for url in [storefront + "/products", storefront + "/products/by-name", python + "/recommendations/by-name"] {
            let answers = await answers(url, count: 8)
            #expect(answers.allSatisfy { $0 == second }, "\(url): \(answers)")
        }
        #expect(try await post("http://\(first)/ready/on") == 200)
        #expect(
            await eventually {
                (try? await self.replicas(directory))?.filter { $0.service == "catalog" }.allSatisfy(\.ready) == true
            })

        // kill -9 catalog-2: restarted, probed as at start-up, and back in rotation.
        let victim = try #require(catalogs[1].pid)
        kill(victim, SIGKILL)
        #expect(
            await eventually {
                guard
                    let row = (try? await self.replicas(directory))?.first(where: {
                        $0.service == "catalog" && $0.replica == 2
                    })
                else { return false }
                return row.ready && row.restarts == 1 && row.pid != victim
            })
        #expect(
            await eventually {
                await self.answers(python + "/recommendations/by-name", count: 4).contains(second)
            })

        up.signal(SIGTERM)
        #expect(await up.wait(timeout: .seconds(60)) == 0, "\(up.log)")
        stopped = true
        #expect(up.log.contains("stopping 127.0.2.2:\(ports[8081]!), the address of catalog"), "\(up.log)")
    }
}
