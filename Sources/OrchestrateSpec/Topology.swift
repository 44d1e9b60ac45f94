import OrchestrateContract

/// What a valid spec means, worked out once for every environment: each service's endpoint and its dependencies'
/// endpoints, its environment as entries named by the contract, its routes in match order, and the start waves.
///
/// compose, Kubernetes and `orchestrate up` read this and only supply values: host names, secret references,
/// local paths. None of them derives a variable, a route order or a dependency URL on its own.
public struct Topology: Sendable {
    /// Where a service answers: its name (which is its host name) and port.
    public struct Endpoint: Sendable, Equatable {
        public var service: String
        public var port: Int

        /// `http://NAME:PORT`, the URL a dependent gets in every environment.
        public var url: String { "http://\(service):\(port)" }
    }

    /// One service with everything derived about it.
    public struct Node: Sendable {
        public let service: Service
        public var name: String { service.name.value }
        /// Nil for a service without a port (a worker).
        public let endpoint: Endpoint?
        /// The endpoints of its dependencies that have ports, in the order written.
        public let dependencies: [Endpoint]
        /// Every service it depends on (with a port or not), in the order written, each once.
        public let dependsOn: [String]
        public let environment: [EnvironmentEntry]
        /// Its routes, in match order.
        public let routes: [GatewayRoute]
        /// True for the service that runs the gateway.
        public let isGateway: Bool
        /// The wave it starts in: 0 depends on nothing.
        public let wave: Int
    }

    public let spec: Spec
    /// In spec order.
    public let nodes: [Node]
    /// Every route of every service, in match order: the first whose prefix matches is the longest.
    public let routes: [GatewayRoute]
    /// Services grouped so that each wave depends only on earlier ones.
    public let waves: [[String]]
    /// False when the dependencies form a cycle (never in a spec that validated); `waves` then ends with the
    /// services on or behind the cycle, in one last wave.
    public let isAcyclic: Bool
    private let indexByName: [String: Int]

    public init(_ spec: Spec) {
        let graph = ServiceGraph(spec)
        let ordered = graph.startWaves()
        var waves = ordered ?? []
        let placed = Set(waves.joined())
        let rest = spec.services.map(\.name.value).filter { !placed.contains($0) }
        if !rest.isEmpty { waves.append(rest) }
        var waveOf: [String: Int] = [:]
        for (wave, names) in waves.enumerated() { for name in names { waveOf[name] = wave } }
        let routes = GatewayRoute.all(in: spec)
        var routesByService: [String: [GatewayRoute]] = [:]
        for route in routes { routesByService[route.service.name.value, default: []].append(route) }
        var index: [String: Int] = [:]
        nodes = spec.services.enumerated().map { position, service in
            let name = service.name.value
            if index[name] == nil { index[name] = position }
            return Node(
                service: service, endpoint: service.port.map { Endpoint(service: name, port: $0.value) },
                dependencies: Self.dependencies(of: service, in: spec), dependsOn: graph.dependencies(of: name),
                environment: Self.environment(of: service, in: spec), routes: routesByService[name] ?? [],
                isGateway: spec.gateway?.service.value == name, wave: waveOf[name] ?? 0)
        }
        self.spec = spec
        self.routes = routes
        self.waves = waves
        isAcyclic = ordered != nil
        indexByName = index
    }

    public func node(named name: String) -> Node? {
        indexByName[name].map { nodes[$0] }
    }

    /// The node that runs the gateway, when the spec has one.
    public var gateway: Node? {
        spec.gateway.flatMap { node(named: $0.service.value) }
    }

    static func dependencies(of service: Service, in spec: Spec) -> [Endpoint] {
        var endpoints: [Endpoint] = []
        for dependency in service.dependsOn where !endpoints.contains(where: { $0.service == dependency.value }) {
            guard let port = spec.service(named: dependency.value)?.port else { continue }
            endpoints.append(Endpoint(service: dependency.value, port: port.value))
        }
        return endpoints
    }
}
