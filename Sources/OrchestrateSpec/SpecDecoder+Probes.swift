/// Reading probes, routes and resources.
extension SpecDecoder {
    mutating func probes(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Probes {
        guard let (entries, _) = mapping(node, path()) else { return Probes() }
        var probes = Probes()
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            switch key {
            case "liveness": probes.liveness = probe(entry.value, fieldPath(), singleSuccess: true)
            case "readiness": probes.readiness = probe(entry.value, fieldPath(), singleSuccess: false)
            case "startup": probes.startup = probe(entry.value, fieldPath(), singleSuccess: true)
            default: unknownField(entry.key, path(), allowed: ["liveness", "readiness", "startup"])
            }
        }
        return probes
    }

    static let probeFields = [
        "http", "tcp", "command", "interval", "timeout", "initialDelay", "failureThreshold", "successThreshold",
    ]

    /// A probe, short (`/health`, an HTTP path) or long (`{ http: /health, interval: 5s, … }`).
    ///
    /// - Parameter singleSuccess: Kubernetes requires `successThreshold: 1` for liveness and startup probes.
    private mutating func probe(_ node: YAMLNode, _ path: @autoclosure () -> String, singleSuccess: Bool) -> Probe? {
        if case .scalar = node {
            guard let probePath = httpPath(node, path()) else { return nil }
            var probe = Self.defaultProbe(path: probePath.value, at: probePath.location)
            probe.check = Located(.http(path: probePath.value), at: probePath.location)
            return probe
        }
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var checks: [Located<Probe.Check>] = []
        var probe = Self.defaultProbe(path: "/", at: location)
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            switch key {
            case "http":
                httpPath(entry.value, fieldPath()).map {
                    checks.append(Located(.http(path: $0.value), at: $0.location))
                }
            case "tcp":
                port(entry.value, fieldPath()).map { checks.append(Located(.tcp(port: $0.value), at: $0.location)) }
            case "command":
                let words = strings(entry.value, fieldPath())
                if words.isEmpty {
                    error(
                        .invalidValue, fieldPath(), at: entry.value.location, "a probe command cannot be empty",
                        hint: "write the program and its arguments: [\"healthcheck\", \"http://127.0.0.1:3001/ready\"]")
                } else {
                    checks.append(Located(.command(words.map(\.value)), at: entry.value.location))
                }
            case "interval": duration(entry.value, fieldPath(), positive: true).map { probe.interval = $0.value }
            case "timeout": duration(entry.value, fieldPath(), positive: true).map { probe.timeout = $0.value }
            case "initialDelay": duration(entry.value, fieldPath()).map { probe.initialDelay = $0.value }
            case "failureThreshold": int(entry.value, fieldPath(), minimum: 1).map { probe.failureThreshold = $0.value }
            case "successThreshold":
                guard let threshold = int(entry.value, fieldPath(), minimum: 1) else { continue }
                if singleSuccess, threshold.value != 1 {
                    error(
                        .invalidValue, fieldPath(), at: threshold.location,
                        "a liveness or startup probe must have successThreshold 1 (Kubernetes refuses others)",
                        hint: "remove successThreshold here")
                } else {
                    probe.successThreshold = threshold.value
                }
            default: unknownField(entry.key, path(), allowed: Self.probeFields)
            }
        }
        if checks.count > 1 {
            error(
                .conflictingFields, path(), at: location, "a probe checks one thing: http, tcp or command",
                hint: "keep one of \(checks.count) checks")
        }
        guard let check = checks.first else {
            if !entries.contains(where: { ["http", "tcp", "command"].contains(text($0.key)) }) {
                error(
                    .missingField, path(), at: location, "a probe needs one of \"http\", \"tcp\" or \"command\"",
                    hint: "add `http: /health`")
            }
            return nil
        }
        probe.check = check
        return probe
    }

    private mutating func httpPath(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Located<String>? {
        guard let value = string(node, path()) else { return nil }
        guard value.value.utf8.first == UInt8(ascii: "/"), !Self.containsWhitespace(value.value) else {
            error(
                .invalidProbePath, path(), at: value.location,
                "the probe path \"\(value.value)\" must start with \"/\" and contain no spaces",
                hint: "write `/\(value.value.drop { $0 == "/" }.filter { !$0.isWhitespace })`")
            return nil
        }
        return value
    }

    /// Whether the text holds a whitespace character; bytes are looked at, Characters only beyond ASCII.
    static func containsWhitespace(_ text: String) -> Bool {
        for byte in text.utf8 {
            if byte >= 0x80 { return text.contains(where: \.isWhitespace) }
            if byte == UInt8(ascii: " ") || (byte >= 0x09 && byte <= 0x0D) { return true }
        }
        return false
    }

    static let routeFields = ["prefix", "rewrite", "methods", "auth", "rateLimit", "timeout", "maxBodySize"]

    mutating func route(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Route? {
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var route = Route(
            prefix: Located("", at: location), rewrite: nil, methods: [], auth: nil, rateLimit: nil,
            timeout: nil, maxBodySize: nil, location: location)
        var prefix: Located<String>?
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            switch key {
            case "prefix": prefix = routePath(entry.value, fieldPath())
            case "rewrite": route.rewrite = routePath(entry.value, fieldPath())
            case "methods":
                route.methods = strings(entry.value, fieldPath()).enumerated().compactMap { index, method in
                    guard !Route.knownMethods.contains(method.value) else { return method }
                    error(
                        .invalidValue, "\(fieldPath())[\(index)]", at: method.location,
                        "\"\(method.value)\" is not an HTTP method"
                            + Suggestion.clause(for: method.value, among: Route.knownMethods.sorted()),
                        hint: "use one of: " + Route.knownMethods.sorted().joined(separator: ", "))
                    return nil
                }
            case "auth": route.auth = choice(entry.value, fieldPath(), Route.Auth.self)
            case "rateLimit": route.rateLimit = rateLimit(entry.value, fieldPath())
            case "timeout": route.timeout = duration(entry.value, fieldPath(), positive: true)
            case "maxBodySize": route.maxBodySize = quantity(entry.value, fieldPath())
            default: unknownField(entry.key, path(), allowed: Self.routeFields)
            }
        }
        guard let prefix = required(prefix, "prefix", in: entries, path(), at: location, example: "prefix: /api/users")
        else {
            return nil
        }
        route.prefix = prefix
        return route
    }

    /// A URL path prefix as the gateway, nginx and Gateway API's HTTPRoute all accept it.
    private mutating func routePath(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Located<String>? {
        guard let value = string(node, path()) else { return nil }
        if let problem = RoutePath.problem(value.value) {
            error(
                .invalidRoutePrefix, path(), at: value.location,
                "\"\(value.value)\" is not a valid path prefix: \(problem)",
                hint: "write a path such as /api/users")
            return nil
        }
        return value
    }

    private mutating func rateLimit(_ node: YAMLNode, _ path: @autoclosure () -> String) -> RateLimit? {
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var rps: Located<Int>?
        var burst: Located<Int>?
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            switch key {
            case "rps": rps = int(entry.value, fieldPath(), minimum: 1, code: .invalidRateLimit)
            case "burst": burst = int(entry.value, fieldPath(), minimum: 1, code: .invalidRateLimit)
            default: unknownField(entry.key, path(), allowed: ["rps", "burst"])
            }
        }
        guard let rps = required(rps, "rps", in: entries, path(), at: location, example: "rps: 50") else { return nil }
        return RateLimit(requestsPerSecond: rps, burst: burst, location: location)
    }

    static let resourceFields = [
        "cpu", "memory", "ephemeralStorage", "cpuLimit", "memoryLimit", "ephemeralStorageLimit",
    ]

    mutating func resources(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Resources? {
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var resources = Resources(location: location)
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            switch key {
            case "cpu": resources.cpu = quantity(entry.value, fieldPath())
            case "memory": resources.memory = quantity(entry.value, fieldPath())
            case "ephemeralStorage": resources.ephemeralStorage = quantity(entry.value, fieldPath())
            case "cpuLimit": resources.cpuLimit = quantity(entry.value, fieldPath())
            case "memoryLimit": resources.memoryLimit = quantity(entry.value, fieldPath())
            case "ephemeralStorageLimit": resources.ephemeralStorageLimit = quantity(entry.value, fieldPath())
            default: unknownField(entry.key, path(), allowed: Self.resourceFields)
            }
        }
        return resources
    }
}
