import ArgumentParser
public import AsyncHTTPClient
public import FluentKit
import Foundation
public import Hummingbird
public import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import OTel
import OrchestrateContract
public import Prometheus
public import ServiceLifecycle
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

/// Everything a service's routes need, built from the environment.
public struct ServiceRuntime: Sendable {
    public let definition: ServiceDefinition
    public let configuration: ServiceConfiguration
    public let environment: [String: String]
    public let logger: Logger
    public let database: ServiceDatabase?
    public let client: ServiceClient

    /// The service's database, for a route that needs one.
    ///
    /// A service whose definition declares migrations always has one, so this fails only for a route mounted on a
    /// service declared without a database: a programming error, answered as a 500 rather than a crash.
    /// - Throws: `ServiceError` (500, `no-database`) when the service has none.
    public func requireDatabase() throws -> ServiceDatabase {
        guard let database else {
            throw ServiceError(
                .internalServerError, code: "no-database",
                message: "\(definition.name) has no database; declare migrations in its ServiceDefinition")
        }
        return database
    }
    public let readiness: Readiness
    public let httpClient: HTTPClient
    public let internalToken: InternalToken?
    /// The level of the one line logged per request (`REQUEST_LOG_LEVEL`, default info).
    public let requestLogLevel: Logger.Level
    /// The broker (`BROKER_URL`), when the service publishes or subscribes.
    public let broker: BrokerLocation?
    /// Where the service publishes its events, when it publishes any.
    public let outbox: Outbox?
    public let consumerSettings: EventConsumerSettings

    /// Reads the configuration and prepares the database and client, without starting anything.
    ///
    /// - Throws: `ConfigurationError` naming the variable at fault.
    public init(
        definition: ServiceDefinition, environment: [String: String],
        httpClient: HTTPClient? = nil
    ) throws(ConfigurationError) {
        self.definition = definition
        self.environment = environment
        configuration = try ServiceConfiguration(
            environment: environment,
            requirements: .init(
                defaultPort: definition.defaultPort, dependencies: definition.dependencies,
                internalToken: definition.requiresInternalToken))
        var logger = Logger(label: definition.name)
        logger.logLevel = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        self.logger = logger
        if definition.allMigrations.isEmpty {
            database = nil
        } else {
            database = try ServiceDatabase(
                url: configuration.databaseURL, password: configuration.databasePassword,
                defaultFile: ".orchestrate/data/\(definition.name).sqlite", migrations: definition.allMigrations,
                logger: logger)
        }
        if definition.publishes.isEmpty, definition.subscribes.isEmpty {
            broker = nil
        } else {
            broker = try BrokerLocation(url: configuration.brokerURL)
        }
        outbox = definition.publishes.isEmpty ? nil : Outbox(types: definition.publishes)
        consumerSettings = try EventConsumerSettings(environment: environment)
        readiness = Readiness(database: database, service: definition.name)
        let httpClient = httpClient ?? ServiceRuntime.makeHTTPClient()
        self.httpClient = httpClient
        var dns: DNSResolver?
        if let server = configuration.dnsServer {
            do {
                dns = try DNSResolver(host: server.host, port: server.port)
            } catch {
                throw ConfigurationError(
                    variable: ServiceVariable.dnsServer, message: "is not an IP address and port: \(error)")
            }
        }
        var deadline = Duration.seconds(2)
        if let text = environment["UPSTREAM_TIMEOUT"] {
            guard let parsed = Self.parseDuration(text) else {
                throw ConfigurationError(
                    variable: "UPSTREAM_TIMEOUT", message: "must be a duration such as 2s or 500ms, not \"\(text)\"")
            }
            deadline = parsed
        }
        client = ServiceClient(
            dependencies: configuration.dependencies, httpClient: httpClient, resolver: UpstreamResolver(dns: dns),
            internalToken: configuration.internalToken,
            breakerConfiguration: CircuitBreakerConfiguration.fromEnvironment(environment),
            defaultDeadline: deadline, logger: logger)
        internalToken = configuration.internalToken.map(InternalToken.init)
        requestLogLevel = environment["REQUEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    }

    /// The client for calls to other services. A failed connect fails the request at once (AsyncHTTPClient would
    /// otherwise keep reconnecting until the deadline): the caller decides whether to retry, and only idempotent
    /// calls are. Made after tracing is bootstrapped, so its calls carry spans and `traceparent`.
    public static func makeHTTPClient(connectionsPerHost: Int = 64) -> HTTPClient {
        var pool = HTTPClient.Configuration.ConnectionPool()
        pool.idleTimeout = .seconds(60)
        pool.concurrentHTTP1ConnectionsPerHostSoftLimit = connectionsPerHost
        pool.retryConnectionEstablishment = false
        return HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(
                timeout: .init(connect: .seconds(1), read: .seconds(30)), connectionPool: pool, tracing: .init()))
    }

    /// `250ms`, `2s`, `1m`: the duration syntax of services.yaml.
    public static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, milliseconds) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if let value = Int64(number), value >= 0, !(suffix == "m" && number.hasSuffix("m")) {
                return .milliseconds(value * milliseconds)
            }
        }
        return nil
    }
}

