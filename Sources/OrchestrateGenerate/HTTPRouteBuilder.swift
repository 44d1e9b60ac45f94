import OrchestrateSpec

/// Gateway API HTTPRoutes, one per routed service. Routes that need a JWT go to the API gateway, which checks
/// the token and rewrites; the others go straight to their service with a URLRewrite (ReplacePrefixMatch).
struct HTTPRouteBuilder {
    let spec: Spec

    private typealias Y = OutputEscaping

    func contexts() -> [[String: Any]] {
        guard let gatewaySettings = spec.gateway, let gateway = spec.service(named: gatewaySettings.service.value),
            let gatewayPort = gateway.port?.value
        else { return [] }
        let routes = GatewayRoute.all(in: spec)
        return spec.services.compactMap { service -> [String: Any]? in
            let own = routes.filter { $0.service.name.value == service.name.value }
            guard !own.isEmpty else { return nil }
            let rules: [[String: Any]] = own.map { route in
                let viaGateway = route.route.effectiveAuth == .jwt
                let methods = route.route.methods.map(\.value)
                let matches: [[String: String]] = (methods.isEmpty ? [nil] : methods.map { Optional($0) }).map { method in
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
