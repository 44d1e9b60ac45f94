import DNSWire
import Foundation
import OrchestrateSpec
import OrchestrateTestSupport
import Synchronization
import Testing

@testable import OrchestrateSupervisor

/// A process that exists only in memory: it exits when told to, or when signalled (unless it ignores SIGTERM).
final class FakeProcess: LaunchedProcess {
    let pid: Int32
    let name: String
    private let state = Mutex<(status: ProcessExit?, waiters: [CheckedContinuation<ProcessExit, Never>])>((nil, []))
    let ignoresTerm: Bool
    let signals = Mutex<[Int32]>([])

    init(pid: Int32, name: String, ignoresTerm: Bool) {
        self.pid = pid
        self.name = name
        self.ignoresTerm = ignoresTerm
    }

    var hasExited: Bool { state.withLock { $0.status != nil } }

    func exit(_ status: ProcessExit) {
        let waiters = state.withLock { state -> [CheckedContinuation<ProcessExit, Never>] in
            guard state.status == nil else { return [] }
            state.status = status
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    func signalGroup(_ signal: Int32) {
        signals.withLock { $0.append(signal) }
        if signal == SIGKILL || !ignoresTerm { exit(.signaled(signal)) }
    }

    func exitStatus() async -> ProcessExit {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> ProcessExit? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }
}

/// Records every launch and every exit, in order; what a process does is up to the test.
final class FakeLauncher: ProcessLauncher {
    let processes = Mutex<[FakeProcess]>([])
    let events = Mutex<[String]>([])
    /// Products that cannot be started.
    let missing: Set<String>
    /// Products whose processes ignore SIGTERM.
    let stubborn: Set<String>
    /// Fail a launch whose executable is not there, as exec does (else only `missing` fails).
    let checksFiles: Bool
    /// A launch that waits until `release()`: the product, and which of its launches (1 for its first).
    let hold: (product: String, launch: Int)?
    private let held = Mutex<[CheckedContinuation<Void, Never>]>([])
    /// Launches asked for, by product (failed ones too).
    private let attempts = Mutex<[String: Int]>([:])
    private let nextPID = Atomic<Int32>(1000)

    init(
        missing: Set<String> = [], stubborn: Set<String> = [], checksFiles: Bool = false,
        hold: (product: String, launch: Int)? = nil
    ) {
        self.missing = missing
        self.stubborn = stubborn
        self.checksFiles = checksFiles
        self.hold = hold
    }

    func launch(_ request: LaunchRequest, output: @escaping @Sendable (String) -> Void) async throws
        -> any LaunchedProcess
    {
        // `Store.1234` (a snapshot under `up --watch`) is a launch of Store.
        let file = URL(fileURLWithPath: request.executable).lastPathComponent
        let product = String(file.prefix { $0 != "." })
        let attempt = attempts.withLock { attempts in
            attempts[product, default: 0] += 1
            return attempts[product] ?? 0
        }
        if let hold, hold.product == product, attempt == hold.launch {
            await withCheckedContinuation { continuation in held.withLock { $0.append(continuation) } }
        }
        guard !missing.contains(product), !checksFiles || FileManager.default.fileExists(atPath: request.executable)
        else {
            throw SupervisorError(.launch, "cannot start \(request.executable): No such file or directory")
        }
        let name = "\(product)@\(request.environment["HOST"] ?? "?")"
        let process = FakeProcess(
            pid: nextPID.wrappingAdd(1, ordering: .relaxed).newValue, name: name,
            ignoresTerm: stubborn.contains(product))
        processes.withLock { $0.append(process) }
        events.withLock { $0.append("start \(name)") }
        output("hello from \(name)")
        Task {
            let status = await process.exitStatus()
            self.events.withLock { $0.append("exit \(name) \(status)") }
        }
        return process
    }

    func running(_ product: String) -> [FakeProcess] {
        processes.withLock { $0.filter { $0.name.hasPrefix(product + "@") && !$0.hasExited } }
    }

    func launches(_ product: String) -> Int {
        processes.withLock { $0.filter { $0.name.hasPrefix(product + "@") }.count }
    }

    /// How many launches wait for `release()`.
    var holding: Int { held.withLock { $0.count } }

    func release() {
        let waiting = held.withLock { held in
            defer { held = [] }
            return held
        }
        for continuation in waiting { continuation.resume() }
    }
}

/// Answers probes from a table the test changes: a replica passes readiness or liveness when listed.
final class FakeProber: Prober {
    let failingReadiness = Mutex<Set<String>>([])
    let failingLiveness = Mutex<Set<String>>([])

    func probe(_ check: Probe.Check, replica: LocalPlan.Replica, timeout: Duration) async -> ProbeRunner.Result {
        let key = "\(replica.service)-\(replica.index)"
        let failing: Bool
        if case .http(let path) = check, path == "/health" {
            failing = failingLiveness.withLock { $0.contains(key) || $0.contains(replica.service) }
        } else {
            failing = failingReadiness.withLock {
                $0.contains(key) || $0.contains(replica.service) || $0.contains(replica.address)
            }
        }
        return ProbeRunner.Result(success: !failing, detail: failing ? "HTTP 503" : "HTTP 200")
    }
}

/// The supervisor's logic with a fake launcher and fake probes: ordering, restarts, crash loops, probe transitions,
/// shutdown order. Intervals are milliseconds so the whole suite takes about a second.
@Suite(.timeLimit(.minutes(5))) struct SupervisorTests {
    static let spec = """
        version: 1
        name: test
        services:
          store:
            product: Store
            port: 4001
            probes:
              readiness: { http: /ready, interval: 20ms }
              liveness: { http: /health, interval: 20ms, failureThreshold: 2 }
          web:
            product: Web
            port: 4002
            replicas: 2
            dependsOn: [store]
            probes:
              readiness: { http: /ready, interval: 20ms }
          once:
            product: Once
            restart: never
            stopGracePeriod: 100ms
        """

    struct Harness: Sendable {
        let supervisor: Supervisor
        let launcher: FakeLauncher
        let prober: FakeProber
        let directory: ServiceDirectory
        let log: SupervisorLog
        let state: URL
    }

    func withSupervisor(
        spec text: String = Self.spec, launcher: FakeLauncher = FakeLauncher(), crashLoopLimit: Int = 5,
        initialBackoff: Duration = .milliseconds(20), _ body: (Harness) async throws -> Void
    ) async throws {
        let spec = try #require(SpecLoader.load(Array(text.utf8)).spec)
        let state = try ExternalTool.temporaryDirectory("supervisor")
        defer { try? FileManager.default.removeItem(at: state) }
        let plan = try LocalPlan.make(
            spec: spec, stateDirectory: state.path, dnsPort: 1,
            secrets: SecretStore(directory: state.path + "/secrets", environment: [:]))
        var settings = Supervisor.Settings()
        settings.fastProbeInterval = .milliseconds(5)
        settings.restart.initial = initialBackoff
        settings.restart.maximum = max(initialBackoff, .milliseconds(100))
        settings.restart.crashLoopLimit = crashLoopLimit
        let directory = ServiceDirectory(project: "test")
        let log = SupervisorLog(
            directory: state.path + "/logs", services: ["store", "web", "once"], maximumReplicas: 2, useColor: false,
            terminal: false, capture: true)
        let prober = FakeProber()
        let supervisor = Supervisor(
            plan: plan, executableDirectory: "/bin", launcher: launcher, prober: prober,
            directory: directory, log: log, settings: settings)
        let harness = Harness(
            supervisor: supervisor, launcher: launcher, prober: prober, directory: directory, log: log, state: state)
        try await body(harness)
        await supervisor.shutdown()
    }

    func row(_ harness: Harness, _ service: String, _ replica: Int = 1) async -> ReplicaStatus? {
        await harness.supervisor.status().first { $0.service == service && $0.replica == replica }
    }

    func addresses(_ directory: ServiceDirectory, _ name: String) -> [String] {
        directory.answer(name: name, type: DNSMessage.RecordType.a.rawValue).1.compactMap {
            if case .a(let address) = $0 { return address }
            return nil
        }
    }

    @Test func aServiceStartsOnlyOnceItsDependencyIsReady() async throws {
        try await withSupervisor { harness in
            harness.prober.failingReadiness.withLock { _ = $0.insert("store") }
            await harness.supervisor.start()
            #expect(await eventually { harness.launcher.launches("Store") == 1 })
            #expect(await eventually { harness.launcher.launches("Once") == 1 })  // independent: starts at once
            try await Task.sleep(for: .milliseconds(100))
            #expect(harness.launcher.launches("Web") == 0)
            #expect(await row(harness, "web")?.state == .waiting)
            #expect(await row(harness, "web")?.detail == "waiting for store")
            harness.prober.failingReadiness.withLock { _ = $0.remove("store") }
            #expect(await eventually { harness.launcher.running("Web").count == 2 })
            // `once` has no probes: ready once running.
            #expect(await eventually { harness.supervisor.allReady() })
            #expect(await eventually { self.addresses(harness.directory, "web").count == 2 })
            let events = harness.launcher.events.withLock { $0 }
            let firstWeb = try #require(events.firstIndex { $0.hasPrefix("start Web") })
            let store = try #require(events.firstIndex { $0.hasPrefix("start Store") })
            #expect(store < firstWeb)
        }
    }

    @Test func anExitedReplicaIsRestartedAtOnceThenAfterABackoffOutOfDNSMeanwhile() async throws {
        // A backoff long enough that no late poll on a starved machine sees it over before looking.
        try await withSupervisor(initialBackoff: .seconds(4)) { harness in
            await harness.supervisor.start()
            #expect(await eventually { self.addresses(harness.directory, "store") == ["127.0.0.2"] })
            // The first exit of a running replica: started again at once.
            try #require(harness.launcher.running("Store").first).exit(.exited(1))
            #expect(
                await eventually {
                    harness.launcher.running("Store").count == 1 && harness.launcher.launches("Store") == 2
                })
            #expect(await eventually { await row(harness, "store")?.restarts == 1 })
            #expect(
                harness.log.captured.contains { $0.contains("store-1 exit 1 after") && $0.hasSuffix("; restarting\n") })
            #expect(await eventually { self.addresses(harness.directory, "store") == ["127.0.0.2"] })
            // A second exit soon after: a backoff of 4 s ± 20 %, out of DNS meanwhile.
            try #require(harness.launcher.running("Store").first).exit(.exited(1))
            #expect(await eventually { await row(harness, "store")?.state == .backoff })
            #expect(self.addresses(harness.directory, "store").isEmpty)
            #expect(harness.launcher.launches("Store") == 2)
            #expect(await eventually(.seconds(30)) { harness.launcher.launches("Store") == 3 })
            #expect(await eventually { self.addresses(harness.directory, "store") == ["127.0.0.2"] })
            #expect(
                harness.log.captured.contains { $0.contains("store-1 exit 1 after") && $0.contains("restarting in") })
        }
    }

    /// A restarted replica is probed as at start-up until it is ready: with an hour between readiness probes, it is
    /// back in DNS as soon as its probe passes, not an hour later.
    @Test func aRestartedReplicaIsProbedAsAtStartUpUntilReady() async throws {
        let hourly = Self.spec.replacingOccurrences(
            of: "readiness: { http: /ready, interval: 20ms }\n      liveness",
            with: "readiness: { http: /ready, interval: 1h }\n      liveness")
        #expect(hourly != Self.spec)
        try await withSupervisor(spec: hourly) { harness in
            await harness.supervisor.start()
            #expect(await eventually { self.addresses(harness.directory, "store") == ["127.0.0.2"] })
            // The new process is not ready at first, so its first probe fails; then it is.
            harness.prober.failingReadiness.withLock { _ = $0.insert("store") }
            try #require(harness.launcher.running("Store").first).exit(.exited(1))
            #expect(await eventually { harness.launcher.launches("Store") == 2 })
            #expect(await eventually { await row(harness, "store")?.detail.hasPrefix("readiness probe, try ") == true })
            #expect(self.addresses(harness.directory, "store").isEmpty)
            harness.prober.failingReadiness.withLock { _ = $0.remove("store") }
            #expect(await eventually { self.addresses(harness.directory, "store") == ["127.0.0.2"] })
        }
    }

    /// Each new Store process crashes as soon as it runs, until the service is marked failed (at most 10 times).
    func crashEveryStoreProcess(_ harness: Harness) async {
        for _ in 0..<10 {
            var appeared = false
            for _ in 0..<500 {
                if !harness.launcher.running("Store").isEmpty { appeared = true; break }
                if await row(harness, "store")?.state == .failed { return }
                try? await Task.sleep(for: .milliseconds(10))
            }
            guard appeared else { return }
            for process in harness.launcher.running("Store") { process.exit(.signaled(SIGSEGV)) }
        }
    }

    @Test func aCrashLoopMarksTheServiceFailedAndLeavesTheOthersRunning() async throws {
        try await withSupervisor(crashLoopLimit: 3) { harness in
            await harness.supervisor.start()
            #expect(await eventually { harness.launcher.running("Web").count == 2 })
            await crashEveryStoreProcess(harness)
            #expect(await eventually { await row(harness, "store")?.state == .failed })
            #expect(harness.launcher.launches("Store") == 4)  // the first run and 3 restarts; the 4th exit is the loop
            #expect(harness.supervisor.failedServices() == ["store"])
            #expect(harness.log.captured.contains { $0.contains("FAILED") && $0.contains("crash loop") })
            #expect(harness.launcher.running("Web").count == 2)
            // `orchestrate start` gives it another go: it is no longer failed from the moment it starts, even while it
            // is not ready yet (its readiness fails here).
            harness.prober.failingReadiness.withLock { _ = $0.insert("store") }
            try await harness.supervisor.start("store")
            #expect(harness.supervisor.failedServices() == [])
            #expect(await eventually { harness.launcher.running("Store").count == 1 })
            #expect(await row(harness, "store")?.ready == false)
            harness.prober.failingReadiness.withLock { _ = $0.remove("store") }
            // `orchestrate restart` revives it.
            try await harness.supervisor.restart("store", readyTimeout: .seconds(5))
            #expect(await row(harness, "store")?.state == .running)
        }
    }

    @Test func failingReadinessTakesAReplicaOutOfDNSAndPassingPutsItBack() async throws {
        try await withSupervisor { harness in
            await harness.supervisor.start()
            #expect(await eventually { self.addresses(harness.directory, "web").count == 2 })
            harness.prober.failingReadiness.withLock { _ = $0.insert("web-2") }
            // failureThreshold defaults to 3 at a 20 ms interval.
            #expect(await eventually { self.addresses(harness.directory, "web") == ["127.0.0.3"] })
            #expect(await row(harness, "web", 2)?.state == .unready)
            #expect(harness.launcher.launches("Web") == 2)  // readiness never restarts
            harness.prober.failingReadiness.withLock { _ = $0.remove("web-2") }
            #expect(await eventually { self.addresses(harness.directory, "web").count == 2 })
        }
    }

    @Test func failingLivenessRestartsTheReplica() async throws {
        try await withSupervisor { harness in
            await harness.supervisor.start()
            #expect(await eventually { !harness.launcher.running("Store").isEmpty })
            let first = try #require(harness.launcher.running("Store").first)
            harness.prober.failingLiveness.withLock { _ = $0.insert("store") }
            #expect(await eventually { first.hasExited })
            #expect(first.signals.withLock { $0 } == [SIGTERM])
            harness.prober.failingLiveness.withLock { _ = $0.remove("store") }
            #expect(
                await eventually {
                    harness.launcher.launches("Store") == 2 && harness.launcher.running("Store").count == 1
                })
            #expect(harness.log.captured.contains { $0.contains("liveness probe failed 2 times") })
        }
    }

    @Test func restartNeverLeavesAnExitedServiceStopped() async throws {
        try await withSupervisor { harness in
            await harness.supervisor.start()
            #expect(await eventually { harness.launcher.running("Once").count == 1 })
            harness.launcher.running("Once").first?.exit(.exited(0))
            #expect(await eventually { await row(harness, "once")?.state == .stopped })
            try await Task.sleep(for: .milliseconds(100))
            #expect(harness.launcher.launches("Once") == 1)
        }
    }

    @Test func aProgramThatCannotStartFailsWithTheReason() async throws {
        try await withSupervisor(launcher: FakeLauncher(missing: ["Store"])) { harness in
            await harness.supervisor.start()
            #expect(await eventually { await row(harness, "store")?.state == .failed })
            #expect(await row(harness, "store")?.detail.contains("No such file") == true)
            #expect(await row(harness, "web")?.detail == "waiting for store (failed)")
        }
    }

    @Test func shutdownStopsDependentsFirstAndKillsWhatIgnoresSIGTERM() async throws {
        try await withSupervisor(launcher: FakeLauncher(stubborn: ["Once"])) { harness in
            await harness.supervisor.start()
            #expect(
                await eventually {
                    harness.launcher.running("Web").count == 2 && harness.launcher.running("Once").count == 1
                })
            let once = try #require(harness.launcher.running("Once").first)
            await harness.supervisor.shutdown()
            let exits = harness.launcher.events.withLock { $0.filter { $0.hasPrefix("exit") } }
            let lastWeb = try #require(exits.lastIndex { $0.hasPrefix("exit Web") })
            let store = try #require(exits.firstIndex { $0.hasPrefix("exit Store") })
            #expect(lastWeb < store)
            #expect(once.signals.withLock { $0 } == [SIGTERM, SIGKILL])  // after its 100 ms grace period
            #expect(harness.launcher.processes.withLock { $0.allSatisfy(\.hasExited) })
            #expect(await harness.supervisor.status().allSatisfy { $0.state == .stopped && $0.pid == nil })
        }
    }
}
