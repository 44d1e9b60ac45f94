import ArgumentParser
public import AsyncHTTPClient
import FluentKit
import Foundation
import Hummingbird
public import Logging
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
    /// What the server allows a client (`HTTP_IDLE_TIMEOUT`, `HTTP_BODY_READ_TIMEOUT`, `HTTP_SEND_TIMEOUT`,
    /// `HTTP_MAX_HEADER_BYTES`).
    public let serverLimits: ServerLimits

    /// Reads the configuration and prepares the database and client, without starting anything.
    ///
    /// - Throws: `ServiceKitError.configuration` naming the variable at fault.
    public init(
        definition: ServiceDefinition, environment: [String: String],
        httpClient: HTTPClient? = nil
    ) throws(ServiceKitError) {
        self.definition = definition
        self.environment = environment
        configuration = try ServiceConfiguration(
            environment: environment,
            requirements: .init(
                defaultPort: definition.defaultPort, dependencies: definition.dependencies,
                internalToken: definition.requiresInternalToken))
        serverLimits = try ServerLimits(environment: environment)
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
        readiness = Readiness(database: database, service: definition.name)
        let httpClient = httpClient ?? ServiceRuntime.makeHTTPClient()
        self.httpClient = httpClient
        var dns: DNSResolver?
        if let server = configuration.dnsServer {
            do {
                dns = try DNSResolver(host: server.host, port: server.port)
            } catch {
                throw ServiceKitError.configuration(
                    ServiceVariable.dnsServer, "is not an IP address and port: \(error)")
            }
        }
        var deadline = Duration.seconds(2)
        if let text = environment["UPSTREAM_TIMEOUT"] {
            guard let parsed = Self.parseDuration(text) else {
                throw ServiceKitError.configuration(
                    "UPSTREAM_TIMEOUT", "must be a duration such as 2s or 500ms, not \"\(text)\"")
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
        // Shorter than a ServiceKit server's idle timeout (HTTP_IDLE_TIMEOUT, 30 s): the client lets a pooled
        // connection go before the server closes it, so a request is never sent on a connection closing under it.
        pool.idleTimeout = .seconds(20)
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
