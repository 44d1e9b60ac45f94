import Foundation
import OrchestrateSpec
import OrchestrateTestSupport
import Testing

@testable import OrchestrateSupervisor

/// Whether PostgreSQL and redis-server are on this machine (scripts/test installs them).
var nativeServersAreInstalled: Bool {
    ExternalTool.find("redis-server") != nil
        && (FileManager.default.fileExists(atPath: "/usr/lib/postgresql") || ExternalTool.find("initdb") != nil)
}

/// The plan of `up --infra native`, without starting anything (the servers run in UpEndToEndTests).
@Suite(.timeLimit(.minutes(10)), .requires("PostgreSQL and redis-server", nativeServersAreInstalled))
struct NativeInfrastructureTests {
    func spec(_ text: String) throws -> Spec {
        try #require(SpecLoader.load(Array(text.utf8)).spec)
    }

    var shop: Spec {
        get throws {
            let bytes = try Data(contentsOf: ExternalTool.packageRoot.appendingPathComponent("services.yaml"))
            return try #require(SpecLoader.load(Array(bytes)).spec)
        }
    }

    let addresses = (postgres: "127.0.0.9", redis: "127.0.0.10")
    var environment: [String: String] { ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"] }

    /// Passwords made at random into a directory of this test's own.
    let secrets = SecretStore(
        directory: (try? ExternalTool.temporaryDirectory("native-secrets").path) ?? "/nonexistent", environment: [:])

    func requireServers() throws {
        try #require(nativeServersAreInstalled, "PostgreSQL or redis-server is missing: scripts/test installs them")
    }

    @Test func theShopGetsOneClusterAndARedisAndEachServiceItsOwnDatabase() throws {
        try requireServers()
        let shop = try shop
        let infrastructure = try NativeInfrastructure.plan(
            for: shop, stateDirectory: "/state", environment: environment, addresses: addresses, dnsPort: 5353,
            secrets: secrets)
        #expect(infrastructure.plan.replicas.map(\.service).sorted() == ["postgres", "redis"])
        let postgres = try #require(infrastructure.plan.replicas.first { $0.service == "postgres" })
        #expect(postgres.address == "127.0.0.9")
        #expect(postgres.executable?.hasSuffix("/postgres") == true)
        #expect(postgres.arguments.starts(with: ["-D", "/state/postgres/data"]))
        #expect(postgres.user?.name == (geteuid() == 0 ? "postgres" : nil))
        let redis = try #require(infrastructure.plan.replicas.first { $0.service == "redis" })
        #expect(redis.arguments.contains("--appendonly") && redis.arguments.contains("/state/redis"))
        // Readiness is the servers' own check; the supervisor's usual probe rules apply.
        let readiness = try #require(postgres.supervision.readiness?.check)
        guard case .command(let words) = readiness else {
            Issue.record("postgres readiness is \(readiness)")
            return
        }
        let port = try #require(postgres.port)
        #expect(words.first?.hasSuffix("pg_isready") == true && words.contains(String(port)))

        let plan = try LocalPlan.make(
            spec: shop, stateDirectory: "/state", dnsPort: 5353,
            secrets: SecretStore(directory: try ExternalTool.temporaryDirectory("native-plan").path, environment: [:]),
            builtinGateway: "/opt/gateway")
        let applied = infrastructure.apply(to: plan, spec: shop)
        let order = try #require(applied.replicas.first { $0.service == "order-service" })
        #expect(order.environment["DATABASE_URL"] == "postgres://orders@127.0.0.9:\(port)/orders")
        #expect(order.environment["BROKER_URL"] == "redis://127.0.0.10:\(redis.port!)")
        // Each role's own password, and Redis's only to the services that use events.
        #expect(order.environment["DATABASE_PASSWORD"] == infrastructure.passwords.databases["orders"])
        #expect(order.environment["DATABASE_PASSWORD"]?.count == 64)
        #expect(order.environment["BROKER_PASSWORD"] == infrastructure.passwords.redis)
        #expect(redis.environment["REDISCLI_AUTH"] == infrastructure.passwords.redis)
        #expect(!redis.arguments.contains(infrastructure.passwords.redis), "a password on a command line")
        let gateway = try #require(applied.replicas.first { $0.service == "api-gateway" })
        #expect(gateway.environment["DATABASE_URL"] == nil)
        #expect(gateway.environment["BROKER_PASSWORD"] == nil && gateway.environment["DATABASE_PASSWORD"] == nil)
    }

    @Test func anExternalDatabaseOrBrokerKeepsItsSecretAndNeedsNoServer() throws {
        try requireServers()
        let spec = try spec(
            """
            version: 1
            name: ext
            broker: { engine: redis, external: { secret: broker-url } }
            services:
              a: { product: A, port: 3000, database: { name: a, external: { secret: a-url } } }
            """)
        let infrastructure = try NativeInfrastructure.plan(
            for: spec, stateDirectory: "/state", environment: environment, addresses: addresses, dnsPort: 1,
            secrets: secrets)
        #expect(infrastructure.plan.replicas.isEmpty)
    }

    @Test func aServiceNamedLikeAServerOrAMissingRedisIsRefused() throws {
        let clash = try spec("version: 1\nname: x\nservices:\n  postgres: { product: P, database: { name: p } }\n")
        let clashError = #expect(throws: SupervisorError.self) {
            try NativeInfrastructure.plan(
                for: clash, stateDirectory: "/s", environment: environment, addresses: addresses, dnsPort: 1,
                secrets: secrets)
        }
        #expect(clashError?.code == .setup)
        let broker = try spec("version: 1\nname: x\nbroker: { engine: redis }\nservices:\n  a: { product: A }\n")
        let error = try #require(throws: SupervisorError.self) {
            try NativeInfrastructure.plan(
                for: broker, stateDirectory: "/s", environment: ["PATH": "/nonexistent"], addresses: addresses,
                dnsPort: 1, secrets: secrets)
        }
        #expect(
            error.description.contains("redis-server") && error.description.contains("apt-get install redis-server"))
    }
}
