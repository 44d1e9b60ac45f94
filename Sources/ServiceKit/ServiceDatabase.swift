public import FluentKit
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
public import Logging
import Metrics
import NIOCore
import NIOPosix
import OrchestrateContract
import SQLKit
public import ServiceLifecycle
import Synchronization

/// A service's own database: PostgreSQL when `DATABASE_URL=postgres://…`, otherwise an embedded SQLite file
/// (`sqlite://PATH`, or `./.orchestrate/data/SERVICE.sqlite` when unset) so the shop runs with nothing installed.
///
/// Run it as a service: it applies the migrations, retrying with backoff while the database is unreachable, marks
/// itself migrated (which readiness waits for), and shuts the connection pools down after the server stops.
public final class ServiceDatabase: Service, Sendable {
    public enum Engine: String, Sendable {
        case postgres
        case sqlite
    }

    public let engine: Engine
    /// Where the data lives, without any password, for logs.
    public let location: String
    let databases: Databases
    private let migrations: Migrations
    private let logger: Logger
    private let migrated = Atomic<Bool>(false)
    /// SQLite: every request on one event loop, so on one pooled connection (one per loop): SQLite has one writer at
    /// a time, and two connections of one process with transactions that read then write fail each other with
    /// SQLITE_BUSY instead of waiting.
    private let sqliteLoop: (any EventLoop)?
    private let failures = Counter(label: "database_migration_failures_total")

    /// - Parameters:
    ///   - url: `DATABASE_URL`, or nil for the SQLite default.
    ///   - password: `DATABASE_PASSWORD` when the URL carries none.
    ///   - defaultFile: The SQLite file used when `url` is nil.
    ///   - maxConnections: Connections per event loop (PostgreSQL).
    public init(
        url: String?, password: String?, defaultFile: String, migrations: [any Migration], logger: Logger,
        maxConnections: Int = 4
    ) throws(ServiceKitError) {
        self.logger = logger
        databases = Databases(threadPool: .singleton, on: MultiThreadedEventLoopGroup.singleton)
        let registered = Migrations()
        registered.add(migrations)
        self.migrations = registered
        let url = url ?? "sqlite://" + defaultFile
        if url.hasPrefix("sqlite://") {
            let path = String(url.dropFirst("sqlite://".count))
            guard !path.isEmpty else {
                throw ServiceKitError.configuration(
                    ServiceVariable.databaseURL, "sqlite:// needs a file path (sqlite://data/users.sqlite)")
            }
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                do {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                } catch {
                    // Otherwise the failure would only show later, as migrations retrying forever.
                    throw ServiceKitError.configuration(
                        ServiceVariable.databaseURL, "cannot create \(directory) for the SQLite file: \(error)")
                }
            }
            engine = .sqlite
            location = path
            sqliteLoop = MultiThreadedEventLoopGroup.singleton.next()
            databases.use(.sqlite(.file(path), sqlLogLevel: .trace), as: .sqlite)
        } else {
            guard let components = URLComponents(string: url), let host = components.host, !host.isEmpty,
                let user = components.user, !user.isEmpty
            else {
                throw ServiceKitError.configuration(
                    ServiceVariable.databaseURL, "must be postgres://USER@HOST:PORT/DATABASE")
            }
            let database = String(components.path.drop { $0 == "/" })
            let tls: PostgresConnection.Configuration.TLS
            switch components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable" {
            case "disable": tls = .disable
            case "prefer": tls = (try? .prefer(.init(configuration: .makeClientConfiguration()))) ?? .disable
            case "require":
                do {
                    tls = .require(try .init(configuration: .makeClientConfiguration()))
                } catch {
                    throw ServiceKitError.configuration(ServiceVariable.databaseURL, "sslmode=require: \(error)")
                }
            case let other:
                throw ServiceKitError.configuration(
                    ServiceVariable.databaseURL, "sslmode must be disable, prefer or require, not \(other)")
            }
            let configuration = SQLPostgresConfiguration(
                hostname: host, port: components.port ?? 5432, username: user,
                password: components.password ?? password, database: database.isEmpty ? user : database, tls: tls)
            engine = .postgres
            sqliteLoop = nil
            location = "postgres://\(user)@\(host):\(components.port ?? 5432)/\(database.isEmpty ? user : database)"
            databases.use(
                .postgres(
                    configuration: configuration, maxConnectionsPerEventLoop: maxConnections,
                    connectionPoolTimeout: .seconds(5), sqlLogLevel: .trace),
                as: .psql)
        }
    }

    /// Whether every migration has been applied.
    public var isMigrated: Bool { migrated.load(ordering: .acquiring) }

    /// A handle on the database for one request.
    public func database(logger: Logger) -> any Database {
        databases.database(logger: logger, on: sqliteLoop ?? MultiThreadedEventLoopGroup.singleton.any())!
    }

    /// Applies the migrations once; throws when the database cannot be reached or a migration fails.
    public func migrate() async throws {
        let migrator = Migrator(
            databases: databases, migrations: migrations, logger: logger,
            on: MultiThreadedEventLoopGroup.singleton.any())
        if engine == .sqlite, let sql = database(logger: logger) as? any SQLDatabase {
            // Write-ahead logging (kept in the file): readers do not wait for the writer, and a commit appends to
            // the log instead of rewriting the journal; with several processes and concurrent requests this is
            // SQLite's mode for servers.
            try await sql.raw("PRAGMA journal_mode = WAL").run()
        }
        try await migrator.setupIfNeeded().get()
        try await migrator.prepareBatch().get()
        migrated.store(true, ordering: .releasing)
    }

    /// Whether the database answers a trivial query now.
    public func ping() async -> Bool {
        guard let sql = database(logger: logger) as? any SQLDatabase else { return false }
        do {
            try await sql.raw("SELECT 1").run()
            return true
        } catch {
            return false
        }
    }

    public func run() async throws {
        var delay = Duration.milliseconds(100)
        while !isMigrated, !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await migrate()
                logger.info("database ready", metadata: ["database": "\(location)", "engine": "\(engine.rawValue)"])
            } catch {
                failures.increment()
                logger.warning(
                    "database not ready; retrying",
                    metadata: [
                        "database": "\(location)", "error": "\(String(reflecting: error))", "retry_in": "\(delay)",
                    ])
                let pause = delay  // a shutdown ends the wait at once
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
                delay = min(delay * 2, .seconds(5))
            }
        }
        try? await gracefulShutdown()
        await databases.shutdownAsync()
    }

    /// Shuts the pools down when the database was never run as a service (tests).
    public func shutdown() async {
        await databases.shutdownAsync()
    }
}

extension Model where IDValue == UUID {
    /// The row whose id is the route parameter `id`, or a 404 `not-found` (also for an id that is not a UUID).
    public static func find(parameter id: String?, on database: any Database, what: String) async throws -> Self {
        guard let id, let uuid = UUID(uuidString: id), let found = try await find(uuid, on: database) else {
            throw ServiceError.notFound("no \(what) \(id ?? "")")
        }
        return found
    }
}
