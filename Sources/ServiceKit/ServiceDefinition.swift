import ArgumentParser
import AsyncHTTPClient
public import FluentKit
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import OTel
import OrchestrateContract
import Prometheus
import ServiceLifecycle
import Synchronization
import Tracing
import UnixSignals

/// What a service declares about itself; ServiceKit does the rest (configuration, database, observability, health,
/// readiness, shutdown).
public struct ServiceDefinition: Sendable {
    /// The service's name in services.yaml (`user-service`): the log label, the span service name, the SQLite file.
    public var name: String
    public var defaultPort: Int
    /// The services it calls; each needs `<DEP>_URL`.
    public var dependencies: [String]
    /// Whether it has internal endpoints and so cannot start without `INTERNAL_TOKEN`.
    public var requiresInternalToken: Bool
    /// Its schema; empty when the service has no database.
    public var migrations: [any Migration]
    /// What it adds to ServiceKit (ServiceEvents' `Events` for a service that publishes or consumes events).
    public var components: [any ServiceComponent]

    public init(
        name: String, defaultPort: Int, dependencies: [String] = [], requiresInternalToken: Bool = false,
        migrations: [any Migration] = [], components: [any ServiceComponent] = []
    ) {
        self.name = name
        self.defaultPort = defaultPort
        self.dependencies = dependencies
        self.requiresInternalToken = requiresInternalToken
        self.migrations = migrations
        self.components = components
    }

    /// The service's migrations, then its components'.
    var allMigrations: [any Migration] {
        migrations + components.flatMap(\.migrations)
    }
}
