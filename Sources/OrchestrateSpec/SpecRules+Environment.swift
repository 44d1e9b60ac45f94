/// Rules about environment variables: values that should be secrets, and names orchestrate sets itself.
extension SpecRules {
    static func environment(_ spec: Spec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for service in spec.services {
            let reserved = reservedNames(for: service, in: spec)
            for variable in service.env {
                let name = variable.name.value
                let path = "services.\(service.name.value).env.\(name)"
                if let source = reserved[name] {
                    diagnostics.append(
                        Diagnostic(
                            .error, .reservedEnv, path: path, at: variable.name.location,
                            "\(name) is set by orchestrate from \(source); a value here would contradict it",
                            hint: "remove \(name) and change \(source) instead"))
                }
                guard case .plain(let value) = variable.value, let reason = credentialReason(name: name, value: value)
                else { continue }
                let secret = DNSName.suggestedLabel(for: name) ?? name.lowercased()
                diagnostics.append(
                    Diagnostic(
                        .warning, .inlineSecret, path: path, at: variable.valueLocation,
                        "\(reason); a credential written in the spec ends up in git, images and logs",
                        hint: "reference a secret instead: `\(name): { secret: \(secret) }`"))
            }
        }
        return diagnostics
    }

    /// The variables orchestrate sets for a service, with the field each comes from.
    static func reservedNames(for service: Service, in spec: Spec) -> [String: String] {
        var names = ["HOST": "the runtime", "ORCHESTRATE_DNS": "the runtime"]
        if service.port != nil { names["PORT"] = "port" }
        if service.database != nil { names["DATABASE_URL"] = "database" }
        if spec.broker != nil { names["BROKER_URL"] = "broker" }
        for dependency in service.dependsOn { names[urlVariable(for: dependency.value)] = "dependsOn" }
        return names
    }

    /// `user-service` → `USER_SERVICE_URL`.
    static func urlVariable(for service: String) -> String {
        service.uppercased().replacingAll("-", with: "_") + "_URL"
    }

    private static let credentialSuffixes = [
        "SECRET", "PASSWORD", "PASSWD", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY", "SECRET_KEY",
        "CREDENTIAL", "CREDENTIALS",
    ]

    /// Why this plain value looks like a credential, or nil when it does not.
    static func credentialReason(name: String, value: String) -> String? {
        guard !value.isEmpty else { return nil }
        let upper = name.uppercased()
        if credentialSuffixes.contains(where: { upper == $0 || upper.hasSuffix("_" + $0) }) {
            return "\(name) looks like a credential and is written here as plain text"
        }
        if value.contains("-----BEGIN") { return "the value of \(name) holds a PEM key" }
        if let scheme = value.firstRange(of: "://") {
            let authority = value[scheme.upperBound...].prefix { $0 != "/" }
            if let at = authority.lastIndex(of: "@"), authority[..<at].contains(":") {
                return "the URL in \(name) carries a password"
            }
        }
        if value.hasPrefix("AKIA"), value.count == 20 { return "the value of \(name) looks like an AWS access key" }
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        if value.hasPrefix("eyJ"), parts.count == 3 { return "the value of \(name) looks like a JWT" }
        return nil
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
