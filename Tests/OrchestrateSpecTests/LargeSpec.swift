import Foundation

@testable import OrchestrateSpec

/// A spec shaped like the benchmark's (`scripts/bench-support/generate-spec.py`), ending in one kind of problem.
enum LargeSpec {
    enum Ending: String, CaseIterable, Sendable {
        case nothing
        /// Mistakes inside services: the services carry diagnostics.
        case serviceErrors
        /// `services` takes entries from a merge key.
        case mergedServices
        /// `services` is set a second time; the second is refused as a duplicate.
        case duplicateServicesKey
        case syntaxError
        case secondDocument
        case aliasBomb
        case tooDeep
        case controlCharacter
        case unknownTag

        var expectedCodes: [DiagnosticCode] {
            switch self {
            case .nothing, .mergedServices: []
            case .serviceErrors: [.portOutOfRange, .missingPort, .unknownField, .duplicateKey]
            case .duplicateServicesKey: [.duplicateKey]
            case .syntaxError, .controlCharacter: [.yamlSyntax]
            case .secondDocument: [.multipleDocuments]
            case .aliasBomb: [.aliasExpansionLimit]
            case .tooDeep: [.nestingTooDeep]
            case .unknownTag: [.unknownTag]
            }
        }
    }

    static func text(services count: Int, ending: Ending) -> String {
        var lines = [
            "version: 1", "name: large", "broker: { engine: redis }",
            "gateway: { service: svc-0000, jwt: { secret: jwt-secret } }",
            "x-env: &env", "  INTERNAL_TOKEN: { secret: internal-token }", "  LOG_LEVEL: info",
        ]
        if ending == .mergedServices {
            lines += ["x-more: &more", "  extra-service: { product: Extra, port: 2999 }"]
        }
        lines.append("services:")
        if ending == .mergedServices { lines.append("  <<: *more") }
        for index in 0..<count {
            let name = String(format: "svc-%04d", index)
            let broken = ending == .serviceErrors && index == count / 2
            lines += [
                "  \(name):",
                "    product: Service\(index)",
                "    port: \(broken ? 70000 : 3000 + index)",
                "    replicas: \(1 + index % 3)",
                "    database: { engine: postgres, name: db-\(index) }",
            ]
            if index > 0 { lines.append("    dependsOn: [\(String(format: "svc-%04d", index - 1))]") }
            lines += [
                "    env:", "      <<: *env", "      FEATURE_FLAG: \"flag-\(index)\"",
                "    probes: { liveness: /health, readiness: { http: /ready, interval: 5s } }",
                "    routes:",
                "      - { prefix: /api/s\(index), rewrite: /items, auth: jwt, rateLimit: { rps: 50, burst: 100 } }",
                "    resources: { cpu: 100m, memory: 128Mi, cpuLimit: 500m, memoryLimit: 256Mi }",
            ]
            if index == 0 { lines.append("    public: true") }
            if broken { lines += ["    replicass: 2", "    product: Again"] }
        }
        switch ending {
        case .nothing, .serviceErrors, .mergedServices: break
        case .duplicateServicesKey: lines += ["services:", "  late: { product: Late, port: 2998 }"]
        case .syntaxError: lines += ["x-broken: [unclosed"]
        case .secondDocument: lines += ["---", "version: 1"]
        case .aliasBomb:
            lines.append("x-l0: &l0 [x, x, x, x, x, x, x, x, x, x]")
            for level in 1...7 {
                lines.append(
                    "x-l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ")
                        + "]")
            }
        case .tooDeep: lines += ["x-deep: " + String(repeating: "[", count: 200) + String(repeating: "]", count: 200)]
        case .controlCharacter: lines += ["x-control: \"a\u{1}b\""]
        case .unknownTag: lines += ["x-tagged: !custom value"]
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
