public import OrchestrateSpec

/// When a replica that exited starts again: the service's restart policy, capped exponential backoff with jitter
/// that resets after a stable uptime, and a crash loop (too many exits in a window) that marks the service failed
/// instead of restarting it forever. Time is passed in, so the logic is tested with a fake clock.
public struct RestartTracker: Sendable {
    public struct Settings: Sendable {
        /// The delay after a second quick exit (the first restarts at once); each further one doubles it, up to
        /// `maximum`.
        public var initial: Duration = .milliseconds(250)
        public var maximum: Duration = .seconds(30)
        /// ± this fraction, so replicas that fail together do not restart in lockstep.
        public var jitter: Double = 0.2
        /// Running this long counts as healthy: the next exit starts the backoff from `initial` again.
        public var stableUptime: Duration = .seconds(30)
        /// More than `crashLoopLimit` exits within `crashLoopWindow` is a crash loop.
        public var crashLoopLimit = 5
        public var crashLoopWindow: Duration = .seconds(60)

        public init() {}
    }

    public enum Decision: Sendable, Equatable {
        case restart(after: Duration)
        /// The policy says not to (never; on-failure after a clean exit).
        case stayStopped(reason: String)
        /// A crash loop: stop trying, say so, leave the other services running.
        case failed(reason: String)
    }

    public let policy: RestartPolicy
    public let settings: Settings
    /// Restarts since the last stable run.
    public private(set) var attempt = 0
    private var exits: [Duration] = []

    public init(policy: RestartPolicy, settings: Settings = Settings()) {
        self.policy = policy
        self.settings = settings
    }

    /// What to do about an exit at `now` (any monotonic time), after running `uptime`, with `status`.
    public mutating func exited(
        at now: Duration, uptime: Duration, status: Int32, random: inout some RandomNumberGenerator
    ) -> Decision {
        switch policy {
        case .never: return .stayStopped(reason: "restart: never")
        case .onFailure where status == 0: return .stayStopped(reason: "exited cleanly (restart: on-failure)")
        default: break
        }
        if uptime >= settings.stableUptime { attempt = 0 }
        exits = exits.filter { now - $0 < settings.crashLoopWindow } + [now]
        if exits.count > settings.crashLoopLimit {
            return .failed(
                reason:
                    "exited \(exits.count) times within \(settings.crashLoopWindow.components.seconds) s; not restarting"
            )
        }
        // The first exit after a stable run restarts at once (one crash of a healthy service costs nothing but
        // its start); exits that follow quickly wait `initial`, doubling each time, up to `maximum`.
        defer { attempt += 1 }
        guard attempt > 0 else { return .restart(after: .zero) }
        let factor = Double(1 << min(attempt - 1, 30))
        let base = min(settings.maximum, settings.initial * factor)
        let spread = 1 + Double.random(in: -settings.jitter...settings.jitter, using: &random)
        return .restart(after: min(settings.maximum, base * spread))
    }
}
