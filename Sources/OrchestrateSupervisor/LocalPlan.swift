import Foundation
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
        /// Where it runs: the spec's directory for a `command:` service; nil inherits the supervisor's.
        public var workingDirectory: String? = nil
        /// What it sees as /etc/hosts (see `LocalPlan.Naming`); nil leaves the machine's.
        public var hostsFile: String? = nil
        /// Its probes, restart policy, grace period and what it waits for.
        public var supervision = ReplicaSupervision()
    }

    /// How a dependent reaches a service under `up`: its name or its stable address, and either way a forwarder at
    /// that address that spreads connections over the ready replicas, as a Kubernetes Service does.
    public enum Naming: Sendable, Equatable {
        /// `<DEP>_URL` is `http://NAME:PORT`: every replica sees a hosts file (in its own mount namespace) that
        /// gives each service name its stable address.
        case hostsFile(String)
        /// `<DEP>_URL` is `http://127.0.2.N:PORT`: where a private hosts file cannot be had.
        case addresses
    }

    public var project: String
    /// Each service with a port, by name: its stable address (127.0.2.N), where its forwarder listens.
    public var serviceAddresses: [String: String]
    public var replicas: [Replica]
    public var waves: [[String]]

    /// Each service with a stable address, with that address and its port, in address order (spec order).
    public var serviceEndpoints: [(service: String, address: String, port: Int)] {
        serviceAddresses.sorted { $0.value.compare($1.value, options: .numeric) == .orderedAscending }
            .compactMap { service, address in
                replicas.first { $0.service == service }?.port.map { (service, address, $0) }
            }
    }
    /// Secrets generated for this run (missing before), by file name, so the command can say so.
    public var generatedSecrets: [String]

    /// - Parameters:
    ///   - stateDirectory: `.orchestrate` (absolute): SQLite files under `data/`, the route table at `routes.json`.
    ///   - addresses: Where replicas bind (127.0.0.x on Linux).
    ///   - projectDirectory: The spec's directory: where a `command:` service runs, and what a relative program
    ///     path in it is relative to.
    ///   - naming: How dependents reach services; nil: by name, with `stateDirectory/hosts`.
    ///   - searchPath: Where a `command:` program without a slash is looked for (`PATH`).
    ///   - builtinGateway: The built-in gateway's binary, for a `builtin: gateway` service.
    ///   - keeping: Stable addresses services already have (a spec changed under `up --watch`): each keeps its
    ///     own, and a new service takes the lowest free one.
    public static func make(
        spec: Spec, stateDirectory: String, dnsPort: Int, secrets: SecretStore,
        addresses: LoopbackAddresses = .linux, projectDirectory: String = ".", naming: Naming? = nil,
        searchPath: String = "/usr/local/bin:/usr/bin:/bin", builtinGateway: String? = nil,
        keeping kept: [String: String] = [:]
    ) throws -> LocalPlan {
        let topology = Topology(spec)
        guard topology.isAcyclic else {
            throw SupervisorError(.plan, "the dependencies form a cycle; `orchestrate validate` names it")
        }
        let naming = naming ?? .hostsFile(stateDirectory + "/hosts")
        let withEndpoints = topology.nodes.filter { $0.endpoint != nil }.map(\.name)
        var serviceAddresses = kept.filter { withEndpoints.contains($0.key) }
        var position = 0
        for name in withEndpoints where serviceAddresses[name] == nil {
            var address = try ServiceAddresses.address(position)
            while serviceAddresses.values.contains(address) {
                position += 1
                address = try ServiceAddresses.address(position)
            }
            serviceAddresses[name] = address
            position += 1
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
            let program: Program
            if let product = service.product?.value {
                program = Program(name: product, executable: nil, arguments: [], workingDirectory: nil)
            } else if service.builtin?.value == .gateway {
                guard let builtinGateway else {
                    throw SupervisorError(
                        .plan,
                        "\(service.name.value) is the built-in gateway, which is not beside orchestrate: install both with scripts/install, or build it in orchestrate's package (swift build --product APIGateway)"
                    )
                }
                program = Program(
                    name: OrchestrateVersion.gatewayExecutable, executable: builtinGateway, arguments: [],
                    workingDirectory: nil)
            } else if let first = service.command.first?.value {
                program = Program(
                    name: first,
                    executable: try CommandLookup.find(first, in: projectDirectory, searchPath: searchPath),
                    arguments: service.command.dropFirst().map(\.value), workingDirectory: projectDirectory)
            } else {
                throw SupervisorError(
                    .plan,
                    "\(service.name.value) has `image:` only; `orchestrate up` runs a `product:` it builds or a `command:`"
                )
            }
            var environment: [String: String] = [ServiceVariable.dnsServer: "127.0.0.1:\(dnsPort)"]
            for entry in node.environment {
                switch entry.source {
                case .value(let value): environment[entry.name] = value
                case .secret(let name, let key):
                    // For the spec's own secrets the supervisor's environment wins, so a developer can pass a real value.
                    let own = entry.origin == "env" ? secrets.environment[entry.name] : nil
                    environment[entry.name] = try own ?? secret(name: name, key: key)
                case .derived(.dependencyURL(let endpoint)):
                    let host =
                        naming == .addresses ? serviceAddresses[endpoint.service] ?? endpoint.service : endpoint.service
                    environment[entry.name] = "http://\(host):\(endpoint.port)"
                case .derived(let derivation):
                    environment[entry.name] = localValue(derivation, stateDirectory: stateDirectory)
                }
            }
            for index in 1...max(1, service.effectiveReplicas) {
                let address = try addresses.address(next)
                next += 1
                var own = environment
                own[ServiceVariable.host] = address
                var replica = Replica(
                    service: service.name.value, index: index, product: program.name, address: address,
                    port: service.port?.value, arguments: program.arguments + service.args.map(\.value),
                    environment: own, wave: node.wave, executable: program.executable,
                    supervision: ReplicaSupervision(node))
                replica.workingDirectory = program.workingDirectory
                if case .hostsFile(let path) = naming { replica.hostsFile = path }
                replicas.append(replica)
            }
        }
        return LocalPlan(
            project: spec.name.value, serviceAddresses: serviceAddresses, replicas: replicas, waves: topology.waves,
            generatedSecrets: generated)
    }

    /// What a derived variable is under `up`: SQLite files and the event log under the state directory; no
    /// database password (SQLite has none); the bind address is set per replica.
    private static func localValue(_ derivation: Topology.Derivation, stateDirectory: String) -> String? {
        switch derivation {
        // The embedded event log has no password; `--infra native` sets one for its Redis.
        case .bindAddress, .databasePassword, .brokerPassword: return nil
        case .databaseURL(let database): return "sqlite://\(stateDirectory)/data/\(database).sqlite"
        case .brokerURL: return "sqlite://\(stateDirectory)/data/events.sqlite"
        case .routesFile: return "\(stateDirectory)/routes.json"
        case .dependencyURL(let endpoint): return endpoint.url
        }
    }

    /// What a replica runs: a product (found in the products directory) or a command's program.
    private struct Program {
        var name: String
        var executable: String?
        var arguments: [String]
        var workingDirectory: String?
    }
}

