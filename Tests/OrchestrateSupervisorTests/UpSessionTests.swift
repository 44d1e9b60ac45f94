import Foundation
import OrchestrateSpec
import OrchestrateTestSupport
import Synchronization
import Testing

@testable import OrchestrateSupervisor

/// A whole `up` session with the fake launcher and prober: no binary, no port but the DNS server's (a free one).
@Suite(.timeLimit(.minutes(5)), .serialized) struct UpSessionTests {
    static let spec = """
        version: 1
        name: session
        gateway: { service: edge }
        services:
          store: { product: Store, port: 4101, probes: { readiness: { http: /ready, interval: 20ms } } }
          edge:
            product: Edge
            port: 4100
            dependsOn: [store]
            probes: { readiness: { http: /ready, interval: 20ms } }
            stopGracePeriod: 1h
        """

    struct Session {
        let session: UpSession
        let launcher: FakeLauncher
        let run: Task<Result<Void, SupervisorError>, Never>
        let directory: URL
    }

    func withSession(
        spec text: String = Self.spec, products: String = "/bin", launcher: FakeLauncher = FakeLauncher(),
        _ body: (Session) async throws -> Void
    ) async throws {
        let spec = try #require(SpecLoader.load(Array(text.utf8)).spec)
        let directory = try ExternalTool.temporaryDirectory("session")
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = UpConfiguration(spec: spec, projectDirectory: directory.path, productsDirectory: products)
        configuration.launcher = launcher
        configuration.prober = FakeProber()
        configuration.checksAddresses = false
        configuration.forwardsPublicPorts = false
        configuration.logsToTerminal = false
        configuration.say = { _ in }
        configuration.routeTable = "{}"
        var settings = Supervisor.Settings()
        settings.fastProbeInterval = .milliseconds(5)
        configuration.settings = settings
        let session = UpSession(configuration)
        let run = Task { () -> Result<Void, SupervisorError> in
            do throws(SupervisorError) {
                try await session.run()
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try await body(Session(session: session, launcher: launcher, run: run, directory: directory))
        await session.requestStop("test over")
        await session.requestStop("test over")
        _ = await run.value
    }

    /// The lines the session logged (captured, as the terminal would show them).
    func log(_ session: Session) async -> String {
        await session.session.log?.captured.joined() ?? ""
    }

    @Test func itRunsThenDrainsInTheReverseOrderOfStartSayingWhatEachStepStops() async throws {
        try await withSession { session in
            #expect(await eventually { await session.session.state == .running })
            #expect(await eventually { session.launcher.running("Edge").count == 1 })
            let events = session.launcher.events.withLock { $0 }
            let store = try #require(events.firstIndex { $0.hasPrefix("start Store") })
            let edge = try #require(events.firstIndex { $0.hasPrefix("start Edge") })
            #expect(store < edge, "edge depends on store: it starts once store is ready")
            #expect(
                FileManager.default.fileExists(
                    atPath: session.directory.appendingPathComponent(".orchestrate/routes.json").path))

            await session.session.requestStop("asked by the test")
            #expect(try await session.run.value.get() == ())
            #expect(await session.session.state == .stopped)
            #expect(session.launcher.running("Store").isEmpty && session.launcher.running("Edge").isEmpty)
            let steps = await log(session).split(separator: "\n").compactMap { line -> String? in
                guard let range = line.range(of: "stopping ") else { return nil }
                return String(line[range.upperBound...])
            }
            #expect(
                steps == [
                    "in reverse order of start",
                    "the services: entry points first, then dependents before what they depend on",
                    "127.0.2.2:4100, the address of edge", "127.0.2.1:4101, the address of store",
                    "the control socket", "the record of this run (state.json is removed)", "the DNS server",
                ], "\(steps)")
            // Within the services: the entry point (edge, the gateway) stopped before what it depends on.
            let stops = session.launcher.events.withLock { $0 }.filter { $0.hasPrefix("exit") }
            #expect(stops.first?.hasPrefix("exit Edge") == true, "\(stops)")
            #expect(
                !FileManager.default.fileExists(
                    atPath: session.directory.appendingPathComponent(".orchestrate/state.json").path))
        }
    }

    @Test func aSecondStopRequestKillsWhatIgnoresTheFirst() async throws {
        // Edge ignores SIGTERM and has an hour of grace: only the second request can end it within the time limit.
        try await withSession(launcher: FakeLauncher(stubborn: ["Edge"])) { session in
            #expect(await eventually { session.launcher.running("Edge").count == 1 })
            let edge = try #require(session.launcher.running("Edge").first)
            await session.session.requestStop("first")
            #expect(await eventually { await session.session.state == .draining })
            #expect(await eventually { edge.signals.withLock { $0 } == [SIGTERM] })
            #expect(!edge.hasExited)
            await session.session.requestStop("second")
            _ = await session.run.value
            #expect(edge.signals.withLock { $0 }.contains(SIGKILL))
            #expect(await session.session.state == .stopped)
            #expect(await log(session).contains("second again: killing every process now"))
        }
    }

    @Test func aStartThatFailsStopsWhatHadStartedAndSaysWhy() async throws {
        let spec = try #require(
            SpecLoader.load(Array("version: 1\nname: cyc\nservices:\n  a: { product: A }\n".utf8)).spec)
        let directory = try ExternalTool.temporaryDirectory("session-fail")
        defer { try? FileManager.default.removeItem(at: directory) }
        // No loopback address left for the replica: the plan fails after the DNS server started.
        var configuration = UpConfiguration(spec: spec, projectDirectory: directory.path, productsDirectory: "/bin")
        configuration.launcher = FakeLauncher()
        configuration.say = { _ in }
        configuration.logsToTerminal = false
        configuration.addresses = LoopbackAddresses(first: 2, count: 0)
        let session = UpSession(configuration)
        let error = await #expect(throws: SupervisorError.self) { try await session.run() }
        #expect(error?.code == .start)
        #expect(await session.state == .stopped)
    }

    /// Services swap side by side under `up --watch`, each replica of a product running a snapshot of its build
    /// (`.orchestrate/bin/PRODUCT.INODE`). One service's swap that ends first must not remove the snapshot another
    /// service's next replica is about to run (it did: the shop's second user-service replica could not start).
    @Test func aSwapThatEndsFirstKeepsTheSnapshotsOfTheOthers() async throws {
        let products = try ExternalTool.temporaryDirectory("session-products")
        defer { try? FileManager.default.removeItem(at: products) }
        func build(_ product: String) throws {
            // A new binary as a linker leaves it: a new file (a new inode) in the old one's place.
            let path = products.appendingPathComponent(product).path
            try "#!/bin/sh\n# \(UUID())\n".write(toFile: path + ".new", atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path + ".new")
            #expect(rename(path + ".new", path) == 0)
        }
        for product in ["Store", "Edge"] { try build(product) }
        let spec = Self.spec.replacingOccurrences(
            of: "store: { product: Store, port: 4101,", with: "store: { product: Store, port: 4101, replicas: 2,")
        // Store's third launch (the first of its new replicas) waits until edge's swap has ended.
        let launcher = FakeLauncher(checksFiles: true, hold: (product: "Store", launch: 3))
        try await withSession(spec: spec, products: products.path, launcher: launcher) { session in
            #expect(await eventually { await session.session.state == .running })
            let snapshots = try #require(
                ProductSnapshots.prepare(
                    directory: session.directory.appendingPathComponent(".orchestrate/bin").path,
                    products: products.path))
            await session.session.use(snapshots)
            for product in ["Store", "Edge"] { try build(product) }

            let store = Task { await session.session.swap("store", why: "a new build of Store") }
            #expect(await eventually { launcher.holding == 1 })
            await session.session.swap("edge", why: "a new build of Edge")
            let swapped = await log(session)
            #expect(swapped.contains("edge swapped in"), "\(swapped)")
            launcher.release()
            await store.value

            let log = await log(session)
            #expect(log.contains("store swapped in"), "\(log)")
            #expect(!log.contains("cannot start"), "\(log)")
            // The last replaced replica is stopped after the swap returns, once its connections drained.
            #expect(
                await eventually { launcher.running("Store").count == 2 }, "\(launcher.running("Store").map(\.name))")
            #expect(launcher.launches("Store") == 4)
            // What runs now is what is kept; the first build's snapshots are gone.
            let kept = try FileManager.default.contentsOfDirectory(
                atPath: session.directory.appendingPathComponent(".orchestrate/bin").path)
            #expect(Set(kept.map { String($0.prefix { $0 != "." }) }) == ["Store", "Edge"], "\(kept)")
            #expect(kept.count == 2, "\(kept)")
        }
    }
}

extension UpSession {
    /// What `up --watch` sets up at start (without watching a package).
    func use(_ snapshots: ProductSnapshots) { self.snapshots = snapshots }
}
