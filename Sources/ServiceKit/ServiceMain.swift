import ArgumentParser
import AsyncHTTPClient
import FluentKit
import Foundation
public import Hummingbird
public import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import OTel
import OrchestrateContract
import Prometheus
public import ServiceLifecycle
import Synchronization
import Tracing
import UnixSignals

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
        routes: (ServiceRuntime, Router<BasicRequestContext>) async throws -> Void
    ) async -> Never {
        await main(definition, context: BasicRequestContext.self, routes: routes)
    }

    /// `main` for a service with its own request context, or its own server: `server` replaces the HTTP/1 server
    /// with `ServerLimits` (the gateway's answers on its event loops, without the router).
    public static func main<Context: RequestContext & InitializableFromSource<ApplicationRequestContextSource>>(
        _ definition: ServiceDefinition, context: Context.Type,
        server: ((ServiceRuntime) async throws -> HTTPServerBuilder)? = nil,
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
                "cannot start: \(error)", metadata: ["variable": "\(error.subject)"])
            FileHandle.standardError.write(Data("\(definition.name): cannot start: \(error)\n".utf8))
            exit(78)
        }
        do {
            let router = try await makeRouter(runtime: runtime, context: Context.self, routes: routes)
            let builder = try await server?(runtime) ?? runtime.serverLimits.server
            try await run(runtime: runtime, router: router, server: builder, tracer: tracer)
            exit(0)
        } catch let error as ServiceKitError where error.code == .configuration {
            runtime.logger.critical("cannot start: \(error)", metadata: ["variable": "\(error.subject)"])
            FileHandle.standardError.write(Data("\(definition.name): cannot start: \(error)\n".utf8))
            exit(78)
        } catch {
            runtime.logger.critical("stopped with an error", metadata: ["error": "\(String(reflecting: error))"])
            exit(1)
        }
    }

    /// Runs the server with its database, tracer and components until SIGTERM or SIGINT.
    public static func run<Context: RequestContext & InitializableFromSource<ApplicationRequestContextSource>>(
        runtime: ServiceRuntime, router: Router<Context>, server: HTTPServerBuilder? = nil, tracer: (any Service)?
    ) async throws {
        let components = try runtime.definition.components.flatMap { try $0.services(runtime: runtime) }
        let grace = runtime.environment["SHUTDOWN_GRACE_PERIOD"].flatMap(ServiceRuntime.parseDuration) ?? .seconds(10)
        let app = Application(
            router: router,
            server: server ?? runtime.serverLimits.server,
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
        }
        services += components
        services.append(.init(service: app))
        if server != nil, let metricsApp = try metricsApplication(runtime: runtime, router: router) {
            services.append(.init(service: metricsApp))
        }
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

extension ServiceMain {
    /// For a service with its own server (the gateway), which never serves the router: the router, with `/health`,
    /// `/ready` and `/metrics`, on `METRICS_PORT` of the same host. Nil without `METRICS_PORT`.
    static func metricsApplication<Context: RequestContext & InitializableFromSource<ApplicationRequestContextSource>>(
        runtime: ServiceRuntime, router: Router<Context>
    ) throws(ServiceKitError) -> (any Service)? {
        guard let text = runtime.environment[ServiceVariable.metricsPort] else { return nil }
        guard let port = Int(text), (1...65535).contains(port), port != runtime.configuration.port else {
            throw .configuration(
                ServiceVariable.metricsPort,
                "\(text) is not a port (1-65535) other than PORT (\(runtime.configuration.port))")
        }
        return Application(
            router: router,
            server: runtime.serverLimits.server,
            configuration: .init(
                address: .hostname(runtime.configuration.host, port: port),
                serverName: runtime.definition.name + "-metrics"),
            onServerRunning: { channel in
                runtime.logger.info(
                    "serving /metrics", metadata: ["address": "\(channel.localAddress?.description ?? "?")"])
            },
            logger: runtime.logger)
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
