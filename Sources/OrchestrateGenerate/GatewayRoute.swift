import OrchestrateSpec

/// One route as every gateway output sees it: the spec's route with the gateway's defaults applied and its
/// upstream resolved, in the order a longest-prefix match tries them.
struct GatewayRoute {
    let service: Service
    let route: Route
    let port: Int
    let timeout: SpecDuration
    let maxBodySize: Quantity

    /// Every route of the spec, longest prefix first (then by prefix), so the first match is the longest.
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
        return routes.sorted {
            ($0.route.prefix.value.utf8.count, $1.route.prefix.value) > ($1.route.prefix.value.utf8.count, $0.route.prefix.value)
        }
    }

    var prefix: String { route.prefix.value }
    /// What the prefix becomes upstream; the prefix itself when the route does not rewrite.
    var rewrite: String { route.rewrite?.value ?? route.prefix.value }
    var upstream: String { "http://\(service.name.value):\(port)" }
}
