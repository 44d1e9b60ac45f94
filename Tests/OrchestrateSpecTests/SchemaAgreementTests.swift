import Foundation
import OrchestrateSpec
import OrchestrateTestSupport
import Testing

/// The JSON Schema (for editors) and the validator must judge the structure of a spec alike: a spec passes the
/// schema exactly when the validator finds no structural problem. References between fields are the
/// validator's alone, and documents that are not well-formed YAML are left out: YAML tools read those differently.
@Suite(.timeLimit(.minutes(5)))
struct SchemaAgreementTests {
    static let schema = ExternalTool.packageRoot.appendingPathComponent("schema/services.schema.json")
    static let checker = ExternalTool.find("check-jsonschema")

    /// Single changes to every-field.yaml: some keep it valid, each other one breaks one structural rule.
    static let mutations: [(name: String, find: String, replace: String)] = [
        ("valid-cpu-as-text", "cpu: 0.25", "cpu: 250m"),
        ("valid-int-quantity", "cpuLimit: 1", "cpuLimit: 2"),
        ("valid-extension", "services:", "x-anchor: { a: 1 }\nservices:"),
        (
            "valid-no-images",
            "images: { registry: registry.example.com/shop, tag: \"2.3.1\", pullPolicy: IfNotPresent }\n", ""
        ),
        ("valid-env-bool", "ENABLED: true", "ENABLED: false"),
        ("port-as-text", "port: 3001", "port: \"3001\""),
        ("port-zero", "port: 3001", "port: 0"),
        ("unknown-service-field", "restart: never", "restrat: never"),
        ("unknown-top-field", "services:", "servics: {}\nservices:"),
        ("bad-service-name", "  mailer:", "  Mailer:"),
        ("bad-event", "[user.created, user.deleted]", "[User.Created]"),
        ("bad-env-name", "COUNT: 3", "CO-UNT: 3"),
        ("null-env", "COUNT: 3", "COUNT: ~"),
        ("bad-duration", "timeout: 3s", "timeout: 3"),
        ("zero-timeout", "timeout: 1500ms", "timeout: 0ms"),
        ("bad-quantity", "memory: 128Mi", "memory: 128MB"),
        ("negative-replicas", "replicas: 0", "replicas: -2"),
        ("product-and-image", "    image: registry.example.com/users:1.2.3", "    image: x\n    product: Users"),
        ("no-product", "    product: Mailer\n", ""),
        ("liveness-success-2", "failureThreshold: 5, initialDelay: 0s", "failureThreshold: 5, successThreshold: 2"),
        ("probe-two-checks", "{ http: /ready, successThreshold: 2 }", "{ http: /ready, tcp: 3001 }"),
        ("probe-no-check", "{ http: /ready, successThreshold: 2 }", "{ successThreshold: 2 }"),
        ("probe-path", "readiness: { http: /ready", "readiness: { http: ready"),
        ("route-prefix", "prefix: /api/users\n", "prefix: api/users\n"),
        ("route-dot-segment", "rewrite: /public", "rewrite: /a/../b"),
        ("method", "[GET, POST, DELETE]", "[GET, post]"),
        ("auth", "auth: none", "auth: basic"),
        ("rps-zero", "rateLimit: { rps: 10 }", "rateLimit: { rps: 0 }"),
        ("version-2", "version: 1", "version: 2"),
        ("image-tag", "tag: \"2.3.1\"", "tag: \"-x\""),
        ("pull-policy", "pullPolicy: IfNotPresent", "pullPolicy: sometimes"),
        ("engine", "engine: postgres", "engine: mysql"),
        ("secret-name", "secret: users-api-token", "secret: Users_Token"),
        ("autoscaling-min", "minReplicas: 2", "minReplicas: 0"),
        ("args-not-list", "args: [serve, --verbose]", "args: serve"),
        ("public-yes", "public: true", "public: yes"),
    ]

    @Test(.enabled(if: checker != nil || ExternalTool.isRequired))
    func schemaAndValidatorAgreeOnEveryFixtureAndMutant() async throws {
        let checker = try #require(
            Self.checker, "check-jsonschema is missing; scripts/test installs it into .build-venv")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("schema-agreement-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        var files: [String: [UInt8]] = [:]
        for fixture in FixtureFile.all { files[fixture.name] = fixture.bytes }
        files["shop-services.yaml"] = try Array(
            Data(contentsOf: ExternalTool.packageRoot.appendingPathComponent("services.yaml")))
        let base = String(decoding: FixtureFile(name: "every-field.yaml").bytes, as: UTF8.self)
        for mutation in Self.mutations {
            #expect(base.contains(mutation.find), "mutation \(mutation.name) finds nothing to change")
            files["mutant-\(mutation.name).yaml"] = Array(
                base.replacingOccurrences(of: mutation.find, with: mutation.replace).utf8)
        }

        var validatorFails: [String: Bool] = [:]
        for (name, bytes) in files {
            let diagnostics = SpecLoader.load(bytes).diagnostics
            guard !diagnostics.contains(where: \.code.isDocumentLevel) else { continue }
            validatorFails[name] = diagnostics.contains { $0.severity == .error && $0.code.isStructural }
            try Data(bytes).write(to: directory.appendingPathComponent(name))
        }
        let names = validatorFails.keys.sorted()
        let (_, output) = try await ExternalTool.run(
            checker, ["--schemafile", Self.schema.path, "-o", "JSON"] + names, in: directory)
        let report = try JSONDecoder().decode(CheckJSONSchemaReport.self, from: output)
        #expect(report.parseErrors?.isEmpty ?? true, "check-jsonschema could not read: \(report.parseErrors ?? [])")
        let schemaFails = Set(report.errors.map(\.filename))
        for name in names {
            #expect(
                schemaFails.contains(name) == validatorFails[name],
                "\(name): schema \(schemaFails.contains(name) ? "rejects" : "accepts"), validator \(validatorFails[name] == true ? "rejects" : "accepts")"
            )
        }
        #expect(validatorFails.values.filter { $0 }.count >= 40)
        #expect(validatorFails.values.filter { !$0 }.count >= 25)
    }

    @Test(.enabled(if: checker != nil || ExternalTool.isRequired))
    func schemaIsAValidDraft7Schema() async throws {
        let checker = try #require(
            Self.checker, "check-jsonschema is missing; scripts/test installs it into .build-venv")
        let (status, _) = try await ExternalTool.run(checker, ["--check-metaschema", Self.schema.path])
        #expect(status == 0)
    }
}

/// The parts of `check-jsonschema -o JSON` the test reads.
private struct CheckJSONSchemaReport: Decodable {
    struct Failure: Decodable {
        var filename: String
    }

    var errors: [Failure]
    var parseErrors: [Failure]?

    enum CodingKeys: String, CodingKey {
        case errors
        case parseErrors = "parse_errors"
    }
}
