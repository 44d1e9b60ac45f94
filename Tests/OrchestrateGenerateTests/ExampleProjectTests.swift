import Foundation
import OrchestrateContract
import OrchestrateSpec
import OrchestrateTestSupport
import Testing

@testable import OrchestrateGenerate

/// The generated files of examples/storefront, a project that is not the shop: they pass every validator, and each
/// compose healthcheck, run as compose would run it, passes against the running binary and fails when it should.
@Suite(.timeLimit(.minutes(10)))
struct ExampleProjectTests {
    /// Each service's healthcheck command from compose.yaml, by service, as compose runs it: the `test:` list
    /// without `CMD`, with compose's `$$` read back as `$`.
    static func healthchecks(in compose: String) throws -> [String: [String]] {
        var service: String?
        var checks: [String: [String]] = [:]
        for line in compose.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  "), !line.hasPrefix("   "), line.hasSuffix(":") {
                service = String(line.dropFirst(2).dropLast()).trimmingCharacters(in: ["\""])
            }
            guard let service, line.hasPrefix("      test: ") else { continue }
            let flow = Data(line.dropFirst("      test: ".count).utf8)
            let words = try #require(try JSONSerialization.jsonObject(with: flow) as? [String])
            #expect(words.first == "CMD")
            checks[service] = words.dropFirst().map { $0.replacingOccurrences(of: "$$", with: "$") }
        }
        return checks
    }

    static func run(_ words: [String], environment: [String: String] = [:]) async throws -> Int32 {
        let program = try #require(ExternalTool.find(words[0]), "\(words[0]) is not on PATH")
        return try await ExternalTool.runCapturingErrors(
            program, Array(words.dropFirst()), environment: environment
        ).0
    }

    @Test(.requires("the validators", Validators.areInstalled))
    func theExamplesFilesPassEveryValidator() async throws {
        let validators = try Validators.require()
        let directory = try ExternalTool.temporaryDirectory("example")
        defer { try? FileManager.default.removeItem(at: directory) }
        let tree = try GeneratedTree(specText: ExampleProject.spec(ports: [:]))
        try tree.write(to: directory)
        #expect(try await validators.failures(in: [directory]) == [])
        // The Python service is an image with no bash known to it: no healthcheck, so its dependents (none here)
        // would wait for it started, not healthy; the Swift ones have one each.
        let compose = try #require(tree.file("compose.yaml"))
        let checks = try Self.healthchecks(in: compose)
        #expect(Set(checks.keys) == ["catalog", "storefront", "edge"])
    }

    @Test(.requires("the example project built (scripts/test builds it)", ExampleProject.products != nil))
    func eachHealthcheckPassesAgainstTheRunningBinaryAndFailsWhenItShould() async throws {
        let products = try #require(ExampleProject.products, "examples/storefront is not built")
        let catalogPort = try ChildProcess.freePort()
        let storefrontPort = try ChildProcess.freePort()
        let tree = try GeneratedTree(
            specText: ExampleProject.spec(ports: [8081: catalogPort, 8080: storefrontPort]), target: .compose)
        let compose = try #require(tree.file("compose.yaml"))
        let checks = try Self.healthchecks(in: compose)
        let catalogCheck = try #require(checks["catalog"])
        let storefrontCheck = try #require(checks["storefront"])
        let directory = try ExternalTool.temporaryDirectory("healthcheck")
        defer { try? FileManager.default.removeItem(at: directory) }

        // Nothing listens yet: the check fails (connection refused), it does not hang.
        #expect(try await Self.run(catalogCheck) != 0)
        let catalog = try ChildProcess(
            products.appendingPathComponent("Catalog").path,
            environment: ["HOST": "127.0.0.1", "PORT": String(catalogPort)],
            logPath: directory.appendingPathComponent("catalog.log").path)
        defer { _ = catalog.stopNow() }
        let storefront = try ChildProcess(
            products.appendingPathComponent("Storefront").path,
            environment: [
                "HOST": "127.0.0.1", "PORT": String(storefrontPort), "CATALOG_URL": "http://127.0.0.1:\(catalogPort)",
            ],
            logPath: directory.appendingPathComponent("storefront.log").path)
        defer { _ = storefront.stopNow() }
        var passed = false
        for _ in 0..<300 where !passed {
            passed = try await Self.run(catalogCheck) == 0
            if !passed { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(passed, "the catalog check never passed: \(catalog.log)")
        var storefrontPassed = false
        for _ in 0..<300 where !storefrontPassed {
            storefrontPassed = try await Self.run(storefrontCheck) == 0
            if !storefrontPassed { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(storefrontPassed, "the storefront check never passed: \(storefront.log)")

        // Not ready (503 from /ready): the check fails; ready again: it passes.
        let curl = try #require(ExternalTool.find("python3"))
        let post =
            "import urllib.request,sys; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='POST'))"
        #expect(try await ExternalTool.run(curl, ["-c", post, "http://127.0.0.1:\(catalogPort)/ready/off"]).0 == 0)
        #expect(try await Self.run(catalogCheck) != 0)
        #expect(try await ExternalTool.run(curl, ["-c", post, "http://127.0.0.1:\(catalogPort)/ready/on"]).0 == 0)
        #expect(try await Self.run(catalogCheck) == 0)

        // Stopped: the check fails again.
        _ = await catalog.stop()
        #expect(try await Self.run(catalogCheck) != 0)
    }

    /// A probe path that is hostile to a shell, to printf and to compose (`'`, `%`, `$`, `;`) reaches the server's
    /// request line exactly as written, and runs nothing.
    @Test func aHostileProbePathArrivesVerbatimAndRunsNothing() async throws {
        let python = try #require(ExternalTool.find("python3"))
        let directory = try ExternalTool.temporaryDirectory("hostile-probe")
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try ChildProcess.freePort()
        let marker = directory.appendingPathComponent("ran")
        let path = "/ready'$(touch${IFS}\(marker.path))';%s%n$HOME`id`"
        let spec = """
            version: 1
            name: hostile
            services:
              web:
                product: Web
                port: \(port)
                probes:
                  readiness: { http: "\(path.replacingOccurrences(of: "\\", with: "\\\\"))" }
            """
        let loaded = SpecLoader.load(Array(spec.utf8))
        try #require(loaded.spec != nil && !loaded.hasErrors, "\(loaded.diagnostics)")
        let tree = try GeneratedTree(specText: spec, target: .compose)
        let compose = try #require(tree.file("compose.yaml"))
        let check = try #require(try Self.healthchecks(in: compose)["web"])
        // A server that writes the request line it got to a file and answers 200.
        let requestLine = directory.appendingPathComponent("request-line")
        let server = """
            import http.server, sys
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    open(sys.argv[2], "w").write(self.requestline)
                    self.send_response(200); self.end_headers()
            http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
            """
        let process = try ChildProcess(
            python.path, ["-c", server, String(port), requestLine.path], environment: [:],
            logPath: directory.appendingPathComponent("server.log").path)
        defer { _ = process.stopNow() }
        var status: Int32 = -1
        for _ in 0..<300 where status != 0 {
            status = try await Self.run(check)
            if status != 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(status == 0)
        #expect(try String(contentsOf: requestLine, encoding: .utf8) == "GET \(path) HTTP/1.0")
        #expect(!FileManager.default.fileExists(atPath: marker.path))
    }
}

/// The image the generated files name for `builtin: gateway` is the one docker/gateway.Dockerfile builds: same
/// version, and the Dockerfile passes hadolint as the generated one does.
@Suite(.timeLimit(.minutes(5)))
struct BuiltinGatewayImageTests {
    @Test func theGeneratedFilesNameTheImageThisRepositoryBuilds() throws {
        let tree = try GeneratedTree(specText: ExampleProject.spec(ports: [:]))
        let compose = try #require(tree.file("compose.yaml"))
        #expect(compose.contains("image: \"orchestrate-gateway:\(OrchestrateVersion.current)\""))
        let dockerfile = try String(
            contentsOf: ExternalTool.packageRoot.appendingPathComponent("docker/gateway.Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("-t \(OrchestrateVersion.gatewayImage) ."))
        #expect(dockerfile.contains("--product APIGateway"))
    }

    @Test(.requires("hadolint", ExternalTool.find("hadolint") != nil))
    func theGatewayDockerfilePassesHadolint() async throws {
        let hadolint = try #require(ExternalTool.find("hadolint"), "scripts/test installs hadolint")
        let (status, output) = try await ExternalTool.run(
            hadolint,
            [
                "--no-color", "--failure-threshold", "info",
                ExternalTool.packageRoot.appendingPathComponent("docker/gateway.Dockerfile").path,
            ])
        #expect(status == 0, "\(String(decoding: output, as: UTF8.self))")
    }
}
