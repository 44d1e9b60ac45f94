import OrchestrateSpec

/// Gateway API HTTPRoutes, one per routed service. Routes that need a JWT go to the API gateway, which checks
/// the token and rewrites; the others go straight to their service with a URLRewrite (ReplacePrefixMatch).
struct HTTPRouteBuilder {
    let topology: Topology
    private var spec: Spec { topology.spec }

    private typealias Y = OutputEscaping

    /// Whether any HTTPRoute will be made (the gateway is declared, has a port, and some service has routes).
    var hasRoutes: Bool {
        guard let gatewaySettings = spec.gateway, spec.service(named: gatewaySettings.service.value)?.port != nil else {
            return false
        }
        return spec.services.contains { $0.port != nil && !$0.routes.isEmpty }
    }

    func contexts() -> [[String: Any]] {
        guard let gatewaySettings = spec.gateway, let gateway = spec.service(named: gatewaySettings.service.value),
            let gatewayPort = gateway.port?.value
        else { return [] }
        // Each service's routes in match order, grouped once (filtering all routes per service was quadratic).
        return topology.nodes.compactMap { node -> [String: Any]? in
            let service = node.service
            let own = node.routes
            guard !own.isEmpty else { return nil }
            let rules: [[String: Any]] = own.map { route in
                let viaGateway = route.requiresJWT
                let methods = route.route.methods.map(\.value)
                let matches: [[String: String]] = (methods.isEmpty ? [nil] : methods.map { Optional($0) }).map {
                    method in
                    var match = ["path": Y.yaml(route.prefix)]
                    if let method { match["method"] = Y.yaml(method) }
                    return match
                }
                var rule: [String: Any] = [
                    "matches": matches,
                    "backend": Y.yaml(viaGateway ? gateway.name.value : service.name.value),
                    "port": String(viaGateway ? gatewayPort : route.port),
                    "timeout": Y.yaml(route.timeout.description),
                ]
                if !viaGateway, route.route.rewrite != nil { rule["rewrite"] = Y.yaml(route.rewrite) }
                return rule
            }
            return [
                "name": Y.yaml(service.name.value),
                "gateway": Y.yaml(spec.name.value + "-gateway"),
                "rules": rules,
            ]
        }
    }
}
