import ArgumentParser
import AsyncHTTPClient
import FluentKit
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

/// Whether the service should receive traffic: its database is migrated and shutdown has not begun.
public final class Readiness: Sendable {
    private let shuttingDown = Atomic<Bool>(false)
    private let database: ServiceDatabase?
    private let gauge: Metrics.Gauge

    init(database: ServiceDatabase?, service: String) {
        self.database = database
        gauge = Metrics.Gauge(label: "service_ready", dimensions: [("service", service)])
    }

    public var isShuttingDown: Bool { shuttingDown.load(ordering: .acquiring) }

    /// Marks the service as going away: `/ready` answers 503 from now on.
    public func beginShutdown() {
        shuttingDown.store(true, ordering: .releasing)
        gauge.record(0)
    }

    /// Why the service is not ready, or nil when it is.
    public func check() async -> String? {
        if isShuttingDown { return "shutting down" }
        if let database {
            guard database.isMigrated else { return "database not migrated yet" }
            guard await database.ping() else { return "database unreachable" }
        }
        gauge.record(1)
        return nil
    }
}
