public import OrchestrateSpec

/// How the supervisor runs one replica: its probes, restart policy, grace period, what it waits for and whether it
/// takes outside traffic. The plan carries it, so the supervisor needs no spec, and a replica that is not in the
/// spec (PostgreSQL, Redis under `--infra native`) is described the same way.
public struct ReplicaSupervision: Sendable, Equatable {
    /// One health check, with its timings as durations.
    public struct Probe: Sendable, Equatable {
        public var check: OrchestrateSpec.Probe.Check
        public var interval: Duration
        public var timeout: Duration
        public var initialDelay: Duration
        public var failureThreshold: Int
        public var successThreshold: Int

        public init(
            _ check: OrchestrateSpec.Probe.Check, interval: Duration, timeout: Duration, initialDelay: Duration = .zero,
            failureThreshold: Int = OrchestrateSpec.Probe.defaultFailureThreshold, successThreshold: Int = 1
        ) {
            self.check = check
            self.interval = interval
            self.timeout = timeout
            self.initialDelay = initialDelay
            self.failureThreshold = failureThreshold
            self.successThreshold = successThreshold
        }

        public init(_ probe: OrchestrateSpec.Probe) {
            self.init(
                probe.check.value, interval: .milliseconds(probe.interval.milliseconds),
                timeout: .milliseconds(probe.timeout.milliseconds),
                initialDelay: .milliseconds(probe.initialDelay.milliseconds),
                failureThreshold: probe.failureThreshold, successThreshold: probe.successThreshold)
        }

        /// How long a startup probe may take to pass: initial delay + failureThreshold × interval, as in Kubernetes.
        /// Capped at a century instead of overflowing, so no value the validator lets through can trap here.
        public var startupBudget: Duration {
            let cap = Self.century
            let (product, overflowed) = Self.milliseconds(interval).multipliedReportingOverflow(
                by: Int64(failureThreshold))
            let (sum, overflowedAgain) = product.addingReportingOverflow(Self.milliseconds(initialDelay))
            return overflowed || overflowedAgain || sum > cap ? .milliseconds(cap) : .milliseconds(sum)
        }

        private static let century: Int64 = 100 * 365 * 24 * 3_600 * 1_000

        private static func milliseconds(_ duration: Duration) -> Int64 {
            let (seconds, overflowed) = duration.components.seconds.multipliedReportingOverflow(by: 1_000)
            return overflowed
                ? century : min(century, seconds + duration.components.attoseconds / 1_000_000_000_000_000)
        }
    }

    public var liveness: Probe?
    public var readiness: Probe?
    public var startup: Probe?
    public var restart: RestartPolicy
    /// Between SIGTERM and SIGKILL.
    public var stopGracePeriod: Duration
    /// The services whose every replica must be ready before this one starts.
    public var dependsOn: [String]
    /// Takes outside traffic (the gateway, a public service), so it stops first.
    public var isEntryPoint: Bool

    public init(
        liveness: Probe? = nil, readiness: Probe? = nil, startup: Probe? = nil, restart: RestartPolicy = .always,
        stopGracePeriod: Duration = .seconds(10), dependsOn: [String] = [], isEntryPoint: Bool = false
    ) {
        self.liveness = liveness
        self.readiness = readiness
        self.startup = startup
        self.restart = restart
        self.stopGracePeriod = stopGracePeriod
        self.dependsOn = dependsOn
        self.isEntryPoint = isEntryPoint
    }

    /// What the spec says of one service.
    init(_ node: Topology.Node) {
        let service = node.service
        self.init(
            liveness: service.probes.liveness.map(Probe.init), readiness: service.probes.readiness.map(Probe.init),
            startup: service.probes.startup.map(Probe.init), restart: service.effectiveRestart,
            stopGracePeriod: .milliseconds(service.effectiveStopGracePeriod.milliseconds), dependsOn: node.dependsOn,
            isEntryPoint: node.isGateway || service.isPublished)
    }
}
