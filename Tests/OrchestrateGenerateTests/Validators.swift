import Foundation
import OrchestrateTestSupport
import Testing

/// The real validators the generated files must pass, run over many generated trees at once:
/// check-jsonschema (compose-spec, HTTPRoute), docker-compose 1.29.2's loader, kubernetes-validate --strict
/// for Kubernetes 1.30, kubectl kustomize, nginx -t, and hadolint for the Dockerfile.
struct Validators {
    let checkJSONSchema: URL
    let composePython: URL
    let kubernetesValidate: URL
    let kubectl: URL
    let nginx: URL
    let hadolint: URL
    /// The Python of `.build-venv`, which has ruamel.yaml.
    let python: URL

    /// Gateway API's HTTPRoute CRD schema (v1, standard channel, Apache-2.0), kept beside the tests so they need
    /// nothing outside the repository.
    static let httpRouteSchema = GeneratedTree.supportDirectory.appendingPathComponent("httproute-v1.schema.json")

    /// Whether every validator is installed: the condition of `.requires("the validators", …)`.
    static var areInstalled: Bool { missing().isEmpty }

    /// The validators; a test that needs them carries `.requires("the validators", Validators.areInstalled)`.
    ///
    /// - Throws: When any is missing, naming each.
    static func require() throws -> Validators {
        let missing = missing()
        try #require(
            missing.isEmpty, "missing: \(missing.joined(separator: "; ")); scripts/test installs the validators")
        return Validators(
            checkJSONSchema: ExternalTool.find("check-jsonschema")!,
            composePython: ExternalTool.find("python", venv: ".build-compose-venv")!,
            kubernetesValidate: ExternalTool.find("kubernetes-validate")!,
            kubectl: ExternalTool.find("kubectl")!,
            nginx: ExternalTool.find("nginx")!,
            hadolint: ExternalTool.find("hadolint")!,
            python: ExternalTool.find("python")!)
    }

    private static func missing() -> [String] {
        let tools = [
            ("check-jsonschema", ExternalTool.find("check-jsonschema")),
            ("python with docker-compose", ExternalTool.find("python", venv: ".build-compose-venv")),
            ("kubernetes-validate", ExternalTool.find("kubernetes-validate")),
            ("kubectl", ExternalTool.find("kubectl")),
            ("nginx", ExternalTool.find("nginx")),
            ("hadolint", ExternalTool.find("hadolint")),
            ("python with ruamel.yaml", ExternalTool.find("python")),
        ]
        return tools.filter { $0.1 == nil }.map(\.0)
    }

    /// Every failure, as "TREE: validator: message"; empty when every tree passes everything.
    func failures(in trees: [URL]) async throws -> [String] {
        var failures: [String] = []
        let composeFiles = trees.map { $0.appendingPathComponent("compose.yaml").path }
        // check-jsonschema with the compose-spec schema, all files in one run.
        let (schemaStatus, schemaOutput, schemaErrors) = try await ExternalTool.runCapturingErrors(
            checkJSONSchema, ["--builtin-schema", "vendor.compose-spec", "-o", "JSON"] + composeFiles)
        if schemaStatus != 0 {
            failures.append("compose-spec schema: \(String(decoding: schemaOutput, as: UTF8.self)) \(schemaErrors)")
        }
        // docker-compose's own loader, as `docker-compose config -q` runs it.
        let script = GeneratedTree.supportDirectory.appendingPathComponent("compose_config.py").path
        let (_, composeOutput, composeErrors) = try await ExternalTool.runCapturingErrors(
            composePython, [script] + composeFiles)
        let composeResults = try JSONSerialization.jsonObject(with: composeOutput) as? [String: Any]
        if composeResults == nil { failures.append("docker-compose: no result: \(composeErrors)") }
        for (file, result) in composeResults ?? [:] where !(result is NSNull) {
            failures.append("\(file): docker-compose: \(result)")
        }
        // kubernetes-validate --strict on every manifest but the kustomization and the HTTPRoutes (a CRD).
        var manifests: [String] = []
        for tree in trees {
            let k8s = tree.appendingPathComponent("k8s")
            for name in try FileManager.default.contentsOfDirectory(atPath: k8s.path).sorted()
            where name != "kustomization.yaml" && name != "httproutes.yaml" {
                manifests.append(k8s.appendingPathComponent(name).path)
            }
        }
        let (kvStatus, kvOutput, kvErrors) = try await ExternalTool.runCapturingErrors(
            kubernetesValidate, ["--strict", "-k", "1.30.0", "--quiet"] + manifests)
        if kvStatus != 0 {
            failures.append("kubernetes-validate: \(String(decoding: kvOutput, as: UTF8.self)) \(kvErrors)")
        }
        // HTTPRoutes against the Gateway API schema, one document a file.
        let routeFiles = trees.map { $0.appendingPathComponent("k8s/httproutes.yaml") }
            .filter { FileManager.default.fileExists(atPath: $0.path) }
        if !routeFiles.isEmpty {
            let split = try ExternalTool.temporaryDirectory("httproutes")
            defer { try? FileManager.default.removeItem(at: split) }
            let parser = GeneratedTree.supportDirectory.appendingPathComponent("parse_yaml.py").path
            let (splitStatus, _, splitErrors) = try await ExternalTool.runCapturingErrors(
                python, [parser, "--split", split.path, "ruamel"] + routeFiles.map(\.path))
            if splitStatus != 0 { failures.append("httproutes: cannot split: \(splitErrors)") }
            let documents = try FileManager.default.contentsOfDirectory(atPath: split.path).map {
                split.appendingPathComponent($0).path
            }
            let (routeStatus, routeOutput, _) = try await ExternalTool.runCapturingErrors(
                checkJSONSchema, ["--schemafile", Self.httpRouteSchema.path] + documents.sorted())
            if routeStatus != 0 { failures.append("HTTPRoute schema: \(String(decoding: routeOutput, as: UTF8.self))") }
        }
        let dockerfiles = trees.map { $0.appendingPathComponent("Dockerfile").path }
        let (lintStatus, lintOutput, lintErrors) = try await ExternalTool.runCapturingErrors(
            hadolint, ["--no-color", "--failure-threshold", "info"] + dockerfiles)
        if lintStatus != 0 { failures.append("hadolint: \(String(decoding: lintOutput, as: UTF8.self)) \(lintErrors)") }
        for tree in trees {
            let (kustomizeStatus, _, kustomizeErrors) = try await ExternalTool.runCapturingErrors(
                kubectl, ["kustomize", tree.appendingPathComponent("k8s").path])
            if kustomizeStatus != 0 {
                failures.append("\(tree.lastPathComponent): kubectl kustomize: \(kustomizeErrors)")
            }
            let nginxConf = tree.appendingPathComponent("gateway/nginx.conf")
            if FileManager.default.fileExists(atPath: nginxConf.path) {
                let (nginxStatus, _, nginxErrors) = try await ExternalTool.runCapturingErrors(
                    nginx, ["-t", "-q", "-c", nginxConf.path])
                if nginxStatus != 0 { failures.append("\(tree.lastPathComponent): nginx -t: \(nginxErrors)") }
            }
        }
        return failures
    }
}

