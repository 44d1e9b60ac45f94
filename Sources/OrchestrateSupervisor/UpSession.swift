import Foundation
import OrchestrateSpec

/// One run of `orchestrate up`, from a validated spec and built products to running services, and back down.
///
/// Its states go starting → running → draining → stopped. Everything it starts is recorded with how to stop it, so
/// draining stops the parts in the reverse order of their start, and says in the log what each step stops. A
/// second stop request while draining escalates: every process is killed at once. A failure while starting stops
/// what had started and throws. Processes go through the configuration's launcher and prober, so the whole session
/// runs in tests with fakes and no binary.
public actor UpSession {
    public enum State: String, Sendable {
        case starting, running, draining, stopped
    }

    public private(set) var state: State = .starting
    /// Its spec changes when `up --watch` applies an edit of services.yaml.
    var configuration: UpConfiguration
    /// What started, in order, with how to stop it.
    private var started: [(what: String, stop: @Sendable () async -> Void)] = []
    /// The supervisors, the infrastructure's first: what control requests and escalation reach.
    var supervisors: [Supervisor] = []
    private(set) var log: SupervisorLog?
    private let stopRequests: AsyncStream<String>
    private let requestContinuation: AsyncStream<String>.Continuation
    private var stopsRequested = 0
    /// The replicas that run, once planned.
    var plan: LocalPlan?
    var startedAt = ContinuousClock.now
    /// The dashboard's address with its token, once it serves.
    public internal(set) var dashboardURL: String?
    /// Who answers DNS, and which replicas the forwarders reach.
    var directory: ServiceDirectory?
    /// The forwarders at each service's stable address, and at `localhost:PORT` for public services.
    var stableForwards: [String: ServiceForward] = [:]
    var localForwards: [String: ServiceForward] = [:]
    /// What planning the spec again needs (`up --watch`), once everything started.
    var replanning: Replanning?
    /// Where replicas started by `up --watch` get their addresses.
    var addressPool: AddressPool?
    /// What each product is built from (`up --watch`); nil when sources are not watched.
    var packageSources: PackageSources?
    /// The products' binaries the replicas run under `up --watch`.
    var snapshots: ProductSnapshots?
    /// Swaps and services.yaml edits under way: while any is, no snapshot is removed (its next replicas run
    /// snapshots that no running replica runs yet).
    var changesUnderWay = 0

    /// What the first plan was made with, so an edited spec is planned the same way.
    struct Replanning: Sendable {
        var dnsPort: Int
        var naming: LocalPlan.Naming
        var hostsPath: String
        var machineHosts: String
        var infrastructure: NativeInfrastructure?
        /// Where the services export traces (the dashboard's OTLP endpoint), when it decodes them.
        var otlpEndpoint: String?
    }

    public init(_ configuration: UpConfiguration) {
        self.configuration = configuration
        (stopRequests, requestContinuation) = AsyncStream<String>.makeStream()
    }

    /// Starts everything, runs until a stop is requested, then drains.
    ///
    /// - Throws: `StartError` when something cannot start (the spec's plan, a taken address, a server of
    ///   `--infra native`); what had started is stopped first.
    public func run() async throws(SupervisorError) {
        do {
            try await start()
        } catch {
            await drain(reason: "\(error)")
            throw error
        }
        state = .running
        let announcer = Task { await self.announceReadiness() }
        var reasons = stopRequests.makeAsyncIterator()
        let reason = await reasons.next() ?? "stopped"
        announcer.cancel()
        await drain(reason: reason)
    }

    /// Asks the session to stop (a signal, `orchestrate down`); asked again while draining, it kills every
    /// process at once instead of waiting out grace periods.
    public func requestStop(_ reason: String) async {
        stopsRequested += 1
        guard stopsRequested > 1 else {
            requestContinuation.yield(reason)
            return
        }
        log?.note("\(reason) again: killing every process now")
        for supervisor in supervisors { await supervisor.killEverything() }
    }

    /// Records a part that started and how to stop it.
    func started(_ what: String, stop: @escaping @Sendable () async -> Void) {
        started.append((what, stop))
    }

    func setLog(_ log: SupervisorLog) {
        self.log = log
    }

    /// Stops every part that started, last first, each step in the log.
    private func drain(reason: String) async {
        state = .draining
        note("\(reason): stopping in reverse order of start")
        while let part = started.popLast() {
            note("stopping \(part.what)")
            await part.stop()
        }
        state = .stopped
        note("stopped")
        log?.close()
    }

    /// Says in the log (or, before the log exists, on standard output) what happens.
    func note(_ text: String) {
        if let log {
            log.note(text)
        } else {
            configuration.say(text)
        }
    }

    /// Says when every replica is ready, and names each service that fails, as each happens: woken by readiness
    /// changes, not a clock.
    private func announceReadiness() async {
        guard let services = supervisors.last else { return }
        let begun = startedAt
        var reported: Set<String> = []
        while !Task.isCancelled {
            let seen = services.readinessVersion
            if services.allReady() {
                let replicas = plan?.replicas.count ?? 0
                note(
                    "all \(replicas) replicas of \(configuration.spec.services.count) services ready in "
                        + "\(Self.format(ContinuousClock.now - begun)); `orchestrate status` shows them")
                return
            }
            for failed in services.failedServices() where !reported.contains(failed) {
                reported.insert(failed)
                note("\(failed) failed; the other services keep running (`orchestrate logs \(failed)`)")
            }
            await services.readinessChange(after: seen)
        }
    }

    static func format(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(format: "%.2f s", seconds)
    }
}
