import OrchestrateContract
public import OrchestrateSpec

/// What `orchestrate up` will run: every replica of every service, with its loopback address, port and
/// environment, in dependency waves. Pure: made from the spec, the state directory, the DNS port and the secrets.
public struct LocalPlan: Sendable {
    public struct Replica: Sendable, Equatable {
        public var service: String
        /// 1-based, as the DNS names it (`2.user-service.shop.local`).
        public var index: Int
        public var product: String
        public var address: String
        public var port: Int?
        public var arguments: [String]
        public var environment: [String: String]
        /// The wave it starts in: 0 has no dependencies; wave N starts once waves before it are ready.
        public var wave: Int
        /// The program's full path, for programs that are not products of the package (PostgreSQL, Redis).
        public var executable: String? = nil
        /// Who it runs as, when not the supervisor's user.
        public var user: ProcessUser? = nil
        /// Its probes, restart policy, grace period and what it waits for.
        public var supervision = ReplicaSupervision()
    }

    public var project: String
    public var replicas: [Replica]
    public var waves: [[String]]
    /// Secrets generated for this run (missing before), by file name, so the command can say so.
    public var generatedSecrets: [String]

    /// - Parameters:
    ///   - stateDirectory: `.orchestrate` (absolute): SQLite files under `data/`, the route table at `routes.json`.
    ///   - addresses: Where replicas bind (127.0.0.x on Linux).
    public static func make(
        spec: Spec, stateDirectory: String, dnsPort: Int, secrets: SecretStore,
        addresses: LoopbackAddresses = .linux
    ) throws -> LocalPlan {
        let topology = Topology(spec)
        guard topology.isAcyclic else {
            throw SupervisorError(.plan, "the dependencies form a cycle; `orchestrate validate` names it")
        }
        var replicas: [Replica] = []
        var generated: [String] = []
        var next = 0
        func secret(name: String, key: String) throws -> String {
            let (value, created) = try secrets.value(name: name, key: key)
            if let created, !generated.contains(created) { generated.append(created) }
            return value
        }
        for node in topology.nodes {
            let service = node.service
            guard let product = service.product?.value else {
                throw SupervisorError(
                    .plan, "\(service.name.value) has `image:` only; `orchestrate up` runs products natively")
            }
            var environment: [String: String] = [ServiceVariable.dnsServer: "127.0.0.1:\(dnsPort)"]
            for entry in node.environment {
                switch entry.source {
                case .value(let value): environment[entry.name] = value
                case .secret(let name, let key):
                    // For the spec's own secrets the supervisor's environment wins, so a developer can pass a real value.
                    let own = entry.origin == "env" ? secrets.environment[entry.name] : nil
                    environment[entry.name] = try own ?? secret(name: name, key: key)
                case .derived(let derivation):
                    environment[entry.name] = localValue(derivation, stateDirectory: stateDirectory)
                }
            }
            for index in 1...max(1, service.effectiveReplicas) {
                let address = try addresses.address(next)
                next += 1
                var own = environment
                own[ServiceVariable.host] = address
                replicas.append(
                    Replica(
                        service: service.name.value, index: index, product: product, address: address,
                        port: service.port?.value, arguments: service.args.map(\.value), environment: own,
                        wave: node.wave, supervision: ReplicaSupervision(node)))
            }
        }
        return LocalPlan(
            project: spec.name.value, replicas: replicas, waves: topology.waves, generatedSecrets: generated)
    }

    /// What a derived variable is under `up`: SQLite files and the event log under the state directory; no
    /// database password (SQLite has none); the bind address is set per replica.
    private static func localValue(_ derivation: Topology.Derivation, stateDirectory: String) -> String? {
        switch derivation {
        case .bindAddress, .databasePassword: return nil
        case .databaseURL(let database): return "sqlite://\(stateDirectory)/data/\(database).sqlite"
        case .brokerURL: return "sqlite://\(stateDirectory)/data/events.sqlite"
        case .routesFile: return "\(stateDirectory)/routes.json"
        case .dependencyURL(let endpoint): return endpoint.url
        }
    }
}

/// The loopback addresses replicas bind. Linux routes all of 127.0.0.0/8 to loopback, so each replica gets its own
/// address and every replica of a service binds the declared port. Elsewhere (macOS has only 127.0.0.1 unless
/// aliases are added) replicas would share 127.0.0.1 on assigned ports, found through SRV: not built yet.
public struct LoopbackAddresses: Sendable {
    let first: Int
    let count: Int

    /// 127.0.0.2 … 127.0.0.254 (127.0.0.1 stays for the supervisor and `localhost` forwards).
    public static let linux = LoopbackAddresses(first: 2, count: 253)

    public func address(_ position: Int) throws -> String {
        guard position < count else {
            throw SupervisorError(.plan, "more than \(count) replicas: 127.0.0.0/24 is full")
        }
        return "127.0.0.\(first + position)"
    }
}
