import OrchestrateContract

/// The checks that need more than one field: references between services, collisions, and advice.
///
/// Each rule is a function from the spec to diagnostics; `check` runs them all, so every problem is found in
/// one pass.
enum SpecRules {
    static func check(_ spec: Spec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        let rules: [(Spec) -> [Diagnostic]] = [
            dependencies, cycles, reservedNames, ports, databases, routes, gateway, events, resources, scaling,
            environment, images, probeBudgets,
        ]
        for rule in rules { diagnostics += rule(spec) }
        return diagnostics
    }

    static func dependencies(_ spec: Spec) -> [Diagnostic] {
        let names = spec.services.map(\.name.value)
        let known = Set(names)
        var diagnostics: [Diagnostic] = []
        for service in spec.services {
            let repeats = Set(service.dependsOn.indicesOfRepeats { $0.value })
            for (index, target) in service.dependsOn.enumerated() {
                var path: String { "services.\(service.name.value).dependsOn[\(index)]" }  // only for a diagnostic
                if !known.contains(target.value) {
                    // Only on an error: building this list for every service made validation quadratic.
                    let others = names.filter { $0 != service.name.value }
                    diagnostics.append(
                        Diagnostic(
                            .error, .unknownDependency, path: path, at: target.location,
                            "no service named \"\(target.value)\""
                                + Suggestion.clause(for: target.value, among: others),
                            hint: others.isEmpty
                                ? "there is no other service" : "depend on one of: " + others.joined(separator: ", ")))
                } else if repeats.contains(index) {
                    diagnostics.append(
                        Diagnostic(
                            .warning, .duplicateEntry, path: path, at: target.location,
                            "\"\(target.value)\" is listed twice", hint: "remove the second entry"))
                }
            }
        }
        return diagnostics
    }

    static func cycles(_ spec: Spec) -> [Diagnostic] {
        ServiceGraph(spec).cycles().map { cycle in
            let edge = cycle.closingEdge
            return Diagnostic(
                .error, .dependencyCycle, path: "services.\(edge.from).dependsOn[\(edge.index)]", at: edge.location,
                "dependency cycle: " + cycle.path.joined(separator: " → "),
                hint: cycle.path.count == 2
                    ? "a service cannot depend on itself"
                    : "services in a cycle can never become ready in order; remove one dependency of the cycle")
        }
    }

    /// The names generated deployments give to infrastructure and to their own files: a service may not take one,
    /// or compose and Kubernetes would have two things of one name, or one file (`k8s/NAME.yaml`) would overwrite
    /// another (a service named `namespace` would drop the namespace and its default-deny NetworkPolicies).
    static func reservedNames(_ spec: Spec) -> [Diagnostic] {
        var infrastructure = [
            "redis": "the broker", "jaeger": "tracing", "prometheus": "metrics",
            "namespace": "the namespace file (k8s/namespace.yaml)",
            "kustomization": "the kustomization (k8s/kustomization.yaml)",
            "httproutes": "the gateway's HTTPRoutes (k8s/httproutes.yaml)",
        ]
        if let gateway = spec.gateway {
            infrastructure[gateway.service.value + "-routes"] =
                "the gateway's route table (k8s/\(gateway.service.value)-routes.yaml)"
        }
        // Each database's container is NAME-postgres; only a service name of that shape is looked up.
        var databaseOwners: [String: String] = [:]
        for service in spec.services {
            if let database = service.database { databaseOwners[database.name.value] = service.name.value }
        }
        return spec.services.compactMap { service in
            let name = service.name.value
            let owner: String
            if let known = infrastructure[name] {
                owner = known
            } else if name.hasSuffix("-postgres"),
                let service = databaseOwners[String(name.dropLast("-postgres".count))]
            {
                owner = "the database of \"\(service)\""
            } else {
                return nil
            }
            return Diagnostic(
                .error, .reservedName, path: "services.\(service.name.value)", at: service.name.location,
                "the name \"\(service.name.value)\" is taken by \(owner) in the generated deployments",
                hint: "rename the service")
        }
    }

