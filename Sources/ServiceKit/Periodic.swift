public import FluentKit
import Logging
public import ServiceLifecycle

/// Work a service does every `interval` beside its server (a reconciler, a sweeper), until shutdown. A round that
/// throws is logged and the next runs as planned; a round is never cut off in the middle by shutdown, only the wait
/// between rounds.
public struct Periodic: ServiceComponent {
    public let name: String
    /// The variable that sets the interval (`ORDER_RECONCILE_INTERVAL=10s`), and the interval without it.
    public let intervalVariable: String
    public let defaultInterval: Duration
    public let round: @Sendable (ServiceRuntime) async throws -> Void

    public init(
        _ name: String, intervalVariable: String, defaultInterval: Duration,
        round: @escaping @Sendable (ServiceRuntime) async throws -> Void
    ) {
        self.name = name
        self.intervalVariable = intervalVariable
        self.defaultInterval = defaultInterval
        self.round = round
    }

    public var migrations: [any Migration] { [] }

    public func services(runtime: ServiceRuntime) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var interval = defaultInterval
        if let text = runtime.environment[intervalVariable] {
            guard let parsed = ServiceRuntime.parseDuration(text), parsed > .zero else {
                throw ServiceKitError.configuration(
                    intervalVariable, "must be a positive duration such as 10s or 500ms, not \"\(text)\"")
            }
            interval = parsed
        }
        return [
            .init(
                service: Loop(periodic: self, interval: interval, runtime: runtime), successTerminationBehavior: .ignore
            )
        ]
    }

    struct Loop: Service {
        let periodic: Periodic
        let interval: Duration
        let runtime: ServiceRuntime

        func run() async throws {
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                do {
                    try await periodic.round(runtime)
                } catch {
                    runtime.logger.warning(
                        "\(periodic.name) round failed; the next runs as planned",
                        metadata: ["error": "\(error)", "interval": "\(interval)"])
                }
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            }
        }
    }
}