/// The stable addresses of services under `up`, one per service with a port, as a ClusterIP is: 127.0.2.1 … 254.
/// Replicas are on 127.0.0.0/24, so the two never meet.
public enum ServiceAddresses {
    public static func address(_ position: Int) throws(SupervisorError) -> String {
        guard position < 254 else {
            throw SupervisorError(.plan, "more than 254 services with ports: 127.0.2.0/24 is full")
        }
        return "127.0.2.\(position + 1)"
    }
}

/// Finds a `command:` program as a shell would: a name with a slash relative to the spec's directory, any other
/// on the search path. The result is absolute, so the process runs what was found.
enum CommandLookup {
    static func find(_ program: String, in projectDirectory: String, searchPath: String) throws(SupervisorError)
        -> String
    {
        if program.contains("/") {
            let path = program.hasPrefix("/") ? program : projectDirectory + "/" + program
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw SupervisorError(.plan, "cannot run \(program): \(path) is not an executable file")
            }
            return path
        }
        for directory in searchPath.split(separator: ":", omittingEmptySubsequences: true) {
            let path = "\(directory)/\(program)"
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isExecutableFile(atPath: path)
            {
                return path.hasPrefix("/") ? path : projectDirectory + "/" + path
            }
        }
        throw SupervisorError(.plan, "cannot run \(program): it is not on PATH (\(searchPath))")
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
