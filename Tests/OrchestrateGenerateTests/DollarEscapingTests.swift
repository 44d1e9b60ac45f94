import Foundation
import OrchestrateSpec
import OrchestrateTestSupport
import Testing

@testable import OrchestrateGenerate

/// `$` in arguments and probe commands reaches the program as written: compose interpolates `$VAR` and `${VAR}`
/// in every value, and the kubelet expands `$(VAR)` in args, so a secret variable could land in argv.
@Suite(.timeLimit(.minutes(5)))
struct DollarEscapingTests {
    static let argument = "$HOME $(DATABASE_PASSWORD) ${X:-y} $$ cost$5"
    static let probe = "test \"$HOME\" != \"$(id -u)\""
    static let spec = """
        version: 1
        name: dollars
        services:
          echo:
            image: registry.example.com/echo:1
            port: 8080
            database: { name: echo }
            args: ["--say", "\(argument.replacingOccurrences(of: "\"", with: "\\\""))"]
            probes:
              readiness: { command: ["sh", "-c", "\(probe.replacingOccurrences(of: "\"", with: "\\\""))"] }
        """

    /// docker-compose 1.29.2's own loader reads the generated file back: `command` and the healthcheck are the spec's
    /// text exactly, after its interpolation.
    @Test(.requires("docker-compose's virtualenv", ExternalTool.find("python", venv: ".build-compose-venv") != nil))
    func composeReadsTheTextAsWritten() async throws {
        let python = try #require(ExternalTool.find("python", venv: ".build-compose-venv"))
        let parsed = try #require(SpecLoader.load(Array(Self.spec.utf8)).spec, "the spec is valid")
        let directory = try ExternalTool.temporaryDirectory("dollars")
        defer { try? FileManager.default.removeItem(at: directory) }
        for file in Generator(templates: try TemplateSet()).generate(parsed, target: .compose) {
            let url = directory.appendingPathComponent(file.path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(file.contents.utf8).write(to: url)
        }
        let script = """
            import json, os, sys
            from compose.config import config
            from compose.config.environment import Environment
            base = sys.argv[1]
            loaded = config.load(config.find(base, [os.path.join(base, "compose.yaml")], Environment.from_env_file(base)), True)
            print(json.dumps({s["name"]: {"command": s.get("command"), "test": s.get("healthcheck", {}).get("test")} for s in loaded.services}))
            """
        let (status, output, errors) = try await ExternalTool.runCapturingErrors(
            python, ["-c", script, directory.path], environment: ["HOME": "/nowhere", "X": "from-the-shell"])
        #expect(status == 0, "\(errors)")
        let services = try JSONSerialization.jsonObject(with: output) as? [String: [String: Any]]
        let echo = try #require(services?["echo"])
        #expect(echo["command"] as? [String] == ["--say", Self.argument])
        #expect((echo["test"] as? [String])?.last == Self.probe, "\(echo)")
    }

    /// Kubernetes: every `$` in args doubled, which the kubelet reads back as one (`$$` is its escape), so
    /// `$(DATABASE_PASSWORD)` stays text rather than becoming the secret.
    @Test func kubernetesArgsAreNotExpandedByTheKubelet() throws {
        let parsed = try #require(SpecLoader.load(Array(Self.spec.utf8)).spec)
        let files = Generator(templates: try TemplateSet()).generate(parsed, target: .kubernetes)
        let deployment = try #require(files.first { $0.path == "k8s/echo.yaml" }).contents
        let escaped = Self.argument.replacingOccurrences(of: "$", with: "$$")
        #expect(deployment.contains(OutputEscaping.yaml(escaped)), "\(deployment)")
        #expect(!deployment.contains("\"$(DATABASE_PASSWORD)"))
    }
}
