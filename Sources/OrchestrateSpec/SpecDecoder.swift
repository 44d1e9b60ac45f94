/// Maps the YAML node tree to the `Spec` model by hand, so every field keeps its position, and reports every
/// shape problem (unknown field, wrong type, missing field, malformed value) without stopping at the first.
///
/// Only the shape of each field is checked here; what fields mean together is `SpecRules`' job.
struct SpecDecoder {
    /// The children of the document's collections.
    var tree: YAMLTree
    var diagnostics: [Diagnostic] = []

    static func decode(_ root: YAMLNode, in tree: YAMLTree) -> (spec: Spec?, diagnostics: [Diagnostic]) {
        var decoder = SpecDecoder(tree: tree)
        let spec = decoder.spec(root)
        return (spec, decoder.diagnostics)
    }

    static let topLevelFields = ["version", "name", "images", "broker", "gateway", "services"]

    private mutating func spec(_ root: YAMLNode) -> Spec? {
        guard case .mapping(let children, let location) = root else {
            error(
                .wrongType, "", at: root.location, "the spec must be a mapping, not \(kindDescription(root))",
                hint: "start from `version: 1`, `name: …` and `services:`")
            return nil
        }
        let entries = tree.entries(of: children)
        var version: Located<Int>?
        var name: Located<String>?
        var images: ImageSettings?
        var broker: Broker?
        var gateway: GatewaySettings?
        var services: [Service]?
        for entry in entries {
            let key = text(entry.key)
            switch key {
            case "version": version = int(entry.value, "version")
            case "name": name = dnsLabel(entry.value, "name", what: "a project")
            case "images": images = imageSettings(entry.value)
            case "broker": broker = self.broker(entry.value)
            case "gateway": gateway = gatewaySettings(entry.value)
            case "services": services = self.services(entry.value)
            case _ where key.hasPrefix("x-"): continue  // extension fields hold anchors for `<<` and aliases
            default: unknownField(entry.key, "", allowed: Self.topLevelFields + ["x-…"])
            }
        }
        if let version, version.value != 1 {
            error(
                .unsupportedVersion, "version", at: version.location,
                "version \(version.value) is not supported; this orchestrate reads version 1",
                hint: "set `version: 1`")
        }
        let foundVersion = required(version, "version", in: entries, "", at: location, example: "version: 1")
        let foundName = required(name, "name", in: entries, "", at: location, example: "name: shop")
        let foundServices = required(services, "services", in: entries, "", at: location, example: "services: { … }")
        guard let foundVersion, let foundName, let foundServices else { return nil }
        return Spec(
            version: foundVersion, name: foundName,
            images: images ?? ImageSettings(tag: Located(ImageSettings.defaultTag, at: location)),
            broker: broker, gateway: gateway, services: foundServices)
    }

    private mutating func imageSettings(_ node: YAMLNode) -> ImageSettings? {
        guard let (entries, location) = mapping(node, "images") else { return nil }
        var settings = ImageSettings(tag: Located(ImageSettings.defaultTag, at: location))
        for entry in entries {
            let key = text(entry.key)
            let path = "images." + key
            switch key {
            case "registry": settings.registry = string(entry.value, path)
            case "tag":
                guard let tag = string(entry.value, path) else { continue }
                if Self.isImageTag(tag.value) {
                    settings.tag = tag
                } else {
                    error(
                        .invalidValue, path, at: tag.location, "\"\(tag.value)\" is not a valid image tag",
                        hint: "use letters, digits, `_`, `.` and `-`, at most 128, not starting with `.` or `-`")
                }
            case "pullPolicy": settings.pullPolicy = choice(entry.value, path, ImageSettings.PullPolicy.self)
            default: unknownField(entry.key, "images", allowed: ["registry", "tag", "pullPolicy"])
            }
        }
        return settings
    }

