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
    /// Where readiness changes are posted for whoever waits on them.
    var board: ReadinessBoard
}

/// One replica's life: start, probe, restart with backoff, stop. Readiness changes go to the DNS directory.
actor ReplicaRunner {
    let replica: LocalPlan.Replica
    /// The program's full path.
    let executable: String
    let context: RunnerContext
    private var supervision: ReplicaSupervision { replica.supervision }
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
    /// Out of rotation for good (`retire`): a passing readiness probe does not put it back.
    private var isRetiring = false

    init(replica: LocalPlan.Replica, executable: String, context: RunnerContext) {
        self.replica = replica
        self.executable = executable
        self.context = context
        tracker = RestartTracker(policy: replica.supervision.restart, settings: context.settings.restart)
    }

    nonisolated var name: String { "\(replica.service)-\(replica.index)" }

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
        tracker = RestartTracker(policy: supervision.restart, settings: context.settings.restart)
        hasBeenReady = false
        // Starting from now, not failed: what the board says at once, before `run` gets to it.
        state = .starting
        detail = "starting"
        post()
        loop = Task { await self.run() }
    }

    /// Stops the replica: SIGTERM to its group, SIGKILL after the grace period; returns once it has exited.
    func stop(reason: String) async {
        wanted = false
        if let process {
            state = .stopping
            detail = reason
            await terminate(process, grace: supervision.stopGracePeriod)
        }
        loop?.cancel()
        await loop?.value
        loop = nil
        state = .stopped
        detail = reason
    }

    /// SIGKILL to its process group at once, without waiting (a second Ctrl-C); `stop` still sees it exit.
    func kill() {
        process?.signalGroup(SIGKILL)
    }

    /// Takes the replica out of rotation for good, its process left running: what a replica being replaced is
    /// while its connections drain (`Supervisor.replace`).
    func retire() {
        isRetiring = true
        setReady(false, detail: "replaced; draining")
        detail = "replaced; draining"
    }

    /// Stops and starts again, counting a restart.
    func restart() async {
        await stop(reason: "restarting")
        restarts += 1
        start()
    }

    private func say(_ text: String) {
        // Beside its replacement (same name), a replaced replica is told apart by its address.
        let text = isRetiring ? "on \(replica.address) (replaced): \(text)" : text
        context.log.event(text, replica: name, service: replica.service)
    }

    private func run() async {
        while wanted, !Task.isCancelled {
            state = .starting
            detail = "starting"
            let request = LaunchRequest(
                executable: executable, arguments: replica.arguments, environment: replica.environment,
                workingDirectory: replica.workingDirectory, user: replica.user, hostsFile: replica.hostsFile)
            let process: any LaunchedProcess
            do {
                let log = context.log
                let (name, service) = (name, replica.service)
                process = try await context.launcher.launch(request) { line in
                    log.output(line, replica: name, service: service)
                }
            } catch {
                state = .failed
                detail = "\(error)"
                say("\(error); not restarting")
                wanted = false
                post()
                break
            }
            self.process = process
            let started = ContinuousClock.now
            startedAt = started
            context.state?.started(
                service: replica.service, index: replica.index, pid: process.pid, executable: executable)
            say("started (PID \(process.pid)) on \(replica.address)\(replica.port.map { ":\($0)" } ?? "")")
            let probing = Task { await self.probe(process, started: started) }
            let status = await process.exitStatus()
            probing.cancel()
            self.process = nil
            setReady(false, detail: nil)
            context.state?.exited(pid: process.pid)
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
                post()
            }
        }
        loop = nil
    }

    private func setReady(_ ready: Bool, detail: String?) {
        guard ready != isReady, !(ready && isRetiring) else { return }
        isReady = ready
        if ready { hasBeenReady = true }
        context.directory.setReady(ready, service: replica.service, address: replica.address)
        if state == .running || state == .unready || state == .starting {
            state = ready ? .running : (hasBeenReady ? .unready : .starting)
        }
        if let detail { self.detail = detail }
        post()
    }

    /// Tells the board what this replica's readiness is now; waiters on it wake only when it changed.
    private func post() {
        let (ready, been, failed) = (isReady, hasBeenReady, state == .failed)
        context.board.update(service: replica.service, address: replica.address) { entry in
            entry.isReady = ready
            entry.hasBeenReady = been
            entry.hasFailed = failed
        }
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
        let supervision = supervision
        if let startup = supervision.startup {
            guard await passStartup(startup, started: started) else {
                guard !Task.isCancelled else { return }
                say("startup probe did not pass within \(Self.format(startup.startupBudget)); restarting")
                await terminate(process, grace: supervision.stopGracePeriod)
                return
            }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.readiness(supervision.readiness) }
            if let liveness = supervision.liveness {
                group.addTask { await self.liveness(liveness, process: process) }
            }
        }
    }

    /// The pause between probes of a replica that has not been ready yet (see `Supervisor.Settings`).
    private func startingProbeDelay(started: ContinuousClock.Instant, interval: Duration) -> Duration {
        let settings = context.settings
        let pace =
            ContinuousClock.now - started < settings.fastProbeWindow
            ? settings.fastProbeInterval : settings.slowProbeInterval
        return min(pace, interval)
    }

    /// Probes often until the startup probe passes, for at most its budget
    /// (initial delay + failureThreshold × interval, as in Kubernetes).
    private func passStartup(_ startup: ReplicaSupervision.Probe, started: ContinuousClock.Instant) async -> Bool {
        let deadline = started + startup.startupBudget
        try? await Task.sleep(for: startup.initialDelay)
        var tries = 0
        while !Task.isCancelled, ContinuousClock.now < deadline {
            let result = await context.prober.probe(startup.check, replica: replica, timeout: startup.timeout)
            if result.success { return true }
            tries += 1
            detail = "startup probe, try \(tries): \(result.detail)"
            try? await Task.sleep(for: startingProbeDelay(started: started, interval: startup.interval))
        }
        return false
    }

    /// Until this process's first success the probe runs often (`startingProbeDelay`, so dependents start, and a
    /// restarted replica is back in rotation, as soon as it is ready, not up to an interval later); after it, at the
    /// declared interval with the declared thresholds.
    private func readiness(_ probe: ReplicaSupervision.Probe?) async {
        guard let probe else {
            setReady(true, detail: "running (no readiness probe)")
            return
        }
        var tracker = ProbeTracker(
            failureThreshold: probe.failureThreshold, successThreshold: probe.successThreshold, initiallyPassing: false)
        try? await Task.sleep(for: probe.initialDelay)
        let startedWaiting = ContinuousClock.now
        // Per process: a replica restarted after a crash is probed as at start-up again.
        var readySinceLaunch = false
        var tries = 0
        while !Task.isCancelled {
            let result = await context.prober.probe(probe.check, replica: replica, timeout: probe.timeout)
            guard !Task.isCancelled else { return }
            if let change = tracker.record(success: result.success) {
                let wasReady = hasBeenReady
                if change { readySinceLaunch = true }
                setReady(change, detail: change ? "ready" : "readiness: \(result.detail)")
                if change {
                    say(wasReady ? "ready again" : "ready in \(Self.format(ContinuousClock.now - startedWaiting))")
                } else {
                    say("not ready (\(result.detail)): out of DNS")
                }
            } else if !result.success, !readySinceLaunch {
                tries += 1
                detail = "readiness probe, try \(tries): \(result.detail)"
            }
            try? await Task.sleep(
                for: readySinceLaunch
                    ? probe.interval : startingProbeDelay(started: startedWaiting, interval: probe.interval))
        }
    }

    private func liveness(_ probe: ReplicaSupervision.Probe, process: any LaunchedProcess) async {
        var tracker = ProbeTracker(
            failureThreshold: probe.failureThreshold, successThreshold: 1, initiallyPassing: true)
        try? await Task.sleep(for: probe.initialDelay)
        while !Task.isCancelled {
            try? await Task.sleep(for: probe.interval)
            guard !Task.isCancelled else { return }
            let result = await context.prober.probe(probe.check, replica: replica, timeout: probe.timeout)
            guard !Task.isCancelled else { return }
            if tracker.record(success: result.success) == false {
                say("liveness probe failed \(probe.failureThreshold) times (\(result.detail)); restarting")
                detail = "liveness: \(result.detail)"
                await terminate(process, grace: supervision.stopGracePeriod)
                return
            }
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func format(_ duration: Duration) -> String {
        let value = seconds(duration)
        return value < 1 ? "\(Int((value * 1000).rounded())) ms" : String(format: "%.1f s", value)
    }
}
