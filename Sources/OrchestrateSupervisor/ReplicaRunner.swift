import Foundation
public import OrchestrateSpec

/// Runs one probe; `ProbeRunner` in real use, a fake in the supervisor's tests.
public protocol Prober: Sendable {
    func probe(_ check: Probe.Check, replica: LocalPlan.Replica, timeout: Duration) async -> ProbeRunner.Result
}

extension ProbeRunner: Prober {
    public func probe(_ check: Probe.Check, replica: LocalPlan.Replica, timeout: Duration) async -> Result {
        await run(check, host: replica.address, port: replica.port, timeout: timeout, environment: replica.environment)
    }
}

/// What one replica is doing, as `orchestrate status` shows it.
public struct ReplicaStatus: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable {
        /// Not started: its service waits for dependencies to be ready.
        case waiting
        /// Started; probes have not passed yet.
        case starting
        /// Running and ready (or running with no readiness probe).
        case running
        /// Running, readiness failing: out of DNS.
        case unready
        /// Exited; starting again after a backoff.
        case backoff
        case stopping
        /// Stopped by the user, by `restart: never`/`on-failure`, or at shutdown.
        case stopped
        /// A crash loop, or a program that cannot be started: not restarted until `orchestrate restart`.
        case failed
    }

    public var service: String
    public var replica: Int
    public var address: String
    public var port: Int?
    public var state: State
    public var ready: Bool
    public var restarts: Int
    public var pid: Int32?
    public var uptimeSeconds: Double?
    /// The last thing that happened: `HTTP 503 from /ready`, `exit 1 after 0.4 s; restarting in 0.5 s`, …
    public var detail: String
}

/// What every replica runner shares.
struct RunnerContext: Sendable {
    var launcher: any ProcessLauncher
    var prober: any Prober
    var directory: ServiceDirectory
    var settings: Supervisor.Settings
    var log: SupervisorLog
    var state: StateRecorder?
}

/// The spec's settings of one service that the runner needs.
struct ServiceSettings: Sendable {
    var name: String
    var probes: Probes
    var restart: RestartPolicy
    var stopGracePeriod: Duration
    var executable: String
}

