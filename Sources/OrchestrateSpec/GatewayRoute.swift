public import OrchestrateContract

/// One route as every gateway output sees it: the spec's route with the gateway's defaults applied and its
/// upstream resolved.
public struct GatewayRoute: Sendable {
    public let service: Service
    public let route: Route
    public let port: Int
    public let timeout: SpecDuration
    public let maxBodySize: Quantity

    /// Every route of the spec in match order (`RoutePrefix.matchOrder`), so the first match is the longest.
    static func all(in spec: Spec) -> [GatewayRoute] {
        guard let gateway = spec.gateway else { return [] }
        var routes: [GatewayRoute] = []
        for service in spec.services {
            guard let port = service.port?.value else { continue }
            for route in service.routes {
                routes.append(
                    GatewayRoute(
                        service: service, route: route, port: port,
                        timeout: route.timeout?.value ?? gateway.timeout.value,
                        maxBodySize: route.maxBodySize?.value ?? gateway.maxBodySize.value))
            }
        }
        return routes.sorted { RoutePrefix.matchOrder($0.prefix, $1.prefix) }
    }

    public var prefix: String { route.prefix.value }
    /// What the prefix becomes upstream; the prefix itself when the route does not rewrite.
    public var rewrite: String { route.rewrite?.value ?? route.prefix.value }
    public var upstream: Topology.Endpoint { Topology.Endpoint(service: service.name.value, port: port) }
    public var requiresJWT: Bool { route.effectiveAuth == .jwt }

    /// The largest body in bytes, as a route table holds it.
    public var maxBodyBytes: Int { Int(min(maxBodySize.value, 9.0e15)) }

    /// This route as the gateway reads it.
    public var tableEntry: RouteTableFile.Route {
        RouteTableFile.Route(
            prefix: prefix, rewrite: rewrite, methods: route.methods.map(\.value),
            upstream: .init(service: upstream.service, port: port, url: upstream.url),
            auth: route.effectiveAuth.rawValue,
            rateLimit: route.rateLimit.map { .init(rps: Double($0.requestsPerSecond.value), burst: $0.effectiveBurst) },
            timeoutMilliseconds: timeout.milliseconds, maxBodyBytes: maxBodyBytes)
    }
}

extension Topology {
    /// The gateway's route table, or nil when the spec has no gateway.
    public var routeTable: RouteTableFile? {
        guard let gateway = spec.gateway else { return nil }
        let jwt = gateway.jwt.map {
            RouteTableFile.JWTSettings(
                algorithm: $0.algorithm.value.rawValue, issuer: $0.issuer?.value, audience: $0.audience?.value,
                rolesClaim: $0.rolesClaim?.value)
        }
        return RouteTableFile(gateway: gateway.service.value, jwt: jwt, routes: routes.map(\.tableEntry))
    }
}
