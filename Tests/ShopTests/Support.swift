import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OrchestrateTestSupport
import ServiceKit
import Testing

/// A database for a test: a fresh SQLite file, or the PostgreSQL server scripts/test starts
/// (`ORCHESTRATE_TEST_POSTGRES=postgres://USER@127.0.0.1:PORT`, one database per service already created).
enum TestDatabase: String, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// Whether scripts/test's PostgreSQL is there: the condition of the tests that run on both databases.
    static var postgresIsAvailable: Bool { ProcessInfo.processInfo.environment["ORCHESTRATE_TEST_POSTGRES"] != nil }

    /// `DATABASE_URL` for `service`'s database.
    ///
    /// - Throws: When PostgreSQL is asked for and scripts/test's server is not set up.
    func url(service: String, directory: URL) throws -> String {
        switch self {
        case .sqlite:
            return "sqlite://" + directory.appendingPathComponent("\(service).sqlite").path
        case .postgres:
            let base = try #require(
                ProcessInfo.processInfo.environment["ORCHESTRATE_TEST_POSTGRES"],
                "ORCHESTRATE_TEST_POSTGRES is not set: scripts/test starts PostgreSQL and sets it")
            return base + "/" + service.replacingOccurrences(of: "-", with: "_")
        }
    }
}

/// Observability is process-wide: bootstrap it once, as a service does at start.
let observability: Void = {
    Observability.bootstrap(serviceName: "shop-tests", environment: ["LOG_LEVEL": "warning"])
}()

/// Runs `body` against a service's router (no sockets; `.live` for a real server on a free port), with its database
/// migrated.
func withService(
    _ definition: ServiceDefinition, database: TestDatabase = .sqlite, environment: [String: String] = [:],
    setup: TestingSetup = .router, routes: (ServiceRuntime, Router<BasicRequestContext>) async throws -> Void,
    _ body: @escaping @Sendable (any TestClientProtocol, ServiceRuntime) async throws -> Void
) async throws {
    try await withService(
        definition, context: BasicRequestContext.self, database: database, environment: environment, setup: setup,
        routes: routes, body)
}

func withService<Context: RequestContext & InitializableFromSource<ApplicationRequestContextSource>>(
    _ definition: ServiceDefinition, context: Context.Type,
    database: TestDatabase = .sqlite, environment: [String: String] = [:], setup: TestingSetup = .router,
    routes: (ServiceRuntime, Router<Context>) async throws -> Void,
    _ body: @escaping @Sendable (any TestClientProtocol, ServiceRuntime) async throws -> Void
) async throws {
    _ = observability
    let directory = try ExternalTool.temporaryDirectory("shop-\(definition.name)")
    defer { try? FileManager.default.removeItem(at: directory) }
    var environment = environment
    environment["INTERNAL_TOKEN"] = environment["INTERNAL_TOKEN"] ?? testToken
    if !definition.migrations.isEmpty {
        environment["DATABASE_URL"] = try database.url(service: definition.name, directory: directory)
    }
    let runtime = try ServiceRuntime(definition: definition, environment: environment)
    do {
        try await runtime.database?.migrate()
        let router = try await ServiceMain.makeRouter(runtime: runtime, context: Context.self, routes: routes)
        try await Application(router: router).test(setup) { client in try await body(client, runtime) }
    } catch {
        await runtime.database?.shutdown()
        try? await runtime.httpClient.shutdown()
        throw error
    }
    await runtime.database?.shutdown()
    try await runtime.httpClient.shutdown()
}

let testToken = "test-internal-token"

/// Headers of an internal call acting for `subject` (as the gateway forwards one), with `roles` when given.
func callerHeaders(_ subject: String, roles: String? = nil) -> HTTPFields {
    var headers: HTTPFields = [
        HTTPField.Name("X-Service-Token")!: testToken, .contentType: "application/json",
        HTTPField.Name("X-Authenticated-Subject")!: subject,
    ]
    if let roles { headers[HTTPField.Name("X-Authenticated-Roles")!] = roles }
    return headers
}

/// Headers of an internal call acting for the subject `tester`, an admin (so router tests of one feature can read
/// what others made; AuthorizationTests is where subjects are kept apart).
var internalHeaders: HTTPFields { callerHeaders("tester", roles: "admin") }

/// Headers acting for a subject of its own (an admin too): for creating a profile, since a subject has one.
var newSubjectHeaders: HTTPFields { callerHeaders("tester-\(unique())", roles: "admin") }

extension TestResponse {
    /// The body as JSON.
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
    }

    /// `error.code` of a JSON error body.
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }

    /// The `field` of each entry of `error.fields`.
    var errorFields: [String] {
        ((json["error"] as? [String: Any])?["fields"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
    }
}

func body(_ json: String) -> ByteBuffer { ByteBuffer(string: json) }

/// A unique suffix, so tests that share a PostgreSQL database never collide.
func unique() -> String { UUID().uuidString.prefix(8).lowercased() }