/// One replica's life: start, probe, restart with backoff, stop. Readiness changes go to the DNS directory.
actor ReplicaRunner {
    let replica: LocalPlan.Replica
    let service: ServiceSettings
    let context: RunnerContext
    private var tracker: RestartTracker
    private var random = SystemRandomNumberGenerator()

    private(set) var state: ReplicaStatus.State = .waiting
    private var detail = "waiting for dependencies"
    private var process: (any LaunchedProcess)?
    private var startedAt: ContinuousClock.Instant?
    private(set) var restarts = 0
    private(set) var isReady = false
    /// Has been ready since it was last (re)started by the supervisor: what dependents wait for.
    private(set) var hasBeenReady = false
    private var wanted = false
    private var loop: Task<Void, Never>?

    init(replica: LocalPlan.Replica, service: ServiceSettings, context: RunnerContext) {
        self.replica = replica
        self.service = service
        self.context = context
        tracker = RestartTracker(policy: service.restart, settings: context.settings.restart)
    }

    var name: String { "\(replica.service)-\(replica.index)" }

    func status() -> ReplicaStatus {
        ReplicaStatus(
            service: replica.service, replica: replica.index, address: replica.address, port: replica.port,
            state: state, ready: isReady, restarts: restarts, pid: process?.pid,
            uptimeSeconds: process == nil ? nil : startedAt.map { Self.seconds(ContinuousClock.now - $0) },
            detail: detail)
    }

    func setWaiting(_ text: String) {
        if state == .waiting { detail = text }
    }

    /// Starts the replica (a no-op when it runs). A failed replica starts afresh, its crash-loop count reset.
    func start() {
        guard loop == nil else { return }
        wanted = true
        tracker = RestartTracker(policy: service.restart, settings: context.settings.restart)
        hasBeenReady = false
        loop = Task { await self.run() }
    }

    /// Stops the replica: SIGTERM to its group, SIGKILL after the grace period; returns once it has exited.
    func stop(reason: String) async {
        wanted = false
        if let process {
            state = .stopping
            detail = reason
            await terminate(process, grace: service.stopGracePeriod)
        }
        loop?.cancel()
        await loop?.value
        loop = nil
        state = .stopped
        detail = reason
    }

    /// Stops and starts again, counting a restart.
    func restart() async {
        await stop(reason: "restarting")
        restarts += 1
        start()
    }

    private func say(_ text: String) {
        context.log.event(text, replica: name, service: replica.service)
    }

    private func run() async {
        while wanted, !Task.isCancelled {
            state = .starting
            detail = "starting"
            let request = LaunchRequest(
                executable: service.executable, arguments: replica.arguments, environment: replica.environment,
                user: replica.user)
            let process: any LaunchedProcess
            do {
                let log = context.log
                let (name, service) = (name, replica.service)
                process = try await context.launcher.launch(request) { line in log.output(line, replica: name, service: service) }
            } catch {
                state = .failed
                detail = "\(error)"
                say("\(error); not restarting")
                wanted = false
                break
            }
            self.process = process
            let started = ContinuousClock.now
            startedAt = started
            context.state?.record(service: replica.service, index: replica.index, pid: process.pid, executable: service.executable)
            say("started (PID \(process.pid)) on \(replica.address)\(replica.port.map { ":\($0)" } ?? "")")
            let probing = Task { await self.probe(process, started: started) }
            let status = await process.exitStatus()
            probing.cancel()
            self.process = nil
            setReady(false, detail: nil)
            context.state?.record(service: replica.service, index: replica.index, pid: nil, executable: service.executable)
            let uptime = ContinuousClock.now - started
            guard wanted, !Task.isCancelled else {
                state = .stopped
                detail = "\(status)"
                say("stopped (\(status))")
                break
            }
            let decision = tracker.exited(
                at: ContinuousClock.now - context.settings.epoch, uptime: uptime, status: status.code, random: &random)
            let ran = "\(status) after \(Self.format(uptime))"
            switch decision {
            case .restart(let delay):
                state = .backoff
                detail = delay == .zero ? "\(ran); restarting" : "\(ran); restarting in \(Self.format(delay))"
                say(detail)
                try? await Task.sleep(for: delay)
                guard wanted, !Task.isCancelled else { break }
                restarts += 1
            case .stayStopped(let reason):
                state = .stopped
                detail = "\(ran); \(reason)"
                say(detail)
                wanted = false
            case .failed(let reason):
                state = .failed
                detail = "\(ran); crash loop: \(reason)"
                say("FAILED: \(detail) (`orchestrate restart \(replica.service)` tries again)")
                wanted = false
            }
        }
        loop = nil
    }

    private func setReady(_ ready: Bool, detail: String?) {
        guard ready != isReady else { return }
        isReady = ready
        if ready { hasBeenReady = true }
        context.directory.setReady(ready, service: replica.service, index: replica.index)
        if state == .running || state == .unready || state == .starting {
            state = ready ? .running : (hasBeenReady ? .unready : .starting)
        }
        if let detail { self.detail = detail }
    }

    private func terminate(_ process: any LaunchedProcess, grace: Duration) async {
        process.signalGroup(SIGTERM)
        let killer = Task {
            try await Task.sleep(for: grace)
            process.signalGroup(SIGKILL)
        }
        _ = await process.exitStatus()
        killer.cancel()
    }

    // MARK: Probes

    private func probe(_ process: any LaunchedProcess, started: ContinuousClock.Instant) async {
        let probes = service.probes
        if let startup = probes.startup {
            guard await passStartup(startup, started: started) else {
                guard !Task.isCancelled else { return }
                say("startup probe did not pass within \(Self.format(Self.startupBudget(startup))); restarting")
                await terminate(process, grace: service.stopGracePeriod)
                return
            }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.readiness(probes.readiness) }
            if let liveness = probes.liveness {
                group.addTask { await self.liveness(liveness, process: process) }
            }
        }
    }

    private static func startupBudget(_ probe: Probe) -> Duration {
        duration(probe.initialDelay) + duration(probe.interval) * probe.failureThreshold
    }

    /// The pause between probes of a replica that has not been ready yet (see `Supervisor.Settings`).
    private func startingProbeDelay(started: ContinuousClock.Instant, interval: SpecDuration) -> Duration {
        let settings = context.settings
        let pace = ContinuousClock.now - started < settings.fastProbeWindow ? settings.fastProbeInterval : settings.slowProbeInterval
        return min(pace, Self.duration(interval))
    }

    /// Probes often until the startup probe passes, for at most its budget
    /// (initial delay + failureThreshold × interval, as in Kubernetes).
    private func passStartup(_ startup: Probe, started: ContinuousClock.Instant) async -> Bool {
        let deadline = started + Self.startupBudget(startup)
        try? await Task.sleep(for: Self.duration(startup.initialDelay))
        while !Task.isCancelled, ContinuousClock.now < deadline {
            let result = await context.prober.probe(startup.check.value, replica: replica, timeout: Self.duration(startup.timeout))
            if result.success { return true }
            detail = "startup probe: \(result.detail)"
            try? await Task.sleep(for: startingProbeDelay(started: started, interval: startup.interval))
        }
        return false
    }

    /// Until the first success the probe runs often (`startingProbeDelay`, so dependents start as soon as this is
    /// ready, not up to an interval later); after it, at the declared interval with the declared thresholds.
    private func readiness(_ probe: Probe?) async {
        guard let probe else {
            setReady(true, detail: "running (no readiness probe)")
            return
        }
        var tracker = ProbeTracker(
            failureThreshold: probe.failureThreshold, successThreshold: probe.successThreshold, initiallyPassing: false)
        try? await Task.sleep(for: Self.duration(probe.initialDelay))
        let startedWaiting = ContinuousClock.now
        while !Task.isCancelled {
            let result = await context.prober.probe(probe.check.value, replica: replica, timeout: Self.duration(probe.timeout))
            guard !Task.isCancelled else { return }
            if let change = tracker.record(success: result.success) {
                let wasReady = hasBeenReady
                setReady(change, detail: change ? "ready" : "readiness: \(result.detail)")
                if change {
                    say(wasReady ? "ready again" : "ready in \(Self.format(ContinuousClock.now - startedWaiting))")
                } else {
                    say("not ready (\(result.detail)): out of DNS")
                }
            } else if !result.success, !hasBeenReady {
                detail = "readiness: \(result.detail)"
            }
            let interval = Self.duration(probe.interval)
            try? await Task.sleep(for: hasBeenReady ? interval : startingProbeDelay(started: startedWaiting, interval: probe.interval))
        }
    }

    private func liveness(_ probe: Probe, process: any LaunchedProcess) async {
        var tracker = ProbeTracker(
            failureThreshold: probe.failureThreshold, successThreshold: 1, initiallyPassing: true)
        try? await Task.sleep(for: Self.duration(probe.initialDelay))
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.duration(probe.interval))
            guard !Task.isCancelled else { return }
            let result = await context.prober.probe(probe.check.value, replica: replica, timeout: Self.duration(probe.timeout))
            guard !Task.isCancelled else { return }
            if tracker.record(success: result.success) == false {
                say("liveness probe failed \(probe.failureThreshold) times (\(result.detail)); restarting")
                detail = "liveness: \(result.detail)"
                await terminate(process, grace: service.stopGracePeriod)
                return
            }
        }
    }

    static func duration(_ value: SpecDuration) -> Duration { .milliseconds(value.milliseconds) }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ duration: Duration) -> String {
        let value = seconds(duration)
        return value < 1 ? "\(Int((value * 1000).rounded())) ms" : String(format: "%.1f s", value)
    }
}
