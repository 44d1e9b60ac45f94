import Foundation
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
        #expect(lines.count == 19)
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
        #expect(clean.stdout == "3 files match services.yaml\n")
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
        #expect(drift.stderr.contains("2 of 3 files differ"))
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
        #expect(run.stdout == "19 files match services.yaml\n")
    }

    @Test func aMissingSpecIsAnIOError() async throws {
        let run = try await orchestrate(["generate", "-f", "no-such.yaml", "-o", "/tmp"])
        #expect(run.status == 2)
        #expect(run.stderr.contains("cannot read no-such.yaml: no such file"))
    }
}
