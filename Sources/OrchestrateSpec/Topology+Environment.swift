import OrchestrateContract

extension Topology {
    /// One variable a service receives, named by the contract (`ServiceVariable`).
    public struct EnvironmentEntry: Sendable, Equatable {
        /// Where the value comes from. Only `derived` values differ between environments.
        public enum Source: Sendable, Equatable {
            /// The same text everywhere.
            case value(String)
            /// A secret's key: a file in compose, a `secretKeyRef` in Kubernetes, `.orchestrate/secrets` under `up`.
            case secret(name: String, key: String)
            /// A value each environment supplies in its own way.
            case derived(Derivation)
        }

        public var name: String
        public var source: Source
        /// The spec field that sets it (`port`, `database`, `dependsOn`, `broker`, `gateway`, `gateway.jwt`, `env`):
        /// what a diagnostic tells a user to change instead.
        public var origin: String

        /// Whether the variable may also arrive as `NAME_FILE`, as secrets do in compose.
        public var mayArriveAsFile: Bool {
            switch source {
            case .secret: return true
            case .derived(.databaseURL), .derived(.databasePassword), .derived(.brokerURL), .derived(.brokerPassword):
                return true
            case .value, .derived: return false
            }
        }
    }

    /// The values an environment supplies for itself.
    public enum Derivation: Sendable, Equatable {
        /// Where to listen: `0.0.0.0` in a container, the replica's address under `up`.
        case bindAddress
        /// The URL of the database the service owns.
        case databaseURL(database: String)
        /// The password of that database (a generated secret in compose and Kubernetes; none under `up`).
        case databasePassword(database: String)
        /// The URL of the broker the spec deploys.
        case brokerURL
        /// Its password (a generated secret in compose and Kubernetes and under `--infra native`).
        case brokerPassword
        /// Where the gateway's route table is.
        case routesFile
        /// A dependency's base URL.
        case dependencyURL(Endpoint)
    }

    /// Variables the runtime sets beside the spec's: no spec may set them.
    public static let runtimeVariables: [String] = [
        ServiceVariable.host, ServiceVariable.dnsServer, ServiceVariable.otlpEndpoint,
    ]

    /// Whether orchestrate could set a variable of this name for some service: one the runtime sets, one
    /// `environment(of:in:)` writes by a fixed name, or any `…_URL` or `…_FILE`. Most names a spec sets are none of
    /// these, and for them the validator's reserved-name rule need not derive the environment at all
    /// (ReservedEnvironmentTests holds every derived name to this).
    public static func mayBeSetByOrchestrate(_ name: String) -> Bool {
        // Byte comparisons: String.hasSuffix compares Characters, and this runs for every variable of every service.
        func ends(with suffix: String) -> Bool { name.utf8.suffix(suffix.utf8.count).elementsEqual(suffix.utf8) }
        return ends(with: ServiceVariable.urlSuffix) || ends(with: ServiceVariable.fileSuffix)
            || fixedNames.contains(name)
    }

    private static let fixedNames: Set<String> = Set(
        runtimeVariables + [
            ServiceVariable.port, ServiceVariable.databasePassword, ServiceVariable.brokerPassword,
            ServiceVariable.jwtSecret, ServiceVariable.metricsPort,
            ServiceVariable.jwtAlgorithm, ServiceVariable.jwtIssuer, ServiceVariable.jwtAudience,
        ])

    /// Everything `service` receives: first what orchestrate derives from the spec, then the spec's own `env`.
    /// Works on a spec that has not validated too (unknown dependencies are left out), so the validator's
    /// reserved-name rule can ask it.
    public static func environment(of service: Service, in spec: Spec) -> [EnvironmentEntry] {
        typealias V = ServiceVariable
        var entries = [EnvironmentEntry(name: V.host, source: .derived(.bindAddress), origin: "the runtime")]
        if let port = service.port {
            entries.append(.init(name: V.port, source: .value(String(port.value)), origin: "port"))
        }
        if let database = service.database {
            if let external = database.external {
                entries.append(.init(name: V.databaseURL, source: secret(external), origin: "database"))
            } else {
                let name = database.name.value
                entries.append(
                    .init(name: V.databaseURL, source: .derived(.databaseURL(database: name)), origin: "database"))
                entries.append(
                    .init(
                        name: V.databasePassword, source: .derived(.databasePassword(database: name)),
                        origin: "database"))
            }
        }
        for endpoint in dependencies(of: service, in: spec) {
            entries.append(
                .init(
                    name: V.url(of: endpoint.service), source: .derived(.dependencyURL(endpoint)), origin: "dependsOn"))
        }
        if let broker = spec.broker {
            entries.append(
                .init(name: V.brokerURL, source: broker.external.map(secret) ?? .derived(.brokerURL), origin: "broker"))
            // Only services that use events get the password: the others have no business on the broker.
            if broker.external == nil, !service.publishes.isEmpty || !service.subscribes.isEmpty {
                entries.append(.init(name: V.brokerPassword, source: .derived(.brokerPassword), origin: "broker"))
            }
        }
        if let gateway = spec.gateway, gateway.service.value == service.name.value {
            entries.append(.init(name: V.routesFile, source: .derived(.routesFile), origin: "gateway"))
            if let metricsPort = gatewayMetricsPort(of: service) {
                entries.append(.init(name: V.metricsPort, source: .value(String(metricsPort)), origin: "builtin"))
            }
            if let jwt = gateway.jwt {
                entries.append(.init(name: V.jwtSecret, source: secret(jwt.secret), origin: "gateway.jwt"))
                entries.append(
                    .init(name: V.jwtAlgorithm, source: .value(jwt.algorithm.value.rawValue), origin: "gateway.jwt"))
                if let issuer = jwt.issuer {
                    entries.append(.init(name: V.jwtIssuer, source: .value(issuer.value), origin: "gateway.jwt"))
                }
                if let audience = jwt.audience {
                    entries.append(.init(name: V.jwtAudience, source: .value(audience.value), origin: "gateway.jwt"))
                }
            }
        }
        for variable in service.env {
            switch variable.value {
            case .plain(let text): entries.append(.init(name: variable.name.value, source: .value(text), origin: "env"))
            case .secret(let reference):
                entries.append(.init(name: variable.name.value, source: secret(reference), origin: "env"))
            }
        }
        return entries
    }

    /// The port where the built-in gateway serves `/metrics`; nil for any other service, which serves it on its own
    /// port.
    public static func gatewayMetricsPort(of service: Service) -> Int? {
        guard service.builtin?.value == .gateway else { return nil }
        let port = ServiceVariable.defaultMetricsPort
        return service.port?.value == port ? port + 1 : port
    }

    static func secret(_ reference: SecretReference) -> EnvironmentEntry.Source {
        .secret(name: reference.name.value, key: reference.key?.value ?? SecretReference.defaultKey)
    }
}
