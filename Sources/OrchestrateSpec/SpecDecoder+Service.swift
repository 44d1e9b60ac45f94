/// Reading one service and the parts only a service has.
extension SpecDecoder {
    static let serviceFields = [
        "product", "image", "command", "builtin", "port", "public", "replicas", "autoscaling", "args", "env",
        "database",
        "dependsOn",
        "publishes", "subscribes", "probes", "routes", "resources", "restart", "stopGracePeriod", "watch",
    ]

    mutating func service(named name: Located<String>, _ node: YAMLNode, _ path: @autoclosure () -> String) -> Service?
    {
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var service = Service.Fields(
            name: name, product: nil, image: nil, command: [], builtin: nil, port: nil, isPublic: nil, replicas: nil,
            autoscaling: nil,
            args: [], env: [], database: nil, dependsOn: [], publishes: [], subscribes: [], probes: Probes(),
            routes: [], resources: nil, restart: nil, stopGracePeriod: nil, watch: nil, location: location)
        var probesWritten = false
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            let value = entry.value
            switch key {
            case "product": service.product = string(value, fieldPath())
            case "image": service.image = string(value, fieldPath())
            case "builtin": service.builtin = choice(value, fieldPath(), BuiltinProgram.self)
            case "command":
                service.command = strings(value, fieldPath())
                if service.command.isEmpty || service.command.contains(where: \.value.isEmpty) {
                    error(
                        .invalidValue, fieldPath(), at: entry.value.location,
                        "\(fieldPath()) must name a program, then its arguments, none of them empty",
                        hint: "for example `command: [python3, worker.py]`")
                }
            case "port": service.port = port(value, fieldPath())
            case "public": service.isPublic = bool(value, fieldPath())
            case "replicas": service.replicas = int(value, fieldPath(), minimum: 0, code: .invalidReplicas)
            case "autoscaling": service.autoscaling = autoscaling(value, fieldPath())
            case "args": service.args = strings(value, fieldPath())
            case "env": service.env = environment(value, fieldPath())
            case "database": service.database = database(value, fieldPath())
            case "dependsOn": service.dependsOn = strings(value, fieldPath())
            case "publishes": service.publishes = eventNames(value, fieldPath())
            case "subscribes": service.subscribes = eventNames(value, fieldPath())
            case "probes":
                probesWritten = true
                service.probes = probes(value, fieldPath())
            case "routes":
                guard let items = list(value, fieldPath()) else { continue }
                service.routes = items.enumerated().compactMap { route($1, "\(fieldPath())[\($0)]") }
            case "resources": service.resources = resources(value, fieldPath())
            case "restart": service.restart = choice(value, fieldPath(), RestartPolicy.self)
            case "stopGracePeriod": service.stopGracePeriod = duration(value, fieldPath())
            case "watch": service.watch = bool(value, fieldPath())
            default: unknownField(entry.key, path(), allowed: Self.serviceFields)
            }
        }
        let namesBuild = entries.contains { ["product", "image", "command", "builtin"].contains(text($0.key)) }
        switch (service.product, service.image) {
        case (nil, nil) where !namesBuild:
            error(
                .missingField, path(), at: name.location,
                "the required field \"product\" (the SwiftPM executable to build) or \"image\" is missing",
                hint: "add `product: \(Self.productName(for: name.value))`")
        case (_?, let image?):
            error(
                .conflictingFields, path() + ".image", at: image.location,
                "\(path()) sets both \"product\" and \"image\"; a service is built from a product or runs an image",
                hint: "keep one of the two")
        default: break
        }
        if let builtin = service.builtin {
            let others = [
                service.product.map { ("product", $0.location) }, service.image.map { ("image", $0.location) },
                service.command.first.map { ("command", $0.location) },
            ].compactMap { $0 }
            for (field, location) in others {
                error(
                    .conflictingFields, path() + "." + field, at: location,
                    "\(path()) is orchestrate's \(builtin.value.rawValue) (`builtin:`) and also sets \"\(field)\"",
                    hint: "remove `\(field)`: the built-in \(builtin.value.rawValue) comes with orchestrate")
            }
        }
        if let first = service.command.first, service.builtin == nil {
            if let product = service.product {
                error(
                    .conflictingFields, path() + ".command", at: first.location,
                    "\(path()) sets both \"product\" and \"command\"; `up` runs a product it builds, or a command",
                    hint:
                        "keep `product` for a SwiftPM executable, or `command` and `image` for anything else (the product is \(product.value))"
                )
            } else if service.image == nil {
                error(
                    .missingField, path(), at: first.location,
                    "\(path()) has a \"command\" for `orchestrate up` but no \"image\" for compose and Kubernetes",
                    hint:
                        "add the image that holds and runs the program (e.g. `image: recommender:1.0`, built FROM python:3.12-slim with the script copied in)"
                )
            }
        }
        if !probesWritten, service.port != nil {
            service.probes = Probes(
                liveness: Self.defaultProbe(path: "/health", at: location),
                readiness: Self.defaultProbe(path: "/ready", at: location))
        }
        return Service(service)
    }

    /// `user-service` → `UserService`, the product name the shop's convention gives.
    static func productName(for service: String) -> String {
        service.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    static func defaultProbe(path: String, at location: SourceLocation) -> Probe {
        Probe(
            check: Located(.http(path: path), at: location), interval: Probe.defaultInterval,
            timeout: Probe.defaultTimeout, initialDelay: SpecDuration(milliseconds: 0),
            failureThreshold: Probe.defaultFailureThreshold, successThreshold: 1, location: location)
    }

    mutating func port(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Located<Int>? {
        guard let port = int(node, path()) else { return nil }
        guard (1...65_535).contains(port.value) else {
            error(
                .portOutOfRange, path(), at: port.location, "port \(port.value) is out of range",
                hint: "use a port from 1 to 65535; 1024 and above need no privileges")
            return nil
        }
        return port
    }

    private mutating func autoscaling(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Autoscaling? {
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var minimum = Located(1, at: location)
        var maximum: Located<Int>?
        var target = Located(Autoscaling.defaultTargetCPUUtilization, at: location)
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            switch key {
            case "minReplicas": int(entry.value, fieldPath(), minimum: 1).map { minimum = $0 }
            case "maxReplicas": maximum = int(entry.value, fieldPath(), minimum: 1)
            case "targetCPUUtilization": int(entry.value, fieldPath(), minimum: 1).map { target = $0 }
            default: unknownField(entry.key, path(), allowed: ["minReplicas", "maxReplicas", "targetCPUUtilization"])
            }
        }
        guard
            let maximum = required(maximum, "maxReplicas", in: entries, path(), at: location, example: "maxReplicas: 5")
        else {
            return nil
        }
        return Autoscaling(minReplicas: minimum, maxReplicas: maximum, targetCPUUtilization: target, location: location)
    }

    private mutating func environment(_ node: YAMLNode, _ path: @autoclosure () -> String) -> [EnvironmentVariable] {
        guard let (entries, _) = mapping(node, path()) else { return [] }
        var variables: [EnvironmentVariable] = []
        for entry in entries {
            let name = text(entry.key)
            func fieldPath() -> String { path() + "." + name }
            if !Self.isEnvironmentName(name) {
                error(
                    .invalidEnvName, fieldPath(), at: entry.key.location,
                    "\"\(name)\" is not a valid environment variable name",
                    hint: "use letters, digits and `_`, not starting with a digit: "
                        + name.uppercased().map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined())
            }
            let value: EnvironmentVariable.Value
            switch entry.value {
            case .scalar(let scalar) where resolved(scalar) != .null:
                value = .plain(text(scalar))
            case .mapping:
                guard let reference = secretReference(entry.value, fieldPath()) else { continue }
                value = .secret(reference)
            default:
                wrongType(
                    entry.value, fieldPath(), expected: "a value or a secret reference",
                    hint: "write `\(name): text` or `\(name): { secret: NAME }`")
                continue
            }
            variables.append(
                EnvironmentVariable(
                    name: Located(name, at: entry.key.location), value: value, valueLocation: entry.value.location))
        }
        return variables
    }

    static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !first.isASCIIDigit else { return false }
        return name.utf8.allSatisfy { byte in
            byte.isASCIIDigit || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
                || byte == UInt8(ascii: "_")
        }
    }

    private mutating func database(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Database? {
        guard let (entries, location) = mapping(node, path()) else { return nil }
        var engine = Located(Database.Engine.postgres, at: location)
        var name: Located<String>?
        var storage: Located<Quantity>?
        var external: SecretReference?
        for entry in entries {
            let key = text(entry.key)
            func fieldPath() -> String { path() + "." + key }
            switch key {
            case "engine": choice(entry.value, fieldPath(), Database.Engine.self).map { engine = $0 }
            case "name": name = dnsLabel(entry.value, fieldPath(), what: "a database")
            case "storage": storage = quantity(entry.value, fieldPath())
            case "external": external = secretReference(entry.value, fieldPath())
            default: unknownField(entry.key, path(), allowed: ["engine", "name", "storage", "external"])
            }
        }
        guard let name = required(name, "name", in: entries, path(), at: location, example: "name: users") else {
            return nil
        }
        return Database(engine: engine, name: name, storage: storage, external: external, location: location)
    }

    private mutating func eventNames(_ node: YAMLNode, _ path: @autoclosure () -> String) -> [Located<String>] {
        strings(node, path()).enumerated().compactMap { index, name in
            guard let problem = DNSName.eventNameProblem(name.value) else { return name }
            error(
                .invalidName, "\(path())[\(index)]", at: name.location,
                "\"\(name.value)\" is not a valid event name: \(problem)",
                hint: "name events as lowercase words joined by dots: order.created")
            return nil
        }
    }
}
