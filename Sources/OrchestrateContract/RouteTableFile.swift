/// The gateway's route table as a file (`gateway/routes.json`, the `ROUTES_FILE` of a gateway): what
/// `orchestrate generate` and `orchestrate up` write and the gateway reads. One type on both sides, so the two
/// cannot drift.
public struct RouteTableFile: Codable, Sendable, Equatable {
    public struct Route: Codable, Sendable, Equatable {
        public struct Upstream: Codable, Sendable, Equatable {
            /// The service's name, which is also its host name.
            public var service: String
            public var port: Int
            /// `http://SERVICE:PORT`; the gateway's `<SERVICE>_URL` variable, when set, wins.
            public var url: String

            public init(service: String, port: Int, url: String) {
                self.service = service
                self.port = port
                self.url = url
            }
        }

        public struct RateLimit: Codable, Sendable, Equatable {
            public var rps: Double
            public var burst: Int

            public init(rps: Double, burst: Int) {
                self.rps = rps
                self.burst = burst
            }
        }

        public var prefix: String
        /// What the prefix becomes upstream; nil keeps the path as it is.
        public var rewrite: String?
        /// Allowed methods; empty allows every method.
        public var methods: [String]
        public var upstream: Upstream
        /// `jwt`, or `none`/nil for a public route.
        public var auth: String?
        public var rateLimit: RateLimit?
        public var timeoutMilliseconds: Int
        public var maxBodyBytes: Int

        public static let jwt = "jwt"
        public var requiresJWT: Bool { auth == Self.jwt }

        public init(
            prefix: String, rewrite: String?, methods: [String], upstream: Upstream, auth: String?,
            rateLimit: RateLimit?, timeoutMilliseconds: Int, maxBodyBytes: Int
        ) {
            self.prefix = prefix
            self.rewrite = rewrite
            self.methods = methods
            self.upstream = upstream
            self.auth = auth
            self.rateLimit = rateLimit
            self.timeoutMilliseconds = timeoutMilliseconds
            self.maxBodyBytes = maxBodyBytes
        }
    }

    public struct JWTSettings: Codable, Sendable, Equatable {
        public var algorithm: String
        public var issuer: String?
        public var audience: String?
        /// The claim (or dotted path of claims) that holds the roles; nil means `CallerHeaders.defaultRolesClaim`.
        public var rolesClaim: String?

        public init(algorithm: String, issuer: String?, audience: String?, rolesClaim: String? = nil) {
            self.algorithm = algorithm
            self.issuer = issuer
            self.audience = audience
            self.rolesClaim = rolesClaim
        }
    }

    public var generatedBy: String?
    /// The service that runs the gateway.
    public var gateway: String?
    public var jwt: JWTSettings?
    /// In match order (`RoutePrefix.matchOrder`) as written; a reader sorts again rather than trust the file.
    public var routes: [Route]

    public static let marker = "orchestrate from services.yaml; do not edit"

    public init(gateway: String?, jwt: JWTSettings?, routes: [Route], generatedBy: String? = RouteTableFile.marker) {
        self.generatedBy = generatedBy
        self.gateway = gateway
        self.jwt = jwt
        self.routes = routes
    }

    /// Where a gateway finds its route table inside a container.
    public static let containerPath = "/etc/orchestrate/routes.json"
    /// Where `orchestrate generate` writes it, relative to the output directory.
    public static let generatedPath = "gateway/routes.json"
}
