import OrchestrateSpec

/// `gateway/routes.json`, the table the shop's APIGateway loads, and `gateway/nginx.conf`, the same routes
/// for teams that front with nginx.
struct GatewayGenerator {
    let spec: Spec
    let templates: TemplateSet

    private typealias J = OutputEscaping

    static let routesPath = "gateway/routes.json"

    func files() -> [GeneratedFile] {
        RenderPlan.run([plan(routesJSON: SharedResult { routesJSON() })])
    }

    func plan(routesJSON: SharedResult<String>) -> RenderPlan {
        guard spec.gateway != nil else { return .files([]) }
        return .files([
            (Self.routesPath, { @Sendable in routesJSON.get() }),
            ("gateway/nginx.conf", { @Sendable in templates.render("nginx.conf", nginxContext()) }),
        ])
    }

    /// The route table as JSON; every string is escaped by the generator, so the template only places them.
    func routesJSON() -> String {
        guard let gateway = spec.gateway else { return "" }
        let all = GatewayRoute.all(in: spec)
        let routes: [[String: Any]] = all.enumerated().map { index, route in
            var context: [String: Any] = [
                "prefix": J.json(route.prefix),
                "rewrite": J.json(route.rewrite),
                "methods": "[" + route.route.methods.map { J.json($0.value) }.joined(separator: ", ") + "]",
                "service": J.json(route.service.name.value),
                "port": String(route.port),
                "url": J.json(route.upstream),
                "auth": J.json(route.route.effectiveAuth.rawValue),
                "timeoutMilliseconds": String(route.timeout.milliseconds),
                "maxBodyBytes": String(Int(min(route.maxBodySize.value, 9.0e15))),
                "comma": index < all.count - 1 ? "," : "",
            ]
            if let limit = route.route.rateLimit {
                context["rateLimit"] = ["rps": String(limit.requestsPerSecond.value), "burst": String(limit.effectiveBurst)]
            }
            return context
        }
        var context: [String: Any] = [
            "service": J.json(gateway.service.value),
            "routes": routes,
        ]
        if let jwt = gateway.jwt {
            var settings: [String: Any] = ["algorithm": J.json(jwt.algorithm.value.rawValue)]
            settings["issuer"] = jwt.issuer.map { J.json($0.value) } ?? "null"
            settings["audience"] = jwt.audience.map { J.json($0.value) } ?? "null"
            context["jwt"] = settings
        }
        return templates.render("routes.json", context)
    }

    private func nginxContext() -> [String: Any] {
        let gateway = spec.gateway?.service.value ?? ""
        let gatewayPort = spec.service(named: gateway)?.port?.value ?? 8080
        let routes: [[String: Any]] = GatewayRoute.all(in: spec).enumerated().map { index, route in
            // JWT routes go through our gateway, which checks the token and rewrites; nginx OSS cannot verify
            // a JWT, and sending them straight upstream would skip authentication.
            let viaGateway = route.route.effectiveAuth == .jwt
            let upstreamHost = viaGateway ? gateway : route.service.name.value
            let upstreamPort = viaGateway ? gatewayPort : route.port
            var context: [String: Any] = [
                "index": String(index),
                "upstream": "http://\(upstreamHost):\(upstreamPort)",  // DNS labels and a number: nothing to escape
                "timeoutSeconds": String(max(1, route.timeout.seconds)),
                "maxBodyBytes": String(Int(min(route.maxBodySize.value, 9.0e15))),
                "service": route.service.name.value,
            ]
            context["locations"] = NginxLocations(
                prefix: route.prefix, rewrite: viaGateway || route.route.rewrite == nil ? nil : route.rewrite
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
