public import FluentKit
import Foundation
import OrchestrateContract
public import ServiceKit
public import ServiceLifecycle

/// Events for a ServiceKit service: what it publishes through its outbox and what it consumes, as a
/// `ServiceComponent`. Add it to the service's `ServiceDefinition.components`.
///
/// It brings the outbox and inbox tables, and runs the outbox relay and one consumer per subscription beside the
/// server, on the broker `BROKER_URL` names (Redis Streams, or the embedded SQLite event log).
public struct Events: ServiceComponent {
    /// Where the service publishes (services.yaml's `publishes`); nil when it publishes nothing.
    public let outbox: Outbox?
    /// The event types it consumes (services.yaml's `subscribes`); each needs an `EventSubscription`.
    public let subscribes: [String]
    let subscriptions: @Sendable (ServiceRuntime) throws -> [EventSubscription]

    /// - Parameters:
    ///   - outbox: the outbox the service's routes publish through, when it publishes.
    ///   - subscribes: the types it consumes.
    ///   - subscriptions: its handlers, one per type in `subscribes`, made once the runtime exists (a handler may call
    ///     other services through the runtime's client).
    public init(
        outbox: Outbox? = nil, subscribes: [String] = [],
        subscriptions: @escaping @Sendable (ServiceRuntime) throws -> [EventSubscription] = { _ in [] }
    ) {
        self.outbox = outbox
        self.subscribes = subscribes
        self.subscriptions = subscriptions
    }

    public var migrations: [any Migration] {
        (outbox == nil ? [] : [CreateOutbox()]) + (subscribes.isEmpty ? [] : [CreateInbox()])
    }

    /// The relay, when the service publishes, and a consumer per subscription.
    ///
    /// - Throws: `ServiceKitError.configuration` for a malformed `BROKER_URL` or `EVENT_*` variable, or when the handlers do not
    ///   cover exactly the types in `subscribes`.
    public func services(runtime: ServiceRuntime) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let subscriptions = try subscriptions(runtime)
        let subscribed = Set(subscriptions.map(\.type))
        guard subscribed == Set(subscribes) else {
            throw ServiceKitError.configuration(
                ServiceVariable.brokerURL,
                "the service subscribes to \(subscribes.sorted()) but handles \(subscribed.sorted())")
        }
        guard outbox != nil || !subscriptions.isEmpty else { return [] }
        let broker = try BrokerLocation(
            url: runtime.configuration.brokerURL, password: runtime.configuration.brokerPassword)
        let settings = try EventConsumerSettings(environment: runtime.environment)
        let database = try runtime.requireDatabase()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let outbox {
            services.append(
                .init(
                    service: OutboxRelay(outbox: outbox, database: database, broker: broker, logger: runtime.logger),
                    successTerminationBehavior: .ignore))
        }
        let member = "\(runtime.definition.name)-\(runtime.environment["HOSTNAME"] ?? "local")-\(getpid())"
        for subscription in subscriptions {
            services.append(
                .init(
                    service: EventConsumer(
                        subscription: subscription, group: runtime.definition.name, consumer: member,
                        database: database, broker: broker, settings: settings, logger: runtime.logger),
                    successTerminationBehavior: .ignore))
        }
        return services
    }
}
