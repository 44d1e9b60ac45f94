public import OrchestrateSpec

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
        /// How often a waiting service looks at its dependencies: as often as starting replicas are probed for the
        /// first `fastProbeWindow`, then every `slowProbeInterval` (a dependency that failed may wait for hours).
        public var dependencyPollInterval: Duration = .milliseconds(5)
        /// The zero of the monotonic times given to the restart tracker.
        var epoch = ContinuousClock.now

        public init() {}
    }

    public struct ControlError: Error, CustomStringConvertible {
        public var description: String
    }

    private let graph: ServiceGraph
    private let waves: [[String]]
    /// The gateway and the public services: they take outside traffic, so they stop first.
    private let entryPoints: [String]
    private let runners: [String: [ReplicaRunner]]
    private let log: SupervisorLog
    private let settings: Settings
    private var starters: [Task<Void, Never>] = []
    private var isShuttingDown = false

    /// - Parameter executableDirectory: Where the products are (`swift build --show-bin-path`).
    public init(
        spec: Spec, plan: LocalPlan, executableDirectory: String, launcher: any ProcessLauncher, prober: any Prober,
        directory: ServiceDirectory, log: SupervisorLog, state: StateRecorder? = nil, settings: Settings = Settings()
    ) {
        graph = ServiceGraph(spec)
        waves = plan.waves
        entryPoints = spec.services.map(\.name.value).filter { name in
            spec.gateway?.service.value == name || spec.service(named: name)?.isPublic?.value == true
        }
        self.log = log
        self.settings = settings
        let context = RunnerContext(
            launcher: launcher, prober: prober, directory: directory, settings: settings, log: log, state: state)
        var runners: [String: [ReplicaRunner]] = [:]
        for replica in plan.replicas {
            guard let service = spec.service(named: replica.service) else { continue }
            let settings = ServiceSettings(
                name: replica.service, probes: service.probes, restart: service.effectiveRestart,
                stopGracePeriod: .milliseconds(service.effectiveStopGracePeriod.milliseconds),
                executable: replica.executable ?? executableDirectory + "/" + replica.product)
            if let port = replica.port {
                directory.upsert(ServiceDirectory.Replica(
                    service: replica.service, index: replica.index, address: replica.address, port: port))
            }
            runners[replica.service, default: []].append(ReplicaRunner(replica: replica, service: settings, context: context))
        }
        self.runners = runners
    }

    /// Starts every service as soon as its dependencies are ready. Returns at once.
    public func start() {
        for name in graph.names {
            starters.append(Task { await self.startWhenDependenciesReady(name) })
        }
    }

    private func startWhenDependenciesReady(_ name: String) async {
        let dependencies = graph.dependencies(of: name)
        var announced = ""
        let waitingSince = ContinuousClock.now
        while !Task.isCancelled, !isShuttingDown {
            var waitingFor: [String] = []
            for dependency in dependencies where !(await isServiceReady(dependency)) {
                let failed = await isServiceFailed(dependency)
                waitingFor.append(failed ? "\(dependency) (failed)" : dependency)
            }
            if waitingFor.isEmpty { break }
            let text = "waiting for \(waitingFor.joined(separator: ", "))"
            if text != announced {
                announced = text
                for runner in runners[name, default: []] { await runner.setWaiting(text) }
            }
            let fast = ContinuousClock.now - waitingSince < settings.fastProbeWindow
            try? await Task.sleep(for: fast ? settings.dependencyPollInterval : settings.slowProbeInterval)
        }
        guard !Task.isCancelled, !isShuttingDown else { return }
        for runner in runners[name, default: []] { await runner.start() }
    }

    /// Every replica has been ready since it was started (what a dependent waits for).
    private func isServiceReady(_ name: String) async -> Bool {
        for runner in runners[name, default: []] where !(await runner.hasBeenReady) { return false }
        return true
    }

    private func isServiceFailed(_ name: String) async -> Bool {
        for runner in runners[name, default: []] where await runner.state == .failed { return true }
        return false
    }

    /// True once every replica of every service is ready.
    public func allReady() async -> Bool {
        for (_, replicas) in runners {
            for runner in replicas where !(await runner.isReady) { return false }
        }
        return true
    }

    /// True when some service has failed (crash loop or cannot start): `up` reports it instead of waiting on.
    public func failedServices() async -> [String] {
        var failed: [String] = []
        for name in graph.names where await isServiceFailed(name) { failed.append(name) }
        return failed
    }

    /// Every replica, services in spec order.
    public func status() async -> [ReplicaStatus] {
        var rows: [ReplicaStatus] = []
        for name in graph.names {
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
            let known = graph.names.joined(separator: ", ")
            throw ControlError(description: "no service named \(name); services: \(known)")
        }
        return replicas
    }

    /// Restarts the service's replicas one at a time, each waiting for the previous one to be ready again (for at
    /// most `readyTimeout`), so a service with several replicas stays reachable.
    public func restart(_ name: String, readyTimeout: Duration = .seconds(60)) async throws {
        for runner in try replicas(of: name) {
            log.note("restarting \(await runner.name)")
            await runner.restart()
            let deadline = ContinuousClock.now + readyTimeout
            while !(await runner.isReady), await runner.state != .failed, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
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

    /// Stops everything: the gateway and public services first, then dependents before what they depend on; each
    /// replica gets SIGTERM, then SIGKILL after its service's `stopGracePeriod`.
    public func shutdown() async {
        isShuttingDown = true
        for starter in starters { starter.cancel() }
        let rest = waves.reversed().map { $0.filter { !entryPoints.contains($0) } }
        for wave in [entryPoints] + rest {
            await withTaskGroup(of: Void.self) { group in
                for name in wave {
                    for runner in runners[name, default: []] {
                        group.addTask { await runner.stop(reason: "shut down") }
                    }
                }
            }
        }
    }
}