    static func ports(_ spec: Spec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        var publicPorts: [Int: (name: String, location: SourceLocation)] = [:]
        for service in spec.services {
            guard let port = service.port else { continue }
            var path: String { "services.\(service.name.value).port" }  // only for a diagnostic
            if port.value < 1024 {
                diagnostics.append(
                    Diagnostic(
                        .warning, .privilegedPort, path: path, at: port.location,
                        "port \(port.value) needs root to bind; the generated images and pods run as non-root",
                        hint: "use a port of 1024 or above"))
            }
            guard service.isPublished else { continue }
            if let other = publicPorts[port.value] {
                diagnostics.append(
                    Diagnostic(
                        .error, .portConflict, path: path, at: port.location,
                        "port \(port.value) is already published by \"\(other.name)\" "
                            + "(line \(other.location.line)); both would bind localhost:\(port.value)",
                        hint: "give one of the two public services another port"))
            } else {
                publicPorts[port.value] = (service.name.value, port.location)
            }
        }
        return diagnostics
    }

    static func databases(_ spec: Spec) -> [Diagnostic] {
        var owners: [String: (name: String, location: SourceLocation)] = [:]
        var diagnostics: [Diagnostic] = []
        for service in spec.services {
            guard let database = service.database else { continue }
            if let owner = owners[database.name.value] {
                diagnostics.append(
                    Diagnostic(
                        .error, .sharedDatabase, path: "services.\(service.name.value).database.name",
                        at: database.name.location,
                        "the database \"\(database.name.value)\" already belongs to \"\(owner.name)\" "
                            + "(line \(owner.location.line)); each service owns its database alone",
                        hint: "give this service its own database and reach the other's data through its API"))
            } else {
                owners[database.name.value] = (service.name.value, database.name.location)
            }
        }
        return diagnostics
    }

    static func routes(_ spec: Spec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        var prefixes: [String: (service: String, location: SourceLocation)] = [:]
        var reportedMissingGateway = false
        for service in spec.services {
            for (index, route) in service.routes.enumerated() {
                var path: String { "services.\(service.name.value).routes[\(index)]" }  // only for a diagnostic
                if service.port == nil, index == 0 {
                    diagnostics.append(
                        Diagnostic(
                            .error, .missingPort, path: path, at: route.location,
                            "\"\(service.name.value)\" has routes but no port for the gateway to forward to",
                            hint: "add `port:` to \(service.name.value)"))
                }
                if spec.gateway == nil, !reportedMissingGateway {
                    reportedMissingGateway = true
                    diagnostics.append(
                        Diagnostic(
                            .error, .missingGateway, path: path, at: route.location,
                            "routes are declared but no gateway serves them",
                            hint: "add `gateway: { service: api-gateway }` at the top level"))
                }
                if route.effectiveAuth == .jwt, spec.gateway != nil, spec.gateway?.jwt == nil {
                    diagnostics.append(
                        Diagnostic(
                            .error, .missingJWTSettings, path: path + ".auth",
                            at: route.auth?.location ?? route.location,
                            "this route requires a JWT but the gateway has no key to check it with",
                            hint: "add `jwt: { secret: jwt-secret }` under `gateway:`"))
                }
                let key = RoutePrefix.normalize(route.prefix.value)
                if let first = prefixes[key] {
                    diagnostics.append(
                        Diagnostic(
                            .error, .duplicateRoutePrefix, path: path + ".prefix", at: route.prefix.location,
                            "the prefix \"\(route.prefix.value)\" is already routed to \"\(first.service)\" "
                                + "(line \(first.location.line))",
                            hint: "each prefix routes to one service; make one of them longer"))
                } else {
                    prefixes[key] = (service.name.value, route.prefix.location)
                }
            }
        }
        return diagnostics
    }

