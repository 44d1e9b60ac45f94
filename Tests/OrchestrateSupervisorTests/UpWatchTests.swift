import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OrchestrateSupervisor
import OrchestrateTestSupport
import Synchronization
import Testing

/// `orchestrate up --watch` on a copy of examples/storefront (a project that is not the shop), as a user runs it:
/// edits to a handler, a syntax error and its fix, services.yaml scaled and broken, a command's file touched. Run
/// alone by scripts/test after the other tests: each edit runs `swift build`, which keeps both cores busy.
@Suite(.timeLimit(.minutes(15)), .serialized) struct UpWatchTests {
    let orchestrate = productsDirectory.appendingPathComponent("orchestrate").path

    /// Calls in a loop until stopped (at most `limit` calls, at most `deadline`), counting what failed.
    final class LoopingClient: Sendable {
        let calls = Atomic<Int>(0)
        let failures = Mutex<[String]>([])
        let bodies = Mutex<[String]>([])
        private let stopped = Atomic<Bool>(false)

        func run(_ url: String, newConnectionEach: Bool, limit: Int = 20_000, deadline: Duration = .seconds(600))
            async
        {
            let end = ContinuousClock.now + deadline
            while !stopped.load(ordering: .relaxed), calls.load(ordering: .relaxed) < limit, ContinuousClock.now < end {
                var request = HTTPClientRequest(url: url)
                if newConnectionEach { request.headers.add(name: "Connection", value: "close") }
                calls.wrappingAdd(1, ordering: .relaxed)
                do {
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                    let body = String(buffer: try await response.body.collect(upTo: 1 << 16))
                    if response.status == .ok {
                        bodies.withLock { $0 = Array(($0 + [body]).suffix(4)) }
                    } else {
                        failures.withLock { $0.append("HTTP \(response.status.code): \(body)") }
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
        }

        func stop() { stopped.store(true, ordering: .relaxed) }
        var latest: String { bodies.withLock { $0.last ?? "" } }
    }

    /// Where the test's own files go: outside the project, whose every file is watched.
    let scratch: URL

    init() throws {
        scratch = try ExternalTool.temporaryDirectory("watch-test")
    }

    func status(_ spec: URL) async throws -> [ReplicaStatus] {
        let log = scratch.appendingPathComponent("status-\(UUID().uuidString).log").path
        let process = try ChildProcess(
            orchestrate, ["status", "--format", "json", "-f", spec.path], environment: ["PATH": "/usr/bin:/bin"],
            logPath: log)
        guard await process.wait(timeout: .seconds(60)) == 0 else { return [] }
        let output = process.log
        try? FileManager.default.removeItem(atPath: log)
        return (try? JSONDecoder().decode([ReplicaStatus].self, from: Data(output.utf8))) ?? []
    }

    func pids(_ rows: [ReplicaStatus], _ service: String) -> [Int32] {
        rows.filter { $0.service == service }.compactMap(\.pid).sorted()
    }

    /// Replaces text in a file the way an editor saves: the whole file written again.
    func edit(_ file: URL, _ old: String, _ new: String) throws {
        let text = try String(contentsOf: file, encoding: .utf8)
        try #require(text.contains(old), "\(file.lastPathComponent) has no \(old)")
        try text.replacingOccurrences(of: old, with: new).write(to: file, atomically: true, encoding: .utf8)
    }

    @Test(
        .requires(
            "the watch copy of examples/storefront built (scripts/test builds it)", ExampleProject.watchCopyIsBuilt))
    func editsRebuildAndSwapBehindReadinessAndBadEditsChangeNothing() async throws {
        let copy = try ExampleProject.resetWatchCopy()
        var ports: [Int: Int] = [:]
        for port in ExampleProject.declaredPorts { ports[port] = try ChildProcess.freePort() }
        let spec = copy.appendingPathComponent("services.yaml")
        try ExampleProject.spec(ports: ports).write(to: spec, atomically: true, encoding: .utf8)
        let catalogSource = copy.appendingPathComponent("Sources/Catalog/Catalog.swift")
        let up = try ChildProcess(
            orchestrate, ["up", "--watch", "-f", spec.path, "--color", "never"],
            environment: [
                "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
                "HOME": ProcessInfo.processInfo.environment["HOME"] ?? copy.path,
            ],
            logPath: scratch.appendingPathComponent("up.log").path)
        var stopped = false
        defer { if !stopped { up.signal(SIGKILL) } }
        #expect(await eventually(.seconds(300)) { up.log.contains("all 5 replicas of 4 services ready") }, "\(up.log)")
        #expect(await eventually(.seconds(60)) { up.log.contains("watching the sources of 2 products") }, "\(up.log)")
        let before = try await status(spec)
        let catalog = try #require(before.first { $0.service == "catalog" })
        // Through storefront (its pooled client to catalog's stable address), and straight to that address with a
        // new connection per call.
        let stableAddress = try #require(
            try String(contentsOf: copy.appendingPathComponent(".orchestrate/hosts"), encoding: .utf8)
                .split(separator: "\n").first { $0.hasSuffix("\tcatalog catalog.storefront.local") }?
                .split(separator: "\t").first.map(String.init))
        let storefront = "http://localhost:\(ports[8080]!)/products"
        let direct = "http://\(stableAddress):\(catalog.port ?? 0)/items"
        #expect(await eventually { (try? await HTTPClient.shared.get(url: storefront).get().status) == .ok })

        // 1. A handler's response edited: built, swapped one replica at a time; no call fails meanwhile.
        let viaStorefront = LoopingClient()
        let straight = LoopingClient()
        let loops = [
            Task { await viaStorefront.run(storefront, newConnectionEach: false) },
            Task { await straight.run(direct, newConnectionEach: true) },
        ]
        #expect(await eventually { viaStorefront.calls.load(ordering: .relaxed) > 20 })
        try edit(catalogSource, #""tea", "kettle", "cup""#, #""tea", "kettle", "cup", "saucer""#)
        #expect(await eventually(.seconds(300)) { up.log.contains("catalog swapped in") }, "\(up.log)")
        #expect(
            await eventually(.seconds(60)) {
                viaStorefront.latest.contains("saucer") && straight.latest.contains("saucer")
            })
        // Calls after the swap, then the loops end.
        let afterSwap = viaStorefront.calls.load(ordering: .relaxed)
        #expect(await eventually { viaStorefront.calls.load(ordering: .relaxed) > afterSwap + 20 })
        viaStorefront.stop()
        straight.stop()
        for loop in loops { await loop.value }
        #expect(viaStorefront.failures.withLock { $0 } == [], "through storefront")
        #expect(straight.failures.withLock { $0 } == [], "to catalog's address")
        #expect(straight.calls.load(ordering: .relaxed) > 20)
        print(
            "UpWatchTests: through the swap, \(viaStorefront.calls.load(ordering: .relaxed)) calls through storefront "
                + "and \(straight.calls.load(ordering: .relaxed)) to catalog's address")
        let swapped = try await status(spec)
        #expect(Set(pids(swapped, "catalog")).isDisjoint(with: pids(before, "catalog")))
        #expect(swapped.filter { $0.service == "catalog" }.allSatisfy { $0.restarts == 0 && $0.ready })
        #expect(pids(swapped, "storefront") == pids(before, "storefront"), "only catalog was rebuilt")
        #expect(up.log.contains("building Catalog (Sources/Catalog/Catalog.swift)"), "\(up.log)")
        // The build's progress and the swap are in the dashboard's log view too.
        let dashboard = try #require(
            up.log.split(separator: "\n").first { $0.contains("dashboard: http://") }?
                .split(separator: " ").last.map(String.init))
        let logsURL = dashboard.replacingOccurrences(of: "/?token=", with: "/api/logs?after=0&token=")
        let logs = String(buffer: try await HTTPClient.shared.get(url: logsURL).get().body ?? ByteBuffer())
        #expect(logs.contains(#""service":"build""#), "\(logs.prefix(2000))")
        #expect(logs.contains("Compiling Catalog"))
        #expect(logs.contains("catalog swapped in"))

        // 2. A syntax error: the error shown with file:line:column; the old build keeps serving. Fixed: it swaps.
        try edit(catalogSource, #""saucer"]"#, #""saucer""#)
        #expect(await eventually(.seconds(300)) { up.log.contains("the build failed") }, "\(up.log)")
        #expect(up.log.contains("build         | Sources/Catalog/Catalog.swift:"), "\(up.log)")
        #expect(up.log.contains(": error: "))
        let broken = try await status(spec)
        #expect(pids(broken, "catalog") == pids(swapped, "catalog"), "a failed build changes nothing")
        let stillServing = try await HTTPClient.shared.get(url: direct).get()
        #expect(stillServing.status == .ok)
        #expect(String(buffer: stillServing.body ?? ByteBuffer()).contains("saucer"))
        // Fixed, in the same batch as an edit to storefront: one build of both, and the two services swap side by
        // side (catalog's two replicas one at a time, storefront's one), every new replica running the new build.
        try edit(catalogSource, #""saucer""#, #""saucer", "spoon"]"#)
        try edit(
            copy.appendingPathComponent("Sources/Storefront/Storefront.swift"), "http://HOST:PORT\\n",
            "http://HOST:PORT (it names catalog)\\n")
        #expect(
            await eventually(.seconds(300)) {
                let response = try? await HTTPClient.shared.get(url: direct).get()
                return String(buffer: response?.body ?? ByteBuffer()).contains("spoon")
            }, "\(up.log)")
        #expect(await eventually(.seconds(120)) { up.log.contains("storefront swapped in") }, "\(up.log)")
        #expect(up.log.contains("building Catalog, Storefront ("), "one batch, one build: \(up.log)")
        #expect(!up.log.contains("cannot start"), "\(up.log)")
        let both = try await status(spec)
        #expect(both.filter { $0.service == "catalog" }.count == 2)
        #expect(both.filter { $0.service == "catalog" || $0.service == "storefront" }.allSatisfy { $0.ready })
        #expect(Set(pids(both, "storefront")).isDisjoint(with: pids(broken, "storefront")))

        // 3. services.yaml scales storefront from 1 to 2: the new replica is ready, in status and in DNS; nothing
        // else restarts.
        #expect(await eventually(.seconds(60)) { up.log.components(separatedBy: "catalog swapped in").count == 3 })
        let scaledFrom = try await status(spec)
        try edit(spec, "    product: Storefront\n", "    product: Storefront\n    replicas: 2\n")
        #expect(
            await eventually(.seconds(60)) { up.log.contains("services.yaml applied: storefront scaled 1→2") },
            "\(up.log)")
        #expect(
            try await eventually(.seconds(60)) {
                let rows = try await status(spec).filter { $0.service == "storefront" }
                return rows.count == 2 && rows.allSatisfy(\.ready)
            })
        let scaled = try await status(spec)
        #expect(pids(scaled, "catalog") == pids(scaledFrom, "catalog"))
        #expect(pids(scaled, "edge") == pids(scaledFrom, "edge"))
        #expect(pids(scaled, "storefront").contains(pids(scaledFrom, "storefront")[0]), "the first one kept running")
        let resolved = try ChildProcess(
            orchestrate, ["resolve", "-f", spec.path, "storefront"], environment: ["PATH": "/usr/bin:/bin"],
            logPath: scratch.appendingPathComponent("resolve.log").path)
        #expect(await resolved.wait(timeout: .seconds(60)) == 0)
        for row in scaled where row.service == "storefront" {
            #expect(resolved.log.contains(row.address), "\(resolved.log)")
        }

        // catalog's environment changed: catalog alone is replaced, behind readiness.
        try edit(spec, "    product: Catalog\n", "    product: Catalog\n    env: { GREETING: hello }\n")
        #expect(
            await eventually(.seconds(60)) { up.log.contains("services.yaml applied: catalog restarted") },
            "\(up.log)")
        let restarted = try await status(spec)
        #expect(Set(pids(restarted, "catalog")).isDisjoint(with: pids(scaled, "catalog")))
        #expect(pids(restarted, "storefront") == pids(scaled, "storefront"))
        #expect(pids(restarted, "edge") == pids(scaled, "edge"))
        // A service added, then removed.
        let extraPort = try ChildProcess.freePort()
        let withoutExtra = try String(contentsOf: spec, encoding: .utf8)
        let extra = [
            "  extra:", "    command: [python3, recommender.py]", "    image: storefront-recommender:0.1.0",
            "    port: \(extraPort)", "    dependsOn: [catalog]", "",
        ]
        try (withoutExtra + extra.joined(separator: "\n")).write(to: spec, atomically: true, encoding: .utf8)
        #expect(
            try await eventually(.seconds(60)) {
                try await status(spec).contains { $0.service == "extra" && $0.ready }
            }, "\(up.log)")
        #expect(up.log.contains("services.yaml applied: added extra"))
        try withoutExtra.write(to: spec, atomically: true, encoding: .utf8)
        #expect(
            await eventually(.seconds(60)) { up.log.contains("services.yaml applied: removed extra") }, "\(up.log)")
        let settled = try await status(spec)
        #expect(!settled.contains { $0.service == "extra" })
        #expect(pids(settled, "catalog") == pids(restarted, "catalog"))

        // 4. An invalid edit: the diagnostic (file:line:column) is shown and nothing changes.
        try edit(
            spec, "    port: \(ports[8081]!)\n    replicas: 2\n", "    port: \(ports[8081]!)\n    replicas: many\n")
        #expect(
            await eventually(.seconds(60)) { up.log.contains("services.yaml is invalid; nothing changed") }, "\(up.log)"
        )
        #expect(up.log.contains("error[wrong-type]: services.catalog.replicas"), "\(up.log)")
        #expect(up.log.range(of: #"services\.yaml:\d+:\d+: error"#, options: .regularExpression) != nil)
        let unchanged = try await status(spec)
        #expect(unchanged.map(\.pid) == settled.map(\.pid))

        // 5. A command's file touched: it restarts (behind readiness); with `watch: false` it does not.
        let recommender = copy.appendingPathComponent("recommender.py")
        let first = pids(unchanged, "recommender")
        try edit(recommender, "\n", "\n# touched\n")
        #expect(
            try await eventually(.seconds(60)) {
                let now = pids(try await status(spec), "recommender")
                return now.count == 1 && now != first
            }, "\(up.log)")
        #expect(up.log.contains("swapping recommender (files under its directory changed)"))
        #expect(up.log.components(separatedBy: "swapping recommender").count == 2, "one touch, one restart")
        try edit(spec, "    replicas: many\n", "    replicas: 2\n")
        try edit(
            spec, "    command: [python3, recommender.py]", "    watch: false\n    command: [python3, recommender.py]")
        #expect(
            await eventually(.seconds(60)) { up.log.contains("services.yaml is valid; nothing that runs changed") },
            "\(up.log)")
        let optedOut = pids(try await status(spec), "recommender")
        try edit(recommender, "# touched\n", "# touched again\n")
        // The touch is seen (the batch reaches the watcher), and no swap follows.
        try edit(catalogSource, #""spoon"]"#, #""spoon", "fork"]"#)
        #expect(await eventually(.seconds(300)) { up.log.components(separatedBy: "catalog swapped in").count == 4 })
        #expect(pids(try await status(spec), "recommender") == optedOut)

        up.signal(SIGTERM)
        #expect(await up.wait(timeout: .seconds(60)) == 0, "\(up.log)")
        stopped = true
        #expect(!up.log.contains("FAILED"), "\(up.log)")
        try? FileManager.default.removeItem(at: scratch)
    }
}
