/// One service of the system: how it is built and run, what it owns, what it talks to.
///
/// Read-only once decoded. Its fields live in one shared object, so copying a service — every rule and every
/// generator walks them all — is a single retain instead of one per field.
public struct Service: Sendable {
    /// The fields as the decoder fills them in.
    struct Fields: Sendable {
        var name: Located<String>
        /// The SwiftPM executable product that is the service (built by `orchestrate up` and by the Dockerfile).
        var product: Located<String>?
        /// A prebuilt image to run instead of building `product`.
        var image: Located<String>?
        /// How `orchestrate up` runs a service that is not a product: the program, then its arguments.
        var command: [Located<String>]
        /// A program of orchestrate's own that the service is (`builtin: gateway`).
        var builtin: Located<BuiltinProgram>?
        var port: Located<Int>?
        /// Whether the service is published outside the system (compose ports, `localhost:PORT` locally).
        var isPublic: Located<Bool>?
        var replicas: Located<Int>?
        var autoscaling: Autoscaling?
        /// Arguments passed to the product after its name (compose `command`, Kubernetes `args`).
        var args: [Located<String>]
        var env: [EnvironmentVariable]
        var database: Database?
        var dependsOn: [Located<String>]
        var publishes: [Located<String>]
        var subscribes: [Located<String>]
        var probes: Probes
        var routes: [Route]
        var resources: Resources?
        var restart: Located<RestartPolicy>?
        /// How long the service gets between SIGTERM and SIGKILL.
        var stopGracePeriod: Located<SpecDuration>?
        /// Whether `orchestrate up --watch` rebuilds and swaps it when its files change (default true).
        var watch: Located<Bool>?
        var location: SourceLocation
    }

    private final class Storage: Sendable {
        let fields: Fields

        init(_ fields: Fields) {
            self.fields = fields
        }
    }

    private let storage: Storage

    init(_ fields: Fields) {
        storage = Storage(fields)
    }

    public var name: Located<String> { storage.fields.name }
    /// The SwiftPM executable product that is the service (built by `orchestrate up` and by the Dockerfile).
    public var product: Located<String>? { storage.fields.product }
    /// A prebuilt image to run instead of building `product`.
    public var image: Located<String>? { storage.fields.image }
    /// How `orchestrate up` runs a service that is not a SwiftPM product (with `image` for compose and Kubernetes):
    /// the program, found on PATH or relative to the spec's directory, then its arguments. Empty for a product.
    public var command: [Located<String>] { storage.fields.command }
    /// A program of orchestrate's own that the service is, instead of a product, an image or a command:
    /// `builtin: gateway` runs orchestrate's gateway (its binary beside `orchestrate` under `up`, its image in
    /// compose and Kubernetes).
    public var builtin: Located<BuiltinProgram>? { storage.fields.builtin }
    public var port: Located<Int>? { storage.fields.port }
    /// Whether the service is published outside the system (compose ports, `localhost:PORT` locally).
    public var isPublic: Located<Bool>? { storage.fields.isPublic }
    public var replicas: Located<Int>? { storage.fields.replicas }
    public var autoscaling: Autoscaling? { storage.fields.autoscaling }
    /// Arguments passed to the product after its name (compose `command`, Kubernetes `args`).
    public var args: [Located<String>] { storage.fields.args }
    public var env: [EnvironmentVariable] { storage.fields.env }
    public var database: Database? { storage.fields.database }
    public var dependsOn: [Located<String>] { storage.fields.dependsOn }
    public var publishes: [Located<String>] { storage.fields.publishes }
    public var subscribes: [Located<String>] { storage.fields.subscribes }
    public var probes: Probes { storage.fields.probes }
    public var routes: [Route] { storage.fields.routes }
    public var resources: Resources? { storage.fields.resources }
    public var restart: Located<RestartPolicy>? { storage.fields.restart }
    /// How long the service gets between SIGTERM and SIGKILL.
    public var stopGracePeriod: Located<SpecDuration>? { storage.fields.stopGracePeriod }
    /// Whether `orchestrate up --watch` rebuilds and swaps it when its files change (default true).
    public var watch: Located<Bool>? { storage.fields.watch }
    public var location: SourceLocation { storage.fields.location }

    /// `watch`, defaulted: true unless the service opted out.
    public var watches: Bool { watch?.value ?? true }
    public var effectiveReplicas: Int { replicas?.value ?? 1 }
    public var effectiveRestart: RestartPolicy { restart?.value ?? .always }
    public var effectiveStopGracePeriod: SpecDuration { stopGracePeriod?.value ?? SpecDuration(milliseconds: 10_000) }
    public var isPublished: Bool { isPublic?.value ?? false }

}

