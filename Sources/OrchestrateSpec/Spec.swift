/// A whole `services.yaml`: the system's name, how its images are named, its broker, its gateway settings and
/// its services, in the order they were written.
public struct Spec: Sendable {
    public var version: Located<Int>
    public var name: Located<String>
    public var images: ImageSettings
    public var broker: Broker?
    public var gateway: GatewaySettings?
    public var services: [Service] {
        didSet { indexByName = Self.index(services) }
    }
    /// Where each service is in `services`, so `service(named:)` does not scan; kept current by `services`.
    private var indexByName: [String: Int]

    public init(
        version: Located<Int>, name: Located<String>, images: ImageSettings, broker: Broker?,
        gateway: GatewaySettings?, services: [Service]
    ) {
        self.version = version
        self.name = name
        self.images = images
        self.broker = broker
        self.gateway = gateway
        self.services = services
        self.indexByName = Self.index(services)
    }

    /// The service with this name, if there is one (the first, in a spec that names two alike).
    public func service(named name: String) -> Service? {
        indexByName[name].map { services[$0] }
    }

    private static func index(_ services: [Service]) -> [String: Int] {
        var index: [String: Int] = [:]
        index.reserveCapacity(services.count)
        for (position, service) in services.enumerated() where index[service.name.value] == nil {
            index[service.name.value] = position
        }
        return index
    }
}

/// How container images are named: `REGISTRY/SERVICE:TAG`.
public struct ImageSettings: Sendable {
    public var registry: Located<String>?
    /// The tag every image gets; pinned, because `latest` makes a rollout unrepeatable.
    public var tag: Located<String>
    public var pullPolicy: Located<PullPolicy>?

    public enum PullPolicy: String, Sendable, CaseIterable {
        case always = "Always"
        case ifNotPresent = "IfNotPresent"
        case never = "Never"
    }

    public static let defaultTag = "0.1.0"
}

/// The message broker events travel on in compose and Kubernetes.
public struct Broker: Sendable {
    public enum Engine: String, Sendable, CaseIterable {
        case redis
    }

    public var engine: Located<Engine>
    /// When set, the broker runs elsewhere and its URL comes from this secret; nothing is deployed for it.
    public var external: SecretReference?
    public var location: SourceLocation
}

/// What the API gateway needs beyond its routes: which service it is, and how it checks tokens.
public struct GatewaySettings: Sendable {
    public var service: Located<String>
    public var jwt: JWTSettings?
    /// The upstream timeout for routes that set none.
    public var timeout: Located<SpecDuration>
    /// The largest request body for routes that set none.
    public var maxBodySize: Located<Quantity>
    public var location: SourceLocation

    public static let defaultTimeout = SpecDuration(milliseconds: 5_000)
    public static let defaultMaxBodySize = Quantity(text: "1Mi", value: 1_048_576)
}

/// How the gateway verifies bearer tokens on routes with `auth: jwt`.
public struct JWTSettings: Sendable {
    public enum Algorithm: String, Sendable, CaseIterable {
        case hs256 = "HS256"
        case rs256 = "RS256"
    }

    /// The secret holding the HS256 key or the RS256 public key.
    public var secret: SecretReference
    public var algorithm: Located<Algorithm>
    public var issuer: Located<String>?
    public var audience: Located<String>?
    /// The claim that holds the token's roles (`roles` when unset); a dotted path reaches into objects
    /// (`realm_access.roles`).
    public var rolesClaim: Located<String>?
    public var location: SourceLocation
}

/// A value that lives in a secret store, never in the spec: `{ secret: NAME, key: KEY }`.
public struct SecretReference: Sendable, Hashable {
    public var name: Located<String>
    /// The key inside the secret; defaults to `value`.
    public var key: Located<String>?
    public var location: SourceLocation

    public static let defaultKey = "value"
}