    static func gateway(_ spec: Spec) -> [Diagnostic] {
        // The built-in gateway serves the spec's routes: it is the gateway, or it has nothing to do.
        let builtins = spec.services.filter { $0.builtin?.value == .gateway }
        let strays = builtins.filter { $0.name.value != spec.gateway?.service.value }.map { service in
            Diagnostic(
                .error, .missingGateway, path: "services.\(service.name.value).builtin",
                at: service.builtin?.location ?? service.name.location,
                "\"\(service.name.value)\" is the built-in gateway, but `gateway.service` does not name it",
                hint: "add `gateway: { service: \(service.name.value) }` at the top level")
        }
        guard let gateway = spec.gateway else { return strays }
        guard let service = spec.service(named: gateway.service.value) else {
            let names = spec.services.map(\.name.value)
            return [
                Diagnostic(
                    .error, .unknownService, path: "gateway.service", at: gateway.service.location,
                    "no service named \"\(gateway.service.value)\""
                        + Suggestion.clause(for: gateway.service.value, among: names),
                    hint: "name the service that runs the gateway")
            ]
        }
        guard service.port == nil else { return strays }
        return strays + [
            Diagnostic(
                .error, .missingPort, path: "services.\(service.name.value)", at: service.name.location,
                "the gateway \"\(service.name.value)\" needs a port to listen on", hint: "add `port: 3000`")
        ]
    }

    static func events(_ spec: Spec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        let published = Set(spec.services.flatMap { $0.publishes.map(\.value) })
        for service in spec.services {
            let name = service.name.value
            if spec.broker == nil, let first = service.publishes.first ?? service.subscribes.first {
                let field = service.publishes.isEmpty ? "subscribes" : "publishes"
                diagnostics.append(
                    Diagnostic(
                        .error, .missingBroker, path: "services.\(name).\(field)[0]", at: first.location,
                        "\"\(name)\" \(field == "publishes" ? "publishes" : "subscribes to") events but no broker is declared",
                        hint: "add `broker: { engine: redis }` at the top level"))
            }
            for (field, events) in [("publishes", service.publishes), ("subscribes", service.subscribes)] {
                for index in events.indicesOfRepeats(by: { $0.value }) {
                    let event = events[index]
                    diagnostics.append(
                        Diagnostic(
                            .warning, .duplicateEntry, path: "services.\(name).\(field)[\(index)]", at: event.location,
                            "\"\(event.value)\" is listed twice", hint: "remove the second entry"))
                }
            }
            for (index, event) in service.subscribes.enumerated() where !published.contains(event.value) {
                diagnostics.append(
                    Diagnostic(
                        .warning, .unpublishedEvent, path: "services.\(name).subscribes[\(index)]", at: event.location,
                        "no service publishes \"\(event.value)\""
                            + Suggestion.clause(for: event.value, among: published.sorted()),
                        hint: "add it to the producer's `publishes`, or drop the subscription"))
            }
        }
        return diagnostics
    }

