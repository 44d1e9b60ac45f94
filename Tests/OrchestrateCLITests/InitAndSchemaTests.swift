import Foundation
import OrchestrateTestSupport
import Testing

@testable import OrchestrateCLI

/// `orchestrate init` on a package that is not the shop, and `orchestrate schema`.
@Suite(.timeLimit(.minutes(5)))
struct InitAndSchemaTests {
    /// A copy of examples/storefront without its services.yaml.
    func examplePackage() throws -> URL {
        let directory = try ExternalTool.temporaryDirectory("init")
        for name in ["Package.swift", "Sources"] {
            try FileManager.default.copyItem(
                at: ExampleProject.directory.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        return directory
    }

    @Test func initWritesASpecThatValidatesWithAServicePerExecutable() async throws {
        let package = try examplePackage()
        defer { try? FileManager.default.removeItem(at: package) }
        let run = try await orchestrate(["init", "--package-path", package.path, "--first-port", "9100"])
        #expect(run.status == 0, "\(run.stderr)")
        let spec = package.appendingPathComponent("services.yaml")
        let text = try String(contentsOf: spec, encoding: .utf8)
        #expect(text.contains("  catalog:\n    product: Catalog\n    port: 9100\n"))
        #expect(text.contains("  storefront:\n    product: Storefront\n    port: 9101\n"))
        #expect(text.contains("# dependsOn:"))
        let validated = try await orchestrate(["validate", "--strict", spec.path])
        #expect(validated.status == 0, "\(validated.stdout)\(validated.stderr)")
        #expect(validated.stdout.contains("valid, 2 services"))
    }

    /// init never overwrites: an existing spec, or a symbolic link where the spec would go (even one pointing
    /// nowhere), stops it and nothing is written.
    @Test func initNeverOverwritesOrFollowsALink() async throws {
        let package = try examplePackage()
        defer { try? FileManager.default.removeItem(at: package) }
        let spec = package.appendingPathComponent("services.yaml")
        try "mine\n".write(to: spec, atomically: true, encoding: .utf8)
        let refused = try await orchestrate(["init", "--package-path", package.path])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("init never overwrites a file"))
        #expect(try String(contentsOf: spec, encoding: .utf8) == "mine\n")

        try FileManager.default.removeItem(at: spec)
        let elsewhere = package.appendingPathComponent("elsewhere.yaml")
        try FileManager.default.createSymbolicLink(atPath: spec.path, withDestinationPath: elsewhere.path)
        let linked = try await orchestrate(["init", "--package-path", package.path])
        #expect(linked.status == 1)
        #expect(!FileManager.default.fileExists(atPath: elsewhere.path))
    }

    @Test func initRefusesADirectoryThatIsNotAPackage() async throws {
        let directory = try ExternalTool.temporaryDirectory("init-empty")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try await orchestrate(["init", "--package-path", directory.path])
        #expect(run.status == 1)
        #expect(run.stderr.contains("init needs a Package.swift"), "\(run.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test(arguments: [
        ("UserService", "user-service"), ("APIGateway", "api-gateway"), ("catalog", "catalog"),
        ("my_tool", "my-tool"), ("HTTP2Server", "http2-server"), ("2fast", "fast"), ("Ünïcode", "nco-de"),
    ])
    func productNamesBecomeServiceNames(_ product: String, _ service: String) {
        let name = Init.serviceName(product)
        #expect(name.range(of: #"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"#, options: .regularExpression) != nil, "\(name)")
        if product != "Ünïcode" { #expect(name == service) }
    }

    @Test func schemaPrintsTheSchemaFileExactly() async throws {
        let run = try await orchestrate(["schema"])
        #expect(run.status == 0)
        let file = try String(
            contentsOf: ExternalTool.packageRoot.appendingPathComponent("schema/services.schema.json"), encoding: .utf8)
        #expect(run.stdout == file)
    }

    /// The printed schema is what an editor in another repository uses: check-jsonschema with it accepts the
    /// example's spec and rejects a broken one.
    @Test(.requires("check-jsonschema", ExternalTool.find("check-jsonschema") != nil))
    func thePrintedSchemaChecksASpecInAnotherRepository() async throws {
        let checker = try #require(ExternalTool.find("check-jsonschema"), "scripts/test installs check-jsonschema")
        let directory = try ExternalTool.temporaryDirectory("schema")
        defer { try? FileManager.default.removeItem(at: directory) }
        let schema = directory.appendingPathComponent("schema.json")
        try (try await orchestrate(["schema"])).stdout.write(to: schema, atomically: true, encoding: .utf8)
        let good = ExampleProject.directory.appendingPathComponent("services.yaml")
        #expect(try await ExternalTool.run(checker, ["--schemafile", schema.path, good.path]).0 == 0)
        let bad = directory.appendingPathComponent("services.yaml")
        try "version: 1\nname: x\nservices:\n  a: { product: A, command: [b] }\n".write(
            to: bad, atomically: true, encoding: .utf8)
        #expect(try await ExternalTool.run(checker, ["--schemafile", schema.path, bad.path]).0 != 0)
    }
}
