import Foundation
import OrchestrateSpec
import OrchestrateTestSupport
import Testing

@testable import OrchestrateGenerate

/// Many generated valid specs with hostile values: every output must pass every validator and read back, in
/// YAML 1.1 and 1.2, as exactly the values of the spec.
@Suite(.timeLimit(.minutes(10)))
struct PropertyTests {
    static let seeds: [UInt64] = Array(1...60)

    @Test func hostileSpecsAreValidSpecs() {
        for seed in Self.seeds {
            let text = HostileSpecs.spec(seed: seed)
            let result = SpecLoader.load(Array(text.utf8))
            #expect(
                !result.hasErrors,
                "seed \(seed):\n\(text)\n\(result.diagnostics.map { "\($0.location) \($0.code) \($0.message)" })")
        }
    }

    @Test(.requires("the validators", Validators.areInstalled))
    func everyOutputPassesTheValidatorsAndReadsBackAsTheSpec() async throws {
        let validators = try Validators.require()
        let root = try ExternalTool.temporaryDirectory("property")
        defer { try? FileManager.default.removeItem(at: root) }
        var trees: [URL] = []
        var specs: [URL: Spec] = [:]
        for seed in Self.seeds {
            let text = HostileSpecs.spec(seed: seed)
            let spec = try #require(SpecLoader.load(Array(text.utf8)).spec, "seed \(seed) does not load")
            let directory = root.appendingPathComponent("seed-\(seed)")
            try GeneratedTree(specText: text).write(to: directory)
            try Data(text.utf8).write(to: directory.appendingPathComponent("services.yaml"))
            trees.append(directory)
            specs[directory] = spec
        }
        #expect(trees.count == Self.seeds.count, "every seed's tree is validated")
        let failures = try await validators.failures(in: trees)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        try await expectReadBack(specs, reader: "pyyaml", venv: ".build-compose-venv")
        try await expectReadBack(specs, reader: "ruamel", venv: ".build-venv")
    }

    /// Reads compose.yaml, each service's ConfigMap and the HTTPRoutes back with a real YAML reader, and
    /// compares names, env values and route paths with the spec's.
    private func expectReadBack(_ specs: [URL: Spec], reader: String, venv: String) async throws {
        let python = try #require(ExternalTool.find("python", venv: venv))
        var files: [String] = []
        for (directory, spec) in specs {
            files.append(directory.appendingPathComponent("compose.yaml").path)
            let routes = directory.appendingPathComponent("k8s/httproutes.yaml").path
            if FileManager.default.fileExists(atPath: routes) { files.append(routes) }
            files += spec.services.map { directory.appendingPathComponent("k8s/\($0.name.value).yaml").path }
        }
        let script = GeneratedTree.supportDirectory.appendingPathComponent("parse_yaml.py").path
        let (status, output, errors) = try await ExternalTool.runCapturingErrors(python, [script, reader] + files)
        try #require(status == 0, "\(reader) could not read the files: \(errors)")
        let documents = try #require(try JSONSerialization.jsonObject(with: output) as? [String: [[String: Any]]])
        var routeFilesRead = 0
        for (directory, spec) in specs {
            let expectedPaths = Topology(spec).routes.map(\.prefix).sorted()
            if let documents = documents[directory.appendingPathComponent("k8s/httproutes.yaml").path] {
                routeFilesRead += 1
                let paths = documents.flatMap { document -> [String] in
                    let rules = (document["spec"] as? [String: Any])?["rules"] as? [[String: Any]] ?? []
                    return rules.flatMap { rule in
                        // One match per method, all with the route's path: count the path once per rule.
                        let matches = rule["matches"] as? [[String: Any]] ?? []
                        let values = matches.compactMap { ($0["path"] as? [String: Any])?["value"] as? String }
                        return Array(Set(values))
                    }
                }
                #expect(paths.sorted() == expectedPaths, "\(reader): HTTPRoute paths in \(directory.lastPathComponent)")
            } else {
                #expect(
                    expectedPaths.isEmpty,
                    "\(reader): no HTTPRoutes in \(directory.lastPathComponent), yet it has routes")
            }
            let compose = try #require(documents[directory.appendingPathComponent("compose.yaml").path]?.first)
            let services = try #require(compose["services"] as? [String: Any])
            for service in spec.services {
                let name = service.name.value
                let entry = services[name] as? [String: Any]
                #expect(
                    entry != nil,
                    "\(reader): compose has no service \(name.debugDescription) in \(directory.lastPathComponent)")
                let environment = entry?["environment"] as? [String: Any] ?? [:]
                let manifests = documents[directory.appendingPathComponent("k8s/\(name).yaml").path] ?? []
                let configMap =
                    manifests.first { ($0["kind"] as? String) == "ConfigMap" }?["data"] as? [String: Any] ?? [:]
                for variable in service.env {
                    guard case .plain(let value) = variable.value else { continue }
                    let key = variable.name.value
                    #expect(
                        environment[key] as? String == ComposeGenerator.escapeInterpolation(value),
                        "\(reader): compose \(name).\(key) reads back as \(String(describing: environment[key])), not \(value.debugDescription)"
                    )
                    #expect(
                        configMap[key] as? String == value,
                        "\(reader): ConfigMap \(name).\(key) reads back as \(String(describing: configMap[key])), not \(value.debugDescription)"
                    )
                }
                let deployment = manifests.first { ($0["kind"] as? String) == "Deployment" }
                let podSpec = (deployment?["spec"] as? [String: Any])?["template"] as? [String: Any]
                let containers = (podSpec?["spec"] as? [String: Any])?["containers"] as? [[String: Any]]
                #expect(containers?.first?["name"] as? String == name, "\(reader): container name of \(name)")
                // As the kubelet reads them: `$$` is its escape for `$` (every `$` is doubled, so no `$(VAR)` is left
                // to expand).
                let args = (containers?.first?["args"] as? [String] ?? []).map {
                    $0.replacingOccurrences(of: "$$", with: "$")
                }
                #expect(args == service.args.map(\.value), "\(reader): args of \(name)")
            }
        }
        #expect(routeFilesRead > 0, "\(reader): no spec had HTTPRoutes, so their paths were never read back")
    }
}