    static func resources(_ spec: Spec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for service in spec.services {
            guard let resources = service.resources else { continue }
            let pairs: [(String, Located<Quantity>?, String, Located<Quantity>?)] = [
                ("cpu", resources.cpu, "cpuLimit", resources.cpuLimit),
                ("memory", resources.memory, "memoryLimit", resources.memoryLimit),
                (
                    "ephemeralStorage", resources.ephemeralStorage, "ephemeralStorageLimit",
                    resources.ephemeralStorageLimit
                ),
            ]
            // What the generators can write: compose's cores in thousandths and bytes are Int64s. A machine has
            // nowhere near a million cores or 8 EiB.
            for (name, amount, maximum, unit) in [
                ("cpu", resources.cpu, Self.maximumCores, "cores"),
                ("cpuLimit", resources.cpuLimit, Self.maximumCores, "cores"),
                ("memory", resources.memory, Self.maximumBytes, "bytes"),
                ("memoryLimit", resources.memoryLimit, Self.maximumBytes, "bytes"),
                ("ephemeralStorage", resources.ephemeralStorage, Self.maximumBytes, "bytes"),
                ("ephemeralStorageLimit", resources.ephemeralStorageLimit, Self.maximumBytes, "bytes"),
            ] {
                guard let amount, !(amount.value.value <= maximum) else { continue }
                diagnostics.append(
                    Diagnostic(
                        .error, .valueTooLarge, path: "services.\(service.name.value).resources.\(name)",
                        at: amount.location, "\(name) \(amount.value) is more than any machine has",
                        hint: "at most \(unit == "cores" ? "1000000 cores (1M)" : "8Ei bytes")"))
            }
            for (requestName, request, limitName, limit) in pairs {
                guard let request, let limit, request.value.value > limit.value.value else { continue }
                diagnostics.append(
                    Diagnostic(
                        .error, .requestExceedsLimit, path: "services.\(service.name.value).resources.\(requestName)",
                        at: request.location,
                        "\(requestName) \(request.value) is more than \(limitName) \(limit.value); Kubernetes refuses it",
                        hint: "raise \(limitName) or lower \(requestName)"))
            }
        }
        return diagnostics
    }

    static let maximumCores = 1_000_000.0
    static let maximumBytes = 9.2e18

    /// The longest a probe may take to fail (initial delay + failureThreshold × interval): a week. Longer is a
    /// mistake, and compose's start period and the supervisor's budget are computed from it.
    static let maximumProbeBudget = 7 * 24 * 3_600_000

    static func probeBudgets(_ spec: Spec) -> [Diagnostic] {
        spec.services.flatMap { service in
            [
                ("liveness", service.probes.liveness), ("readiness", service.probes.readiness),
                ("startup", service.probes.startup),
            ]
            .compactMap { name, probe -> Diagnostic? in
                guard let probe else { return nil }
                let (product, overflow) = probe.interval.milliseconds.multipliedReportingOverflow(
                    by: probe.failureThreshold)
                let (budget, overflowAgain) = product.addingReportingOverflow(probe.initialDelay.milliseconds)
                guard overflow || overflowAgain || budget > maximumProbeBudget else { return nil }
                return Diagnostic(
                    .error, .valueTooLarge, path: "services.\(service.name.value).probes.\(name)",
                    at: probe.location,
                    "this probe would take more than a week to fail (initialDelay + failureThreshold × interval)",
                    hint: "lower failureThreshold or interval")
            }
        }
    }

    static func scaling(_ spec: Spec) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for service in spec.services {
            guard let autoscaling = service.autoscaling else { continue }
            let path = "services.\(service.name.value)"
            if autoscaling.minReplicas.value > autoscaling.maxReplicas.value {
                diagnostics.append(
                    Diagnostic(
                        .error, .invalidAutoscaling, path: path + ".autoscaling.minReplicas",
                        at: autoscaling.minReplicas.location,
                        "minReplicas \(autoscaling.minReplicas.value) is more than maxReplicas \(autoscaling.maxReplicas.value)",
                        hint: "make minReplicas at most maxReplicas"))
            }
            if let replicas = service.replicas {
                diagnostics.append(
                    Diagnostic(
                        .warning, .invalidAutoscaling, path: path + ".replicas", at: replicas.location,
                        "replicas is ignored in Kubernetes when autoscaling is set (it is used locally only)",
                        hint: "remove replicas, or remove autoscaling"))
            }
        }
        return diagnostics
    }

    static func images(_ spec: Spec) -> [Diagnostic] {
        guard spec.images.tag.value == "latest" else { return [] }
        return [
            Diagnostic(
                .warning, .mutableImageTag, path: "images.tag", at: spec.images.tag.location,
                "the tag \"latest\" moves; a rollout or rollback with it is not repeatable",
                hint: "pin a version: tag: \"1.0.0\"")
        ]
    }
}
