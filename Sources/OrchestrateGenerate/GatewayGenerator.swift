import OrchestrateContract
import OrchestrateSpec

/// `gateway/routes.json`, the table orchestrate's gateway loads, and `gateway/nginx.conf`, the same routes for
/// teams that front with nginx.
struct GatewayGenerator {
    let topology: Topology
    let templates: TemplateSet

    private typealias J = OutputEscaping

    /// - Parameter routesJSON: The route table, shared with the Kubernetes ConfigMap that carries it.
    func plan(routesJSON: SharedResult<String>) -> RenderPlan {
        guard topology.spec.gateway != nil else { return .files([]) }
        return .files([
            (RouteTableFile.generatedPath, { @Sendable in routesJSON.get() }),
            ("gateway/nginx.conf", { @Sendable in templates.render("nginx.conf", nginxContext()) }),
        ])
    }

    private func nginxContext() -> [String: Any] {
        let gateway = topology.gateway
        let gatewayName = gateway?.name ?? ""
        let gatewayPort = gateway?.endpoint?.port ?? 8080
        let routes: [[String: Any]] = topology.routes.enumerated().map { index, route in
            // JWT routes go through our gateway, which checks the token and rewrites; nginx OSS cannot verify
            // a JWT, and sending them straight upstream would skip authentication.
            let viaGateway = route.requiresJWT
            let upstreamHost = viaGateway ? gatewayName : route.service.name.value
            let upstreamPort = viaGateway ? gatewayPort : route.port
            var context: [String: Any] = [
                "index": String(index),
                "upstream": "http://\(upstreamHost):\(upstreamPort)",  // DNS labels and a number: nothing to escape
                "timeoutSeconds": String(max(1, route.timeout.seconds)),
                "maxBodyBytes": String(route.maxBodyBytes),
                "service": route.service.name.value,
            ]
            context["locations"] =
                NginxLocations(
                    prefix: RoutePrefix(route.prefix),
                    rewrite: viaGateway || route.route.rewrite == nil ? nil : route.rewrite
                ).contexts
            if let limit = route.route.rateLimit {
                context["limit"] = [
                    "zone": "route\(index)", "rate": String(limit.requestsPerSecond.value),
                    "burst": String(limit.effectiveBurst),
                ]
            }
            if !route.route.methods.isEmpty {
                context["methods"] = route.route.methods.map(\.value).joined(separator: "|")
            }
            return context
        }
        return ["routes": routes, "port": String(gatewayPort)]
    }
}
