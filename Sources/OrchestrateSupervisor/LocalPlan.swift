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
    }

    public var project: String
    public var replicas: [Replica]
    public var waves: [[String]]
    /// Secrets generated for this run (missing before), by file name, so the command can say so.
    public var generatedSecrets: [String]

    public struct PlanError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// - Parameters:
    ///   - stateDirectory: `.orchestrate` (absolute): SQLite files under `data/`, the route table at `routes.json`.
    ///   - addresses: Where replicas bind (127.0.0.x on Linux).
    public static func make(
        spec: Spec, stateDirectory: String, dnsPort: Int, secrets: SecretStore,
        addresses: LoopbackAddresses = .linux
    ) throws -> LocalPlan {
        guard let waves = ServiceGraph(spec).startWaves() else {
            throw PlanError(description: "the dependencies form a cycle; `orchestrate validate` names it")
        }
        let waveOf = Dictionary(uniqueKeysWithValues: waves.enumerated().flatMap { wave, names in names.map { ($0, wave) } })
        var replicas: [Replica] = []
        var generated: [String] = []
        var next = 0
        func secret(_ reference: SecretReference) throws -> String {
            let (value, created) = try secrets.value(name: reference.name.value, key: reference.key?.value)
            if let created, !generated.contains(created) { generated.append(created) }
            return value
        }
        for service in spec.services {
            guard let product = service.product?.value else {
                throw PlanError(
                    description: "\(service.name.value) has `image:` only; `orchestrate up` runs products natively")
            }
            var environment: [String: String] = ["ORCHESTRATE_DNS": "127.0.0.1:\(dnsPort)"]
            if let port = service.port { environment["PORT"] = String(port.value) }
            if let database = service.database {
                environment["DATABASE_URL"] = try database.external.map(secret)
                    ?? "sqlite://\(stateDirectory)/data/\(database.name.value).sqlite"
            }
            for dependency in service.dependsOn {
                guard let port = spec.service(named: dependency.value)?.port else { continue }
                environment[Service.urlVariable(for: dependency.value)] = "http://\(dependency.value):\(port.value)"
            }
            if let broker = spec.broker {
                environment["BROKER_URL"] = try broker.external.map(secret) ?? "sqlite://\(stateDirectory)/data/events.sqlite"
            }
            if let gateway = spec.gateway, gateway.service.value == service.name.value {
                environment["ROUTES_FILE"] = "\(stateDirectory)/routes.json"
                if let jwt = gateway.jwt {
                    environment["JWT_SECRET"] = try secret(jwt.secret)
                    environment["JWT_ALGORITHM"] = jwt.algorithm.value.rawValue
                    environment["JWT_ISSUER"] = jwt.issuer?.value
                    environment["JWT_AUDIENCE"] = jwt.audience?.value
                }
            }
            for variable in service.env {
                switch variable.value {
                case .plain(let text): environment[variable.name.value] = text
                case .secret(let reference):
                    // The supervisor's own environment wins, so a developer can pass a real value.
                    environment[variable.name.value] = try secrets.environment[variable.name.value] ?? secret(reference)
                }
            }
            for index in 1...max(1, service.effectiveReplicas) {
                let address = try addresses.address(next)
                next += 1
                var own = environment
                own["HOST"] = address
                replicas.append(
                    Replica(
                        service: service.name.value, index: index, product: product, address: address,
                        port: service.port?.value, arguments: service.args.map(\.value), environment: own,
                        wave: waveOf[service.name.value] ?? 0))
            }
        }
        return LocalPlan(project: spec.name.value, replicas: replicas, waves: waves, generatedSecrets: generated)
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
            throw LocalPlan.PlanError(description: "more than \(count) replicas: 127.0.0.0/24 is full")
        }
        return "127.0.0.\(first + position)"
    }
}
