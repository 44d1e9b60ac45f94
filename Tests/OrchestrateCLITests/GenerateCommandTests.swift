import Foundation
import OrchestrateTestSupport
import Testing

/// `orchestrate generate` as a user runs it.
@Suite(.timeLimit(.minutes(5)))
struct GenerateCommandTests {
    static let golden = OrchestrateBinary.packageRoot

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("generate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func writesEveryFileOnceThenReportsThemUnchanged() async throws {
        let output = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        let first = try await orchestrate(["generate", "-o", output.path])
        #expect(first.status == 0)
        let lines = first.stdout.split(separator: "\n")
        #expect(lines.count == 21)
        #expect(lines.allSatisfy { $0.hasPrefix("wrote ") })
        let compose = try String(contentsOf: output.appendingPathComponent("compose.yaml"), encoding: .utf8)
        #expect(
            compose == (try String(contentsOf: Self.golden.appendingPathComponent("compose.yaml"), encoding: .utf8)))
        let second = try await orchestrate(["generate", "all", "-o", output.path])
        #expect(second.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("unchanged ") })
    }

    @Test func checkPrintsADiffAndExits1OnDriftWritingNothing() async throws {
        let output = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        #expect(try await orchestrate(["generate", "compose", "-o", output.path]).status == 0)
        let clean = try await orchestrate(["generate", "compose", "--check", "-o", output.path])
        #expect(clean.status == 0)
        #expect(clean.stdout == "4 files match services.yaml\n")
        let file = output.appendingPathComponent("compose.yaml")
        let edited = try String(contentsOf: file, encoding: .utf8).replacingOccurrences(
            of: "\"3001\"", with: "\"3999\"")
        try Data(edited.utf8).write(to: file)
        try FileManager.default.removeItem(at: output.appendingPathComponent("Dockerfile"))
        let drift = try await orchestrate(["generate", "compose", "--check", "-o", output.path])
        #expect(drift.status == 1)
        #expect(drift.stdout.contains("--- a/compose.yaml\n+++ b/compose.yaml\n@@ "))
        #expect(drift.stdout.contains("\n-      \"PORT\": \"3999\"\n+      \"PORT\": \"3001\"\n"))
        #expect(drift.stdout.contains("--- /dev/null\n+++ b/Dockerfile\n"))
        #expect(drift.stderr.contains("2 of 4 files differ"))
        #expect(try String(contentsOf: file, encoding: .utf8) == edited)
        #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent("Dockerfile").path))
    }

    @Test func anInvalidSpecGetsDiagnosticsAndNothingIsWritten() async throws {
        let output = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        let spec = output.appendingPathComponent("services.yaml")
        try Data("version: 1\nname: x\nservices:\n  a: { product: A, dependsOn: [b] }\n".utf8).write(to: spec)
        let run = try await orchestrate(["generate", "-f", spec.path, "-o", output.path])
        #expect(run.status == 1)
        #expect(
            run.stderr.contains("4:32: error[unknown-dependency]: services.a.dependsOn[0]: no service named \"b\"\n"))
        #expect(run.stderr.contains("nothing was generated"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: output.path) == ["services.yaml"])
    }

    @Test func aTemplateDirectoryReplacesTemplatesByName() async throws {
        let output = try temporaryDirectory()
        let templates = try temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: output)
            try? FileManager.default.removeItem(at: templates)
        }
        try Data("{{% CONTENT_TYPE: TEXT}}\nFROM {{{runtimeImage}}}\n".utf8).write(
            to: templates.appendingPathComponent("Dockerfile.mustache"))
        #expect(
            try await orchestrate(["generate", "compose", "--templates", templates.path, "-o", output.path]).status == 0
        )
        #expect(
            try String(contentsOf: output.appendingPathComponent("Dockerfile"), encoding: .utf8)
                == "FROM ubuntu:24.04\n")
        try Data("".utf8).write(to: templates.appendingPathComponent("compose.yml.mustache"))
        let typo = try await orchestrate(["generate", "compose", "--templates", templates.path, "-o", output.path])
        #expect(typo.status == 2)
        #expect(typo.stderr.contains("template compose.yml: there is no template of that name"))
    }

    @Test func theCommittedFilesMatchTheShopSpec() async throws {
        let run = try await orchestrate(["generate", "all", "--check"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout == "21 files match services.yaml\n")
    }

    /// A hand-written compose.yaml (or any file without the header) in the way stops generate with exit 2, naming
    /// it, before anything is written; --force replaces it, and from then on it is generate's own.
    @Test func aFileItDidNotWriteIsNeverReplacedWithoutForce() async throws {
        let output = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: output) }
        let spec = ExampleProject.directory.appendingPathComponent("services.yaml").path
        let compose = output.appendingPathComponent("compose.yaml")
        let handWritten = "services:\n  mine: { image: nginx }\n"
        try handWritten.write(to: compose, atomically: true, encoding: .utf8)
        let refused = try await orchestrate(["generate", "-f", spec, "-o", output.path])
        #expect(refused.status == 2)
        #expect(
            refused.stderr.contains("\(output.path)/compose.yaml exists and was not written by orchestrate"),
            "\(refused.stderr)")
        #expect(refused.stderr.contains("--force"))
        #expect(try String(contentsOf: compose, encoding: .utf8) == handWritten)
        #expect(try FileManager.default.contentsOfDirectory(atPath: output.path) == ["compose.yaml"])

        let forced = try await orchestrate(["generate", "-f", spec, "-o", output.path, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try String(contentsOf: compose, encoding: .utf8).contains("Generated by orchestrate"))

        // A hand-written file that cannot carry a comment is refused the same way; once generate wrote it, the
        // manifest lists it and it is generate's to replace.
        let gatewaySpec = OrchestrateBinary.packageRoot.appendingPathComponent("services.yaml").path
        let json = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: json) }
        let routes = json.appendingPathComponent("gateway/routes.json")
        try FileManager.default.createDirectory(
            at: routes.deletingLastPathComponent(), withIntermediateDirectories: true)
        try "{\"mine\": true}\n".write(to: routes, atomically: true, encoding: .utf8)
        let refusedJSON = try await orchestrate(["generate", "gateway", "-f", gatewaySpec, "-o", json.path])
        #expect(refusedJSON.status == 2)
        #expect(refusedJSON.stderr.contains("gateway/routes.json exists and was not written by orchestrate"))
        #expect(
            try await orchestrate(["generate", "gateway", "-f", gatewaySpec, "-o", json.path, "--force"]).status == 0)
        #expect(
            try String(contentsOf: json.appendingPathComponent(".orchestrate-generated"), encoding: .utf8).contains(
                "\ngateway/routes.json\n"))
        try "{}\n".write(to: routes, atomically: true, encoding: .utf8)
        #expect(try await orchestrate(["generate", "gateway", "-f", gatewaySpec, "-o", json.path]).status == 0)
    }

    @Test func aMissingSpecIsAnIOError() async throws {
        let run = try await orchestrate(["generate", "-f", "no-such.yaml", "-o", "/tmp"])
        #expect(run.status == 2)
        #expect(run.stderr.contains("cannot read no-such.yaml: no such file"))
    }
}
