import OrchestrateContract
import OrchestrateSpec

/// The environment one service gets in a container: the topology's entries, with the values a container
/// deployment supplies (`0.0.0.0`, the database's and broker's host names, the route table's mount path).
///
/// The same list feeds compose and Kubernetes, so both give a service the same variables; only how a secret
/// arrives differs (a file under `/run/secrets` in compose, a `secretKeyRef` in Kubernetes).
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

    init(_ node: Topology.Node) {
        entries = node.environment.map { entry in
            switch entry.source {
            case .value(let value): return Entry(name: entry.name, source: .value(value))
            case .secret(let name, let key): return Entry(name: entry.name, source: .secret(name: name, key: key))
            case .derived(let derivation): return Entry(name: entry.name, source: Self.containerValue(derivation))
            }
        }
    }

    /// What a derived variable is in a container.
    private static func containerValue(_ derivation: Topology.Derivation) -> Entry.Source {
        switch derivation {
        case .bindAddress: return .value("0.0.0.0")
        case .databaseURL(let name): return .value("postgres://\(name)@\(databaseHost(name)):5432/\(name)")
        case .databasePassword(let name):
            return .secret(name: databasePasswordSecret(name), key: SecretReference.defaultKey)
        case .brokerURL: return .value("redis://redis:6379")
        case .brokerPassword: return .secret(name: brokerPasswordSecret, key: SecretReference.defaultKey)
        case .routesFile: return .value(RouteTableFile.containerPath)
        case .dependencyURL(let endpoint): return .value(endpoint.url)
        }
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

    /// The secret holding the broker's password, shared by Redis and the services that publish or subscribe.
    static let brokerPasswordSecret = "redis-password"

    /// The compose secret that carries one key of a secret: the secret's name for the default key.
    static func composeSecretName(secret: String, key: String) -> String {
        key == SecretReference.defaultKey ? secret : secret + "." + key
    }
}