extension CircuitBreakerConfiguration {
    /// The defaults, with `BREAKER_RESET_TIMEOUT` (e.g. `5s`) when set: tests and `orchestrate up` shorten it.
    static func fromEnvironment(_ environment: [String: String]) -> CircuitBreakerConfiguration {
        var configuration = CircuitBreakerConfiguration()
        if let text = environment["BREAKER_RESET_TIMEOUT"], let timeout = ServiceRuntime.parseDuration(text) {
            configuration.resetTimeout = timeout
        }
        return configuration
    }
}

/// Logging, metrics and tracing for the whole process, set up once.
public enum Observability {
    /// Where `/metrics` reads from.
    public static let registry = PrometheusCollectorRegistry()
    private static let state = Mutex<(bootstrapped: Bool, tracer: (any Service)?)>((false, nil))

    /// Bootstraps swift-log (JSON lines with trace and span ids), swift-metrics (Prometheus) and
    /// swift-distributed-tracing (swift-otel; OTLP/HTTP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, none
    /// otherwise). Later calls do nothing; the returned service (the span processor) runs beside the server.
    @discardableResult
    public static func bootstrap(serviceName: String, environment: [String: String]) -> (any Service)? {
        state.withLock { state in
            if state.bootstrapped { return state.tracer }
            state.bootstrapped = true
            let level = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            let provider = OTel.makeLoggingMetadataProvider()
            LoggingSystem.bootstrap(
                { label, provider in JSONLogHandler(label: label, level: level, metadataProvider: provider) },
                metadataProvider: provider)
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.nameAndLabelSanitizer = { name, labels in
                func clean(_ text: String) -> String {
                    String(text.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
                }
                return (clean(name), labels.map { (clean($0.0), $0.1) })
            }
            MetricsSystem.bootstrap(factory)
            var configuration = OTel.Configuration.default
            configuration.serviceName = serviceName
            configuration.logs.enabled = false
            configuration.metrics.enabled = false
            configuration.diagnosticLogLevel = .warning
            let endpoint = environment[ServiceVariable.otlpEndpoint] ?? ""
            configuration.traces.exporter = endpoint.isEmpty ? .none : .otlp
            configuration.traces.otlpExporter.protocol = .httpProtobuf
            do {
                let backend = try OTel.makeTracingBackend(configuration: configuration)
                InstrumentationSystem.bootstrap(backend.factory)
                state.tracer = backend.service
            } catch {
                Logger(label: serviceName).error("tracing disabled", metadata: ["error": "\(error)"])
            }
            return state.tracer
        }
    }
}

/// Builds and runs a service.
public enum ServiceMain {
    /// The router with everything every service has: JSON errors, request ids, tracing, metrics, `/health`,
    /// `/ready` and `/metrics`. The service adds its own routes with `routes`.
    public static func makeRouter<Context: RequestContext>(
        runtime: ServiceRuntime, context: Context.Type,
        routes: (ServiceRuntime, Router<Context>) async throws -> Void
    ) async rethrows -> Router<Context> {
        let router = Router(context: Context.self)
        // Outermost first: every response carries its request id; metrics and spans see the final status, because
        // errors have become JSON responses by then; every request is logged with its request and trace ids.
        router.middlewares.add(RequestIDMiddleware())
        router.middlewares.add(MetricsMiddleware())
        router.middlewares.add(TracingMiddleware())
        router.middlewares.add(LogRequestsMiddleware(runtime.requestLogLevel))
        router.middlewares.add(JSONErrorMiddleware())
        router.get("/health") { _, _ in
            try jsonResponse(["status": "ok"])
        }
        router.get("/ready") { _, _ in
            if let reason = await runtime.readiness.check() {
                return try jsonResponse(["status": "not-ready", "reason": reason], status: .serviceUnavailable)
            }
            return try jsonResponse(["status": "ready"])
        }
        router.get("/metrics") { _, _ in
            var buffer: [UInt8] = []
            Observability.registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        try await routes(runtime, router)
        return router
    }

    /// The process's entry point: `BINARY` serves; `BINARY healthcheck URL` probes (exit 0 on 2xx, 1 otherwise).
    ///
    /// A configuration error stops the process with exit 78 (EX_CONFIG) and a message naming the variable. SIGTERM
    /// or SIGINT: readiness turns false, the server stops accepting, in-flight requests finish within
    /// `SHUTDOWN_GRACE_PERIOD` (default 10s), then the process exits 0.
    public static func main(
        _ definition: ServiceDefinition,
        subscriptions: (ServiceRuntime) throws -> [EventSubscription] = { _ in [] },
        routes: (ServiceRuntime, Router<BasicRequestContext>) async throws -> Void
    ) async -> Never {
        await main(definition, context: BasicRequestContext.self, subscriptions: subscriptions, routes: routes)
    }

    /// `main` for a service with its own request context (the gateway's carries the client address).
    public static func main<Context: RequestContext & InitializableFromSource<ApplicationRequestContextSource>>(
        _ definition: ServiceDefinition, context: Context.Type,
        subscriptions: (ServiceRuntime) throws -> [EventSubscription] = { _ in [] },
        routes: (ServiceRuntime, Router<Context>) async throws -> Void
    ) async -> Never {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "healthcheck" {
            await HealthcheckCommand.main(Array(arguments.dropFirst()))
            exit(0)
        }
        let environment = ProcessInfo.processInfo.environment
        let tracer = Observability.bootstrap(serviceName: definition.name, environment: environment)
        let runtime: ServiceRuntime
        do {
            runtime = try ServiceRuntime(definition: definition, environment: environment)
        } catch {
            Logger(label: definition.name).critical(
                "cannot start: \(error)", metadata: ["variable": "\(error.variable)"])
            FileHandle.standardError.write(Data("\(definition.name): cannot start: \(error)\n".utf8))
            exit(78)
        }
        do {
            let router = try await makeRouter(runtime: runtime, context: Context.self, routes: routes)
            try await run(runtime: runtime, router: router, tracer: tracer, subscriptions: subscriptions(runtime))
            exit(0)
        } catch let error as ConfigurationError {
            runtime.logger.critical("cannot start: \(error)", metadata: ["variable": "\(error.variable)"])
            FileHandle.standardError.write(Data("\(definition.name): cannot start: \(error)\n".utf8))
            exit(78)
        } catch {
            runtime.logger.critical("stopped with an error", metadata: ["error": "\(String(reflecting: error))"])
            exit(1)
        }
    }

    /// Runs the server with its database, tracer, outbox relay and event consumers until SIGTERM or SIGINT.
    public static func run<Context: RequestContext & InitializableFromSource<ApplicationRequestContextSource>>(
        runtime: ServiceRuntime, router: Router<Context>, tracer: (any Service)?,
        subscriptions: [EventSubscription] = []
    ) async throws {
        let subscribed = Set(subscriptions.map(\.type))
        guard subscribed == Set(runtime.definition.subscribes) else {
            throw ConfigurationError(
                variable: ServiceVariable.brokerURL,
                message:
                    "the service subscribes to \(runtime.definition.subscribes.sorted()) but handles \(subscribed.sorted())"
            )
        }
        let grace = runtime.environment["SHUTDOWN_GRACE_PERIOD"].flatMap(ServiceRuntime.parseDuration) ?? .seconds(10)
        let app = Application(
            router: router,
            configuration: .init(
                address: .hostname(runtime.configuration.host, port: runtime.configuration.port),
                serverName: runtime.definition.name),
            onServerRunning: { channel in
                runtime.logger.info(
                    "listening", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
            },
            logger: runtime.logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let tracer { services.append(.init(service: tracer)) }
        services.append(.init(service: HTTPClientService(client: runtime.httpClient)))
        if let database = runtime.database {
            services.append(.init(service: database, successTerminationBehavior: .ignore))
            if let broker = runtime.broker {
                if let outbox = runtime.outbox {
                    services.append(
                        .init(
                            service: OutboxRelay(
                                outbox: outbox, database: database, broker: broker, logger: runtime.logger),
                            successTerminationBehavior: .ignore))
                }
                let member = "\(runtime.definition.name)-\(runtime.environment["HOSTNAME"] ?? "local")-\(getpid())"
                for subscription in subscriptions {
                    services.append(
                        .init(
                            service: EventConsumer(
                                subscription: subscription, group: runtime.definition.name, consumer: member,
                                database: database, broker: broker, settings: runtime.consumerSettings,
                                logger: runtime.logger),
                            successTerminationBehavior: .ignore))
                }
            }
        }
        services.append(.init(service: app))
        services.append(
            .init(
                service: ReadinessGuard(
                    readiness: runtime.readiness, drain: min(grace / 4, .seconds(1)), logger: runtime.logger),
                successTerminationBehavior: .ignore))
        var configuration = ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: runtime.logger)
        configuration.maximumGracefulShutdownDuration = grace
        configuration.maximumCancellationDuration = .seconds(2)
        try await ServiceGroup(configuration: configuration).run()
        runtime.logger.info("stopped")
    }
}

/// Last in the service group, so the first told of a shutdown: turns readiness false, then waits a moment so load
/// balancers and the supervisor stop sending traffic before the server stops accepting it.
struct ReadinessGuard: Service {
    let readiness: Readiness
    let drain: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        readiness.beginShutdown()
        logger.info("shutting down: not ready any more; in-flight requests may finish")
        try? await Task.sleep(for: drain)
    }
}

/// Shuts the shared HTTP client down after the server has stopped.
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

/// `BINARY healthcheck URL`: GET the URL; exit 0 on 2xx, 1 otherwise. Images have no curl.
struct HealthcheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck", abstract: "GET a URL; exit 0 on a 2xx answer, 1 otherwise (images have no curl).")

    @Argument(help: "The URL to probe, e.g. http://127.0.0.1:3001/ready.")
    var url: String

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Int = 2

    func validate() throws {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ValidationError("the URL must start with http:// or https://, not \"\(url)\"")
        }
        guard (1...60).contains(timeout) else { throw ValidationError("--timeout must be 1 to 60 seconds") }
    }

    func run() async throws {
        do {
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: url), timeout: .seconds(Int64(timeout)))
            let code = response.status.code
            _ = try? await response.body.collect(upTo: 64 * 1024)
            guard (200..<300).contains(code) else {
                FileHandle.standardError.write(Data("healthcheck: \(url) answered \(code)\n".utf8))
                throw ExitCode(1)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            FileHandle.standardError.write(Data("healthcheck: \(url): \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
