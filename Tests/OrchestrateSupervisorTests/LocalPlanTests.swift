import Foundation
import OrchestrateSpec
import OrchestrateSupervisor
import OrchestrateTestSupport
import Testing

@Suite(.timeLimit(.minutes(5)))
struct LocalPlanTests {
    func shop() throws -> Spec {
        let bytes = try Data(contentsOf: ExternalTool.packageRoot.appendingPathComponent("services.yaml"))
        return try #require(SpecLoader.load(Array(bytes)).spec)
    }

    func withState(_ body: (String) throws -> Void) throws {
        let directory = try ExternalTool.temporaryDirectory("plan")
        defer { try? FileManager.default.removeItem(at: directory) }
        try body(directory.path)
    }

    /// A `command:` service runs its program, found on the search path or relative to the spec's directory, in
    /// that directory; every service with a port has a stable address; with `.addresses` the URLs carry it.
    @Test func aCommandServiceRunsItsProgramAndURLsFollowTheNaming() throws {
        let text = """
            version: 1
            name: demo
            services:
              catalog: { product: Catalog, port: 8081, replicas: 2 }
              worker:
                command: [sh, -c, "exec sleep 1"]
                image: alpine:3.20
                args: [--verbose]
                dependsOn: [catalog]
              tool:
                command: [./bin/tool]
                image: example/tool:1
                port: 8090
            """
        let spec = try #require(SpecLoader.load(Array(text.utf8)).spec)
        try withState { state in
            try FileManager.default.createDirectory(atPath: state + "/bin", withIntermediateDirectories: true)
            _ = FileManager.default.createFile(
                atPath: state + "/bin/tool", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
            let secrets = SecretStore(directory: state + "/secrets", environment: [:])
            let byName = try LocalPlan.make(
                spec: spec, stateDirectory: state + "/.orchestrate", dnsPort: 1, secrets: secrets,
                projectDirectory: state, searchPath: "/nonexistent:/bin:/usr/bin")
            #expect(byName.serviceAddresses == ["catalog": "127.0.2.1", "tool": "127.0.2.2"])
            let worker = try #require(byName.replicas.first { $0.service == "worker" })
            #expect(worker.executable == "/bin/sh")
            #expect(worker.arguments == ["-c", "exec sleep 1", "--verbose"])
            #expect(worker.workingDirectory == state)
            #expect(worker.environment["CATALOG_URL"] == "http://catalog:8081")
            #expect(worker.hostsFile == state + "/.orchestrate/hosts")
            #expect(byName.replicas.first { $0.service == "tool" }?.executable == state + "/./bin/tool")
            #expect(byName.replicas.first { $0.service == "catalog" }?.executable == nil)

            let byAddress = try LocalPlan.make(
                spec: spec, stateDirectory: state + "/.orchestrate", dnsPort: 1, secrets: secrets,
                projectDirectory: state, naming: .addresses, searchPath: "/bin:/usr/bin")
            let addressed = try #require(byAddress.replicas.first { $0.service == "worker" })
            #expect(addressed.environment["CATALOG_URL"] == "http://127.0.2.1:8081")
            #expect(addressed.hostsFile == nil)

            // A program that is nowhere: the plan says which and where it looked.
            let missing = #expect(throws: SupervisorError.self) {
                try LocalPlan.make(
                    spec: spec, stateDirectory: state + "/.orchestrate", dnsPort: 1, secrets: secrets,
                    projectDirectory: state, searchPath: "/nonexistent")
            }
            #expect(missing?.code == .plan)
            #expect(
                missing?.description.contains("cannot run sh: it is not on PATH") == true,
                "\(String(describing: missing))")
        }
    }

    @Test func theShopGetsAnAddressPerReplicaAndItsEnvironment() throws {
        try withState { state in
            let plan = try LocalPlan.make(
                spec: try shop(), stateDirectory: state, dnsPort: 5353,
                secrets: SecretStore(directory: state + "/secrets", environment: [:]), builtinGateway: "/opt/gateway")
            #expect(
                plan.replicas.map { "\($0.service)#\($0.index)" } == [
                    "api-gateway#1", "api-gateway#2", "user-service#1", "user-service#2", "order-service#1",
                    "payment-service#1", "notification-service#1",
                ])
            #expect(Set(plan.replicas.map(\.address)).count == 7)
            #expect(plan.replicas.allSatisfy { $0.environment["HOST"] == $0.address })
            #expect(plan.replicas.allSatisfy { $0.environment["ORCHESTRATE_DNS"] == "127.0.0.1:5353" })
            let order = try #require(plan.replicas.first { $0.service == "order-service" })
            #expect(order.environment["USER_SERVICE_URL"] == "http://user-service:3001")
            #expect(order.environment["PAYMENT_SERVICE_URL"] == "http://payment-service:3003")
            #expect(order.environment["DATABASE_URL"] == "sqlite://\(state)/data/orders.sqlite")
            #expect(order.environment["BROKER_URL"] == "sqlite://\(state)/data/events.sqlite")
            #expect(order.environment["UPSTREAM_TIMEOUT"] == "2s")
            #expect(order.environment["PORT"] == "3002")
            let gateway = try #require(plan.replicas.first { $0.service == "api-gateway" })
            #expect(gateway.executable == "/opt/gateway")  // the built-in gateway, as found beside orchestrate
            #expect(gateway.environment["ROUTES_FILE"] == "\(state)/routes.json")
            #expect(gateway.environment["JWT_ISSUER"] == "shop")
            #expect((gateway.environment["JWT_SECRET"]?.utf8.count ?? 0) >= 32)
            // One internal token for every service, as they must agree.
            #expect(Set(plan.replicas.compactMap { $0.environment["INTERNAL_TOKEN"] }).count == 1)
            // Dependencies first: user and payment before order, order before the gateway that routes to it.
            let wave = Dictionary(plan.replicas.map { ($0.service, $0.wave) }, uniquingKeysWith: { a, _ in a })
            #expect(wave["user-service"]! < wave["order-service"]!)
            #expect(wave["payment-service"]! < wave["order-service"]!)
        }
    }

    @Test func secretsAreGeneratedOnceThenReadFromTheirFiles() throws {
        try withState { state in
            let store = SecretStore(directory: state + "/secrets", environment: [:])
            let first = try LocalPlan.make(
                spec: try shop(), stateDirectory: state, dnsPort: 1, secrets: store, builtinGateway: "/opt/gateway")
            #expect(Set(first.generatedSecrets) == ["internal-token", "jwt-secret"])
            let attributes = try FileManager.default.attributesOfItem(atPath: state + "/secrets/jwt-secret")
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            let second = try LocalPlan.make(
                spec: try shop(), stateDirectory: state, dnsPort: 1, secrets: store, builtinGateway: "/opt/gateway")
            #expect(second.generatedSecrets.isEmpty)
            #expect(second.replicas[0].environment["JWT_SECRET"] == first.replicas[0].environment["JWT_SECRET"])
            // A variable in the supervisor's environment wins over the file.
            let overridden = try LocalPlan.make(
                spec: try shop(), stateDirectory: state, dnsPort: 1,
                secrets: SecretStore(directory: state + "/secrets", environment: ["INTERNAL_TOKEN": "from-env"]),
                builtinGateway: "/opt/gateway")
            #expect(overridden.replicas.allSatisfy { $0.environment["INTERNAL_TOKEN"] == "from-env" })
        }
    }

    @Test func imageOnlyServicesAndTooManyReplicasAreRefused() throws {
        let imageOnly = """
            version: 1
            name: t
            services:
              cache: { image: "redis:7", port: 6379 }
            """
        let spec = try #require(SpecLoader.load(Array(imageOnly.utf8)).spec)
        try withState { state in
            let error = #expect(throws: SupervisorError.self) {
                try LocalPlan.make(
                    spec: spec, stateDirectory: state, dnsPort: 1,
                    secrets: SecretStore(directory: state, environment: [:]))
            }
            #expect(error?.code == .plan)
        }
        #expect(throws: SupervisorError.self) { try LoopbackAddresses.linux.address(253) }
        #expect(try LoopbackAddresses.linux.address(0) == "127.0.0.2")
    }
}