/// A program that comes with orchestrate, which a service can be without a product of its own.
public enum BuiltinProgram: String, Sendable, CaseIterable {
    /// The API gateway: routes, JWT, rate limits from the spec's `routes` and `gateway`.
    case gateway
}

/// Whether and how a stopped process is started again.
public enum RestartPolicy: String, Sendable, CaseIterable {
    case always
    case onFailure = "on-failure"
    case never
}

/// Horizontal scaling between bounds on CPU use (an `autoscaling/v2` HPA in Kubernetes).
public struct Autoscaling: Sendable {
    public var minReplicas: Located<Int>
    public var maxReplicas: Located<Int>
    /// Target average CPU utilisation, in percent of the CPU request.
    public var targetCPUUtilization: Located<Int>
    public var location: SourceLocation

    public static let defaultTargetCPUUtilization = 80
}

/// An environment variable: a plain value, or a reference to a secret.
public struct EnvironmentVariable: Sendable {
    public enum Value: Sendable {
        case plain(String)
        case secret(SecretReference)
    }

    public var name: Located<String>
    public var value: Value
    public var valueLocation: SourceLocation
}

/// The database a service owns alone.
public struct Database: Sendable {
    public enum Engine: String, Sendable, CaseIterable {
        case postgres
    }

    public var engine: Located<Engine>
    public var name: Located<String>
    /// The size of the volume that holds the data (a PVC in Kubernetes).
    public var storage: Located<Quantity>?
    /// When set, the database runs elsewhere and its URL comes from this secret; nothing is deployed for it.
    public var external: SecretReference?
    public var location: SourceLocation

    public static let defaultStorage = Quantity(text: "1Gi", value: 1_073_741_824)
}

/// The three probes of a service. A service with a port and no probes gets `/health` and `/ready`.
public struct Probes: Sendable {
    public var liveness: Probe?
    public var readiness: Probe?
    public var startup: Probe?

    public init(liveness: Probe? = nil, readiness: Probe? = nil, startup: Probe? = nil) {
        self.liveness = liveness
        self.readiness = readiness
        self.startup = startup
    }
}

/// One health check: what to ask, how often, and how many answers change the verdict.
public struct Probe: Sendable {
    public enum Check: Sendable, Equatable {
        case http(path: String)
        case tcp(port: Int)
        case command([String])
    }

    public var check: Located<Check>
    public var interval: SpecDuration
    public var timeout: SpecDuration
    public var initialDelay: SpecDuration
    public var failureThreshold: Int
    public var successThreshold: Int
    public var location: SourceLocation

    public static let defaultInterval = SpecDuration(milliseconds: 10_000)
    public static let defaultTimeout = SpecDuration(milliseconds: 1_000)
    public static let defaultFailureThreshold = 3
}

/// A path prefix the gateway forwards to this service.
public struct Route: Sendable {
    public enum Auth: String, Sendable, CaseIterable {
        case none
        case jwt
    }

    public var prefix: Located<String>
    /// What replaces the prefix upstream (`/api/users/7` → `/users/7` with `rewrite: /users`).
    public var rewrite: Located<String>?
    /// The methods allowed; all when empty.
    public var methods: [Located<String>]
    public var auth: Located<Auth>?
    public var rateLimit: RateLimit?
    public var timeout: Located<SpecDuration>?
    public var maxBodySize: Located<Quantity>?
    public var location: SourceLocation

    public var effectiveAuth: Auth { auth?.value ?? .none }

    public static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
}

/// A token bucket per client: `rps` tokens a second, at most `burst` saved up.
public struct RateLimit: Sendable {
    public var requestsPerSecond: Located<Int>
    public var burst: Located<Int>?
    public var location: SourceLocation

    public var effectiveBurst: Int { burst?.value ?? requestsPerSecond.value }
}

/// CPU, memory and ephemeral-storage requests and limits, as Kubernetes quantities.
public struct Resources: Sendable {
    public var cpu: Located<Quantity>?
    public var memory: Located<Quantity>?
    public var ephemeralStorage: Located<Quantity>?
    public var cpuLimit: Located<Quantity>?
    public var memoryLimit: Located<Quantity>?
    public var ephemeralStorageLimit: Located<Quantity>?
    public var location: SourceLocation

    public init(location: SourceLocation) {
        self.location = location
    }
}