@Suite(.timeLimit(.minutes(10)))
struct ShopValidationTests {
    @Test(.requires("the validators", Validators.areInstalled))
    func theShopsFilesPassEveryValidator() async throws {
        let validators = try Validators.require()
        let directory = try ExternalTool.temporaryDirectory("shop")
        defer { try? FileManager.default.removeItem(at: directory) }
        try GeneratedTree.shop().write(to: directory)
        #expect(try await validators.failures(in: [directory]) == [])
    }
}

@Suite(.timeLimit(.minutes(10)))
struct ValidatorControlTests {
    /// The harness must fail trees that are wrong, or its passes mean nothing: one defect per validator.
    @Test(.requires("the validators", Validators.areInstalled))
    func eachValidatorCatchesABrokenFile() async throws {
        let validators = try Validators.require()
        let directory = try ExternalTool.temporaryDirectory("broken")
        defer { try? FileManager.default.removeItem(at: directory) }
        try GeneratedTree.shop().write(to: directory)
        func corrupt(_ path: String, _ find: String, _ replace: String) throws {
            let url = directory.appendingPathComponent(path)
            let text = try String(contentsOf: url, encoding: .utf8)
            #expect(text.contains(find), "\(path) has no \(find)")
            try Data(text.replacingOccurrences(of: find, with: replace).utf8).write(to: url)
        }
        try corrupt("compose.yaml", "    stop_grace_period:", "    stop_grace_periods:")
        try corrupt("k8s/order-service.yaml", "      enableServiceLinks: false", "      enableServiceLink: false")
        try corrupt("k8s/httproutes.yaml", "type: PathPrefix", "type: Prefix")
        try corrupt("k8s/kustomization.yaml", "  - \"redis.yaml\"", "  - \"missing.yaml\"")
        try corrupt("gateway/nginx.conf", "client_max_body_size 1048576;", "client_max_body_size 1048576")
        try corrupt("Dockerfile", "FROM ubuntu:24.04", "FROM ubuntu")
        let failures = try await validators.failures(in: [directory])
        for validator in [
            "compose-spec schema", "docker-compose", "kubernetes-validate", "HTTPRoute schema", "kubectl kustomize",
            "nginx -t", "hadolint",
        ] {
            #expect(failures.contains { $0.contains(validator) }, "\(validator) did not catch its defect")
        }
    }
}
