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
    /// The event types it publishes through its outbox (services.yaml's `publishes`).
    public var publishes: [String]
    /// The event types it consumes (services.yaml's `subscribes`); each needs an `EventSubscription`.
    public var subscribes: [String]

    public init(
        name: String, defaultPort: Int, dependencies: [String] = [], requiresInternalToken: Bool = false,
        migrations: [any Migration] = [], publishes: [String] = [], subscribes: [String] = []
    ) {
        self.name = name
        self.defaultPort = defaultPort
        self.dependencies = dependencies
        self.requiresInternalToken = requiresInternalToken
        self.migrations = migrations
        self.publishes = publishes
        self.subscribes = subscribes
    }

    /// The service's migrations with the outbox and inbox tables its events need.
    var allMigrations: [any Migration] {
        migrations + (publishes.isEmpty ? [] : [CreateOutbox()]) + (subscribes.isEmpty ? [] : [CreateInbox()])
    }
}
