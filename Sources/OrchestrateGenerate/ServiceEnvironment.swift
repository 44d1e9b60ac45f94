import OrchestrateSpec

/// The environment one service gets in a deployment: what orchestrate derives from the spec (`PORT`,
/// `DATABASE_URL`, `<DEP>_URL`, `BROKER_URL`, the gateway's key and routes) followed by the spec's own `env`.
///
/// The same list feeds compose and Kubernetes, so both environments give a service the same variables; only
/// how a secret arrives differs (a file under `/run/secrets` in compose, a `secretKeyRef` in Kubernetes).
struct ServiceEnvironment {
    struct Entry: Equatable {
        enum Source: Equatable {
            case value(String)
            case secret(name: String, key: String)
        }

        var name: String
        var source: Source
    }

    let entries: [Entry]

    /// Where the gateway finds its route table inside the container.
    static let routesPath = "/etc/orchestrate/routes.json"

    init(service: Service, spec: Spec) {
        var entries: [Entry] = [Entry(name: "HOST", source: .value("0.0.0.0"))]
        if let port = service.port { entries.append(Entry(name: "PORT", source: .value(String(port.value)))) }
        if let database = service.database {
            if let external = database.external {
                entries.append(Entry(name: "DATABASE_URL", source: Self.secret(external)))
            } else {
                let name = database.name.value
                entries.append(
                    Entry(name: "DATABASE_URL", source: .value("postgres://\(name)@\(Self.databaseHost(name)):5432/\(name)")))
                entries.append(
                    Entry(
                        name: "DATABASE_PASSWORD",
                        source: .secret(name: Self.databasePasswordSecret(name), key: SecretReference.defaultKey)))
            }
        }
        for dependency in service.dependsOn {
            guard let target = spec.service(named: dependency.value), let port = target.port else { continue }
            entries.append(
                Entry(
                    name: Service.urlVariable(for: dependency.value),
                    source: .value("http://\(dependency.value):\(port.value)")))
        }
        if let broker = spec.broker {
            if let external = broker.external {
                entries.append(Entry(name: "BROKER_URL", source: Self.secret(external)))
            } else {
                entries.append(Entry(name: "BROKER_URL", source: .value("redis://redis:6379")))
            }
        }
        if let gateway = spec.gateway, gateway.service.value == service.name.value {
            entries.append(Entry(name: "ROUTES_FILE", source: .value(Self.routesPath)))
            if let jwt = gateway.jwt {
                entries.append(Entry(name: "JWT_SECRET", source: Self.secret(jwt.secret)))
                entries.append(Entry(name: "JWT_ALGORITHM", source: .value(jwt.algorithm.value.rawValue)))
                if let issuer = jwt.issuer { entries.append(Entry(name: "JWT_ISSUER", source: .value(issuer.value))) }
                if let audience = jwt.audience {
                    entries.append(Entry(name: "JWT_AUDIENCE", source: .value(audience.value)))
                }
            }
        }
        for variable in service.env {
            switch variable.value {
            case .plain(let text): entries.append(Entry(name: variable.name.value, source: .value(text)))
            case .secret(let reference): entries.append(Entry(name: variable.name.value, source: Self.secret(reference)))
            }
        }
        self.entries = entries
    }

    private static func secret(_ reference: SecretReference) -> Entry.Source {
        .secret(name: reference.name.value, key: reference.key?.value ?? SecretReference.defaultKey)
    }

    var plain: [(name: String, value: String)] {
        entries.compactMap { entry in
            guard case .value(let value) = entry.source else { return nil }
            return (entry.name, value)
        }
    }

    var secrets: [(name: String, secret: String, key: String)] {
        entries.compactMap { entry in
            guard case .secret(let secret, let key) = entry.source else { return nil }
            return (entry.name, secret, key)
        }
    }

    /// The host name of a database's PostgreSQL server in compose and Kubernetes.
    static func databaseHost(_ database: String) -> String { database + "-postgres" }

    /// The secret holding a database's password, shared by its server and its owner.
    static func databasePasswordSecret(_ database: String) -> String { database + "-db-password" }

    /// The compose secret that carries one key of a secret: the secret's name for the default key.
    static func composeSecretName(secret: String, key: String) -> String {
        key == SecretReference.defaultKey ? secret : secret + "." + key
    }
}
