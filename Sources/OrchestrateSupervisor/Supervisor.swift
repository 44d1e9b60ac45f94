import OrchestrateSpec
import Synchronization

/// Runs a `LocalPlan`: each service starts once every service it depends on is ready, independent services in
/// parallel; replicas are probed, restarted with backoff and taken in and out of DNS; `shutdown` stops everything
/// in reverse dependency order. Processes are started through a `ProcessLauncher` and probed through a `Prober`, so
/// the logic is tested with fakes.
public actor Supervisor {
    public struct Settings: Sendable {
        public var restart = RestartTracker.Settings()
        /// How often a starting replica is probed until it is first ready: every `fastProbeInterval` for the first
        /// `fastProbeWindow` after it started (a Swift service is ready in tens of milliseconds, and every
        /// dependent waits for it), then every `slowProbeInterval` (never more often than the probe's interval).
        public var fastProbeInterval: Duration = .milliseconds(5)
        public var fastProbeWindow: Duration = .seconds(2)
        public var slowProbeInterval: Duration = .milliseconds(100)
        /// The zero of the monotonic times given to the restart tracker.
        var epoch = ContinuousClock.now

        public init() {}
    }

    /// Service names in plan order.
    var names: [String]
    var dependencies: [String: [String]]
    var waves: [[String]]
    /// The gateway and the public services: they take outside traffic, so they stop first.
    var entryPoints: [String]
    var runners: [String: [ReplicaRunner]]
    /// Replicas replaced by `up --watch`, out of rotation, draining until they stop.
    var retiring: [ReplicaRunner] = []
    /// The addresses of each service's current replicas: what readiness is asked of, from any thread.
    let members = Mutex<[String: [String]]>([:])
    let log: SupervisorLog
    let settings: Settings
    let board = ReadinessBoard()
    let context: RunnerContext
    let executableDirectory: String
    var starters: [Task<Void, Never>] = []
    var isShuttingDown = false
    var addressPool: AddressPool?

    /// - Parameter executableDirectory: Where the products are (`swift build --show-bin-path`); a replica with an
    ///   `executable` of its own runs that instead.
    public init(
        plan: LocalPlan, executableDirectory: String, launcher: any ProcessLauncher, prober: any Prober,
        directory: ServiceDirectory, log: SupervisorLog, state: StateRecorder? = nil, settings: Settings = Settings()
    ) {
        (names, dependencies, entryPoints) = Self.shape(of: plan)
        waves = plan.waves
        self.log = log
        self.settings = settings
        let context = RunnerContext(
            launcher: launcher, prober: prober, directory: directory, settings: settings, log: log, state: state,
            board: board)
        self.context = context
        self.executableDirectory = executableDirectory
        var runners: [String: [ReplicaRunner]] = [:]
        for replica in plan.replicas {
            runners[replica.service, default: []].append(
                Self.runner(for: replica, executableDirectory: executableDirectory, context: context))
        }
        self.runners = runners
        members.withLock { members in
            for (service, replicas) in runners { members[service] = replicas.map(\.replica.address) }
        }
    }

    /// The plan's services in order, what each depends on, and its entry points.
    static func shape(of plan: LocalPlan) -> (names: [String], dependencies: [String: [String]], entryPoints: [String])
    {
        var names: [String] = []
        var dependencies: [String: [String]] = [:]
        var entryPoints: [String] = []
        for replica in plan.replicas where dependencies[replica.service] == nil {
            names.append(replica.service)
            dependencies[replica.service] = replica.supervision.dependsOn
            if replica.supervision.isEntryPoint { entryPoints.append(replica.service) }
        }
        return (names, dependencies, entryPoints)
    }

    /// A runner for the replica, listed in the directory (not ready) when it has a port.
    static func runner(for replica: LocalPlan.Replica, executableDirectory: String, context: RunnerContext)
        -> ReplicaRunner
    {
        if let port = replica.port {
            context.directory.upsert(
                ServiceDirectory.Replica(
                    service: replica.service, index: replica.index, address: replica.address, port: port))
        }
        let executable = replica.executable ?? executableDirectory + "/" + replica.product
        return ReplicaRunner(replica: replica, executable: executable, context: context)
    }

    /// Starts every service as soon as its dependencies are ready. Returns at once.
    public func start() {
        for name in names {
            starters.append(Task { await self.startWhenDependenciesReady(name) })
        }
    }

    /// Waits on the board, not a clock: each readiness change wakes it to look again.
    func startWhenDependenciesReady(_ name: String) async {
        let dependencies = dependencies[name] ?? []
        var announced = ""
        while !Task.isCancelled, !isShuttingDown {
            let seen = board.version
            var waitingFor: [String] = []
            for dependency in dependencies where !isServiceReady(dependency) {
                waitingFor.append(isServiceFailed(dependency) ? "\(dependency) (failed)" : dependency)
            }
            if waitingFor.isEmpty { break }
            let text = "waiting for \(waitingFor.joined(separator: ", "))"
            if text != announced {
                announced = text
                for runner in runners[name, default: []] { await runner.setWaiting(text) }
            }
            await board.change(after: seen)
        }
        guard !Task.isCancelled, !isShuttingDown else { return }
        for runner in runners[name, default: []] { await runner.start() }
    }

    /// The board's entries of the service's current replicas (nil for one that has not posted yet).
    private nonisolated func entries(_ name: String) -> [ReadinessBoard.Entry?] {
        let addresses = members.withLock { $0[name] ?? [] }
        return addresses.map { board.entry(service: name, address: $0) }
    }

    /// Every replica has been ready since it was started (what a dependent waits for).
    private nonisolated func isServiceReady(_ name: String) -> Bool {
        entries(name).allSatisfy { $0?.hasBeenReady == true }
    }

    private nonisolated func isServiceFailed(_ name: String) -> Bool {
        entries(name).contains { $0?.hasFailed == true }
    }

    /// True once every replica of every service is ready.
    public nonisolated func allReady() -> Bool {
        members.withLock { Array($0.keys) }.allSatisfy { name in entries(name).allSatisfy { $0?.isReady == true } }
    }

    /// The services that have failed (crash loop, or cannot start): `up` reports them instead of waiting on.
    public nonisolated func failedServices() -> [String] {
        members.withLock { Array($0.keys) }.sorted().filter(isServiceFailed)
    }

    /// Returns when readiness or failure may have changed since `seen` (a `readinessVersion`), or `deadline` passed.
    /// What `up` waits on to say "all ready" and to report failures, instead of polling.
    @discardableResult
    public nonisolated func readinessChange(after seen: UInt64, deadline: ContinuousClock.Instant? = nil) async
        -> UInt64
    {
        let timer = deadline.map { deadline in
            Task { [board] in
                try? await Task.sleep(until: deadline)
                board.poke()
            }
        }
        defer { timer?.cancel() }
        return await board.change(after: seen)
    }

    /// A number that grows with every readiness change; see `readinessChange(after:)`.
    public nonisolated var readinessVersion: UInt64 { board.version }

    /// Every replica, services in spec order.
    public func status() async -> [ReplicaStatus] {
        var rows: [ReplicaStatus] = []
        for name in names {
            for runner in runners[name, default: []] { rows.append(await runner.status()) }
        }
        return rows
    }

    /// Whether this supervisor runs a service of that name.
    public func runs(_ name: String) -> Bool {
        runners[name] != nil
    }

    private func replicas(of name: String) throws -> [ReplicaRunner] {
        guard let replicas = runners[name] else {
            let known = names.joined(separator: ", ")
            throw SupervisorError(.control, "no service named \(name); services: \(known)")
        }
        return replicas
    }

    /// Restarts the service's replicas one at a time, each waiting for the previous one to be ready again (for at
    /// most `readyTimeout`), so a service with several replicas stays reachable.
    public func restart(_ name: String, readyTimeout: Duration = .seconds(60)) async throws {
        for runner in try replicas(of: name) {
            log.note("restarting \(runner.name)")
            await runner.restart()
            let deadline = ContinuousClock.now + readyTimeout
            while true {
                let seen = board.version
                guard await !runner.isReady, await runner.state != .failed, ContinuousClock.now < deadline else {
                    break
                }
                await readinessChange(after: seen, deadline: deadline)
            }
        }
    }

    public func stop(_ name: String) async throws {
        let replicas = try replicas(of: name)
        log.note("stopping \(name)")
        await withTaskGroup(of: Void.self) { group in
            for runner in replicas { group.addTask { await runner.stop(reason: "stopped by orchestrate stop") } }
        }
    }

    public func start(_ name: String) async throws {
        for runner in try replicas(of: name) { await runner.start() }
    }

    /// Kills every replica's process group now, through the launcher's process (never a bare PID, which might
    /// have been reused): what a second stop request does while `shutdown` waits out grace periods.
    public func killEverything() async {
        for name in names {
            for runner in runners[name, default: []] { await runner.kill() }
        }
        for runner in retiring { await runner.kill() }
    }

    /// Stops everything: the gateway and public services first, then dependents before what they depend on; each
    /// replica gets SIGTERM, then SIGKILL after its service's `stopGracePeriod`.
    public func shutdown() async {
        isShuttingDown = true
        for starter in starters { starter.cancel() }
        board.poke()
        let rest = waves.reversed().map { $0.filter { !entryPoints.contains($0) } }
        let retiring = retiring
        for wave in [entryPoints] + rest {
            await withTaskGroup(of: Void.self) { group in
                for name in wave {
                    for runner in runners[name, default: []] {
                        group.addTask { await runner.stop(reason: "shut down") }
                    }
                }
                // Replaced replicas still draining go with the first wave: nothing is sent to them any more.
                if wave == entryPoints {
                    for runner in retiring { group.addTask { await runner.stop(reason: "shut down") } }
                }
            }
        }
    }
}
