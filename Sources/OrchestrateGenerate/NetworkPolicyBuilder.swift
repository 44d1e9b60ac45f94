import OrchestrateSpec

/// A service's NetworkPolicy, derived from the dependency graph: it may be reached only by the services that
/// depend on it (and by the gateway when it has routes), and may reach only its dependencies, its own
/// database, the broker and DNS. Everything else is denied by the namespace's default-deny policy.
struct NetworkPolicyBuilder {
    let spec: Spec
    let generator: KubernetesGenerator
    /// Each service's dependents, computed once for the whole spec (`dependents(in:)`).
    let dependents: [String: [String]]

    static func dependents(in spec: Spec) -> [String: [String]] {
        var dependents: [String: [String]] = [:]
        for service in spec.services {
            for dependency in service.dependsOn
            where !(dependents[dependency.value]?.contains(service.name.value) ?? false) {
                dependents[dependency.value, default: []].append(service.name.value)
            }
        }
        return dependents
    }

    private typealias Y = OutputEscaping

    func context(for service: Service) -> [String: Any] {
        let name = service.name.value
        var context: [String: Any] = [:]
        if let port = service.port?.value {
            var clients = dependents[name] ?? []
            if !service.routes.isEmpty, let gateway = spec.gateway?.service.value, gateway != name,
                !clients.contains(gateway)
            {
                clients.append(gateway)
            }
            // Public services, and services an HTTPRoute sends traffic to directly, take traffic from the
            // cluster's gateway or load balancer, whose pods are not known here.
            let open = service.isPublished || service.routes.contains { $0.effectiveAuth == .none }
            if open {
                context["ingressFromAnywhere"] = ["port": String(port)]
            } else if !clients.isEmpty {
                context["ingress"] = [
                    "port": String(port),
                    "clients": clients.map { ["selector": generator.selector(for: $0)] },
                ]
            }
        }
        var egress: [[String: Any]] = []
        for dependency in service.dependsOn {
            guard let target = spec.service(named: dependency.value), let port = target.port?.value else { continue }
            egress.append(["selector": generator.selector(for: target.name.value), "port": String(port)])
        }
        if let database = service.database, database.external == nil {
            egress.append([
                "selector": generator.selector(for: ServiceEnvironment.databaseHost(database.name.value)),
                "port": "5432",
            ])
        }
        var anywhere: [String] = []
        if service.database?.external != nil { anywhere.append("5432") }
        if let broker = spec.broker, !service.publishes.isEmpty || !service.subscribes.isEmpty {
            if broker.external == nil {
                egress.append(["selector": generator.selector(for: "redis"), "port": "6379"])
            } else {
                anywhere.append("6379")
            }
        }
        context["egress"] = egress
        if !anywhere.isEmpty { context["egressAnywhere"] = ["ports": anywhere.map { ["port": $0] }] }
        context["hasEgress"] = !egress.isEmpty || !anywhere.isEmpty
        return context
    }
}