    /// A key of a Kubernetes Secret: letters, digits, `-`, `_` and `.`, at most 253.
    static func isSecretKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 253
            && key.utf8.allSatisfy { byte in
                byte.isASCIIDigit || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
            }
    }

    static func isImageTag(_ tag: String) -> Bool {
        guard let first = tag.utf8.first, tag.utf8.count <= 128, first != UInt8(ascii: "."),
            first != UInt8(ascii: "-")
        else { return false }
        return tag.utf8.allSatisfy { byte in
            byte.isASCIIDigit || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }

    private mutating func broker(_ node: YAMLNode) -> Broker? {
        guard let (entries, location) = mapping(node, "broker") else { return nil }
        var engine: Located<Broker.Engine>?
        var external: SecretReference?
        for entry in entries {
            let key = text(entry.key)
            let path = "broker." + key
            switch key {
            case "engine": engine = choice(entry.value, path, Broker.Engine.self)
            case "external": external = secretReference(entry.value, path)
            default: unknownField(entry.key, "broker", allowed: ["engine", "external"])
            }
        }
        guard let engine = required(engine, "engine", in: entries, "broker", at: location, example: "engine: redis")
        else {
            return nil
        }
        return Broker(engine: engine, external: external, location: location)
    }

    private mutating func gatewaySettings(_ node: YAMLNode) -> GatewaySettings? {
        guard let (entries, location) = mapping(node, "gateway") else { return nil }
        var service: Located<String>?
        var jwt: JWTSettings?
        var timeout = Located(GatewaySettings.defaultTimeout, at: location)
        var maxBodySize = Located(GatewaySettings.defaultMaxBodySize, at: location)
        for entry in entries {
            let key = text(entry.key)
            let path = "gateway." + key
            switch key {
            case "service": service = string(entry.value, path)
            case "jwt": jwt = jwtSettings(entry.value, path)
            case "timeout": duration(entry.value, path, positive: true).map { timeout = $0 }
            case "maxBodySize": quantity(entry.value, path).map { maxBodySize = $0 }
            default: unknownField(entry.key, "gateway", allowed: ["service", "jwt", "timeout", "maxBodySize"])
            }
        }
        guard
            let service = required(
                service, "service", in: entries, "gateway", at: location, example: "service: api-gateway")
        else { return nil }
        return GatewaySettings(
            service: service, jwt: jwt, timeout: timeout, maxBodySize: maxBodySize, location: location)
    }

    private mutating func jwtSettings(_ node: YAMLNode, _ path: @autoclosure () -> String) -> JWTSettings? {
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var secret: SecretReference?
        var algorithm = Located(JWTSettings.Algorithm.hs256, at: location)
        var issuer: Located<String>?
        var audience: Located<String>?
        var rolesClaim: Located<String>?
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            switch key {
            case "secret": secret = secretName(entry.value, fieldPath())
            case "algorithm": choice(entry.value, fieldPath(), JWTSettings.Algorithm.self).map { algorithm = $0 }
            case "issuer": issuer = string(entry.value, fieldPath())
            case "audience": audience = string(entry.value, fieldPath())
            case "rolesClaim": rolesClaim = claimPath(entry.value, fieldPath())
            default:
                unknownField(entry.key, path(), allowed: ["secret", "algorithm", "issuer", "audience", "rolesClaim"])
            }
        }
        guard let secret = required(secret, "secret", in: entries, path(), at: location, example: "secret: jwt-secret")
        else {
            return nil
        }
        return JWTSettings(
            secret: secret, algorithm: algorithm, issuer: issuer, audience: audience, rolesClaim: rolesClaim,
            location: location)
    }

    /// A claim name, or a dotted path of names into nested objects: `roles`, `realm_access.roles`.
    private mutating func claimPath(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Located<String>? {
        guard let value = string(node, path()) else { return nil }
        guard !value.value.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) else {
            error(
                .invalidValue, path(), at: value.location,
                "\"\(value.value)\" is not a claim name: a dotted path needs a name between every two dots",
                hint: "write `rolesClaim: roles` or a path such as `rolesClaim: realm_access.roles`")
            return nil
        }
        return value
    }

    private mutating func services(_ node: YAMLNode) -> [Service]? {
        guard let (entries, _) = mapping(node, "services") else { return nil }
        var services: [Service] = []
        services.reserveCapacity(entries.count)
        for entry in entries {
            if let service = service(entry) { services.append(service) }
        }
        return services
    }

    /// One entry of `services`: the name checked, the service read.
    mutating func service(_ entry: YAMLMappingEntry) -> Service? {
        let name = text(entry.key)
        checkServiceName(entry.key, "services." + name)
        return service(named: Located(name, at: entry.key.location), entry.value, "services." + name)
    }

    /// A secret reference in its long form `{ secret: NAME, key: KEY }`.
    mutating func secretReference(_ node: YAMLNode, _ path: @autoclosure () -> String) -> SecretReference? {
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var name: Located<String>?
        var key: Located<String>?
        for entry in entries {
            let field = text(entry.key)
            func fieldPath() -> String { path() + "." + field }
            switch field {
            case "secret": name = dnsLabel(entry.value, fieldPath(), what: "a secret name")
            case "key":
                guard let text = string(entry.value, fieldPath()) else { continue }
                if Self.isSecretKey(text.value) {
                    key = text
                } else {
                    error(
                        .invalidName, fieldPath(), at: text.location, "\"\(text.value)\" is not a valid secret key",
                        hint: "use letters, digits, `-`, `_` and `.` (Kubernetes Secret keys), at most 253")
                }
            default: unknownField(entry.key, path(), allowed: ["secret", "key"])
            }
        }
        guard let name = required(name, "secret", in: entries, path(), at: location, example: "secret: jwt-secret")
        else {
            return nil
        }
        return SecretReference(name: name, key: key, location: location)
    }

    /// A secret named by itself (`secret: jwt-secret`).
    private mutating func secretName(_ node: YAMLNode, _ path: @autoclosure () -> String) -> SecretReference? {
        guard let name = dnsLabel(node, path(), what: "a secret name") else { return nil }
        return SecretReference(name: name, key: nil, location: name.location)
    }
}
