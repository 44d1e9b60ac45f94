/// The environment variables orchestrate gives a service, in compose, Kubernetes and under `orchestrate up` alike.
///
/// This is the contract a service follows to fit (docs/contract.md describes it for people): every name that a
/// generator writes, the supervisor sets, the validator reserves or a service reads is spelled here and nowhere
/// else.
public enum ServiceVariable {
    /// The address to listen on: `0.0.0.0` in a container, the replica's own loopback address under `up`.
    public static let host = "HOST"
    /// The port to listen on, from the service's `port:`.
    public static let port = "PORT"
    /// `postgres://USER@HOST:PORT/DB` (compose, Kubernetes, `up --infra native`) or `sqlite://PATH` (`up`).
    public static let databaseURL = "DATABASE_URL"
    /// The database password, when the URL does not carry one (a secret).
    public static let databasePassword = "DATABASE_PASSWORD"
    /// `redis://HOST:PORT` or `sqlite://PATH` (the embedded event log under `up`), when the spec has a broker.
    public static let brokerURL = "BROKER_URL"
    /// The broker's password (Redis `requirepass`), or `BROKER_PASSWORD_FILE`; a password in `BROKER_URL` wins.
    public static let brokerPassword = "BROKER_PASSWORD"
    /// The gateway's route table (a `RouteTableFile` as JSON).
    public static let routesFile = "ROUTES_FILE"
    /// The gateway's key for HS256 tokens (a secret).
    public static let jwtSecret = "JWT_SECRET"
    /// The gateway's PEM public key for RS256 tokens (a secret).
    public static let jwtPublicKey = "JWT_PUBLIC_KEY"
    public static let jwtAlgorithm = "JWT_ALGORITHM"
    public static let jwtIssuer = "JWT_ISSUER"
    public static let jwtAudience = "JWT_AUDIENCE"
    /// The port of the built-in gateway's second listener, on the same host, which serves `/metrics`, `/health` and
    /// `/ready`: the public port never serves `/metrics`. Without it, the gateway serves no metrics.
    public static let metricsPort = "METRICS_PORT"
    /// The `METRICS_PORT` orchestrate gives the built-in gateway (or the next port, when the gateway's own is this).
    public static let defaultMetricsPort = 9100
    /// `HOST:PORT` of the supervisor's DNS server under `orchestrate up`.
    public static let dnsServer = "ORCHESTRATE_DNS"
    /// Where OpenTelemetry data goes.
    public static let otlpEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
    /// The shared token of service-to-service calls.
    public static let internalToken = "INTERNAL_TOKEN"

    /// What a secret variable's name ends with when the secret arrives as a file: compose delivers `X` as `X_FILE`,
    /// naming a file that holds the value.
    public static let fileSuffix = "_FILE"

    /// What the variable of a dependency's URL ends with (`USER_SERVICE_URL`).
    public static let urlSuffix = "_URL"

    /// The variable that names a file holding `variable`'s value: `JWT_SECRET` → `JWT_SECRET_FILE`.
    public static func file(_ variable: String) -> String {
        variable + fileSuffix
    }

    /// The variable that carries a dependency's base URL: `user-service` → `USER_SERVICE_URL`.
    public static func url(of service: String) -> String {
        var name = ""
        name.reserveCapacity(service.utf8.count + 4)
        for scalar in service.unicodeScalars {
            switch scalar {
            case "-": name.append("_")
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            default: name.unicodeScalars.append(scalar)
            }
        }
        return name + urlSuffix
    }

    /// The service a `…_URL` variable points at among `services`, or nil.
    public static func service(ofURLVariable variable: String, among services: some Sequence<String>) -> String? {
        services.first { url(of: $0) == variable }
    }
}
