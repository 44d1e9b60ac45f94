public import FluentKit
public import ServiceLifecycle

/// A part a service adds to what ServiceKit gives every service: tables, and work that runs beside the server.
///
/// ServiceEvents' `Events` (the outbox relay and the event consumers) is one. ServiceKit knows nothing of what a
/// component does: it migrates the component's tables after the service's own, and runs its services in the service
/// group between the database and the server, so they start after the database and stop before it.
public protocol ServiceComponent: Sendable {
    /// The tables the component needs; migrated after the service's own.
    var migrations: [any Migration] { get }

    /// What runs beside the server until shutdown. Called once, after the runtime is built and before anything runs.
    ///
    /// - Throws: `ServiceKitError.configuration` for a missing or malformed variable (the process exits 78 naming it), or any
    ///   other error, which stops the process with exit 1.
    func services(runtime: ServiceRuntime) throws -> [ServiceGroupConfiguration.ServiceConfiguration]
}
