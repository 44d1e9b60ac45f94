import OrchestrateContract

/// Rules about environment variables: values that should be secrets, and names orchestrate sets itself.
extension SpecRules {
    static func environment(_ spec: Spec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for service in spec.services where !service.env.isEmpty {
            // Derived only for a service that sets a name orchestrate could set (few do).
            let mayClash = service.env.contains { Topology.mayBeSetByOrchestrate($0.name.value) }
            let reserved = mayClash ? reservedVariables(for: service, in: spec) : [:]
            for variable in service.env {
                let name = variable.name.value
                var path: String { "services.\(service.name.value).env.\(name)" }  // only for a diagnostic
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

    /// The variables orchestrate sets for this service, each with the field it comes from: what the topology
    /// derives, the `_FILE` form of those that may arrive as files, the runtime's own, and the `_FILE` form of the
    /// service's secrets. A spec that set one of them would contradict orchestrate.
    static func reservedVariables(for service: Service, in spec: Spec) -> [String: String] {
        var reserved: [String: String] = [:]
        for name in Topology.runtimeVariables { reserved[name] = "the runtime" }
        for entry in Topology.environment(of: service, in: spec) {
            if entry.origin == "env" {
                if case .secret = entry.source {
                    reserved[ServiceVariable.file(entry.name)] =
                        "the secret \(entry.name) (compose delivers it as a file)"
                }
                continue
            }
            if reserved[entry.name] == nil { reserved[entry.name] = entry.origin }
            if entry.mayArriveAsFile { reserved[ServiceVariable.file(entry.name)] = entry.origin }
        }
        return reserved
    }

    /// Name endings that mark a credential (`KEY` alone is too common: `CACHE_KEY`, `SORT_KEY`).
    private static let credentialSuffixes = [
        "SECRET", "PASSWORD", "PASSWD", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY", "SECRET_KEY",
        "CREDENTIAL", "CREDENTIALS",
    ].map { Array($0.utf8) }

    /// Whether `name`, ignoring case, is `suffix` or ends with `_` and `suffix`.
    private static func hasCredentialSuffix(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            credentialSuffixes.contains { suffix in
                guard bytes.count >= suffix.count else { return false }
                let start = bytes.count - suffix.count
                guard start == 0 || bytes[start - 1] == UInt8(ascii: "_") else { return false }
                return zip(bytes[start...], suffix).allSatisfy { ($0 & 0xDF) == $1 || $0 == $1 }
            }
        }
    }

    /// The offset of the first occurrence of `needle` in `haystack`.
    private static func find(_ needle: StaticString, in haystack: UnsafeBufferPointer<UInt8>) -> Int? {
        needle.withUTF8Buffer { needle in
            guard haystack.count >= needle.count, let first = needle.first else { return nil }
            for start in 0...(haystack.count - needle.count) where haystack[start] == first {
                if UnsafeBufferPointer(rebasing: haystack[start..<(start + needle.count)]).elementsEqual(needle) {
                    return start
                }
            }
            return nil
        }
    }

    /// Why this plain value looks like a credential, or nil when it does not.
    static func credentialReason(name: String, value: String) -> String? {
        guard !value.isEmpty else { return nil }
        if hasCredentialSuffix(name) {
            return "\(name) looks like a credential and is written here as plain text"
        }
        // The value checks below look for `-----BEGIN`, `://` with a password, `AKIA…` and `eyJ….….…`; values
        // without `-` or `:` and with neither prefix cannot match, and most values are like that.
        // Byte searches: String.contains(_:) and firstRange(of:) from _StringProcessing cost thousands of
        // instructions per call, and this runs for every plain value of every service.
        var value = value
        let reason: String? = value.withUTF8 { bytes in
            let isAWSKey = bytes.starts(with: "AKIA".utf8)
            let isJWT = bytes.starts(with: "eyJ".utf8)
            guard isAWSKey || isJWT || bytes.contains(UInt8(ascii: "-")) || bytes.contains(UInt8(ascii: ":")) else {
                return nil
            }
            if find("-----BEGIN", in: bytes) != nil { return "the value of \(name) holds a PEM key" }
            if let scheme = find("://", in: bytes) {
                let authority = bytes[(scheme + 3)...].prefix { $0 != UInt8(ascii: "/") }
                if let at = authority.lastIndex(of: UInt8(ascii: "@")), authority[..<at].contains(UInt8(ascii: ":")) {
                    return "the URL in \(name) carries a password"
                }
            }
            if isJWT, bytes.count(where: { $0 == UInt8(ascii: ".") }) == 2 {
                return "the value of \(name) looks like a JWT"
            }
            return nil
        }
        if let reason { return reason }
        if value.hasPrefix("AKIA"), value.count == 20 { return "the value of \(name) looks like an AWS access key" }
        return nil
    }
}
