import OrchestrateContract

/// What a service reads from its environment at start: where to listen, its database, its dependencies, the
/// internal token, tracing and name resolution.
///
/// A secret may come as `NAME` or, as compose delivers secrets, as `NAME_FILE` naming a file that holds it. A
/// missing or malformed required value stops the service at start with an error naming the variable.
public struct ServiceConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// `postgres://…` or `sqlite://PATH`; nil means the embedded SQLite default.
    public var databaseURL: String?
    /// The database password when it is not in the URL (`DATABASE_PASSWORD` or `DATABASE_PASSWORD_FILE`).
    public var databasePassword: String?
    /// Each declared dependency's base URL, by service name (`user-service` from `USER_SERVICE_URL`).
    public var dependencies: [String: String]
    public var brokerURL: String?
    /// `BROKER_PASSWORD` (or `_FILE`): the broker's password when `BROKER_URL` holds none.
    public var brokerPassword: String?
    public var internalToken: String?
    public var otlpEndpoint: String?
    /// The supervisor's DNS server (`ORCHESTRATE_DNS=127.0.0.1:5353`), when names resolve through it.
    public var dnsServer: DNSServerAddress?

    public struct DNSServerAddress: Sendable, Equatable {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// What the service itself declares: its default port and what it cannot start without.
    public struct Requirements: Sendable {
        public var defaultPort: Int
        public var dependencies: [String]
        public var internalToken: Bool

        public init(defaultPort: Int, dependencies: [String] = [], internalToken: Bool = false) {
            self.defaultPort = defaultPort
            self.dependencies = dependencies
            self.internalToken = internalToken
        }
    }

    /// Reads the configuration.
    ///
    /// - Parameters:
    ///   - environment: The process environment.
    ///   - readFile: Reads a `NAME_FILE` file; injected so tests need no files.
    /// - Throws: `ServiceKitError.configuration` naming the first variable that is missing or malformed.
    public init(
        environment: [String: String], requirements: Requirements,
        readFile: (String) throws -> String = ServiceConfiguration.readFile
    ) throws(ServiceKitError) {
        func value(_ name: String) throws(ServiceKitError) -> String? {
            if let value = environment[name], !value.isEmpty { return value }
            guard let path = environment[ServiceVariable.file(name)], !path.isEmpty else { return nil }
            do {
                var text = try readFile(path)
                while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
                return text
            } catch {
                throw ServiceKitError.configuration(
                    ServiceVariable.file(name), "cannot read \(path), which should hold \(name): \(error)")
            }
        }
        host = try value(ServiceVariable.host) ?? "127.0.0.1"
        if let text = try value(ServiceVariable.port) {
            guard let port = Int(text), (1...65_535).contains(port) else {
                throw ServiceKitError.configuration(
                    ServiceVariable.port, "must be a port number from 1 to 65535, not \"\(text)\"")
            }
            self.port = port
        } else {
            port = requirements.defaultPort
        }
        databaseURL = try value(ServiceVariable.databaseURL)
        if let url = databaseURL,
            !(url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") || url.hasPrefix("sqlite://"))
        {
            throw ServiceKitError.configuration(
                ServiceVariable.databaseURL, "must start with postgres:// or sqlite://, not \"\(url.prefix(20))…\"")
        }
        databasePassword = try value(ServiceVariable.databasePassword)
        var dependencies: [String: String] = [:]
        for dependency in requirements.dependencies {
            let variable = ServiceVariable.url(of: dependency)
            guard let url = try value(variable) else {
                throw ServiceKitError.configuration(
                    variable,
                    "is not set; this service calls \(dependency) and needs its URL "
                        + "(e.g. http://\(dependency):PORT)")
            }
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw ServiceKitError.configuration(variable, "must be an http:// or https:// URL, not \"\(url)\"")
            }
            dependencies[dependency] = url
        }
        self.dependencies = dependencies
        brokerURL = try value(ServiceVariable.brokerURL)
        brokerPassword = try value(ServiceVariable.brokerPassword)
        internalToken = try value(ServiceVariable.internalToken)
        if requirements.internalToken, internalToken == nil {
            throw ServiceKitError.configuration(
                ServiceVariable.internalToken, "is not set; internal endpoints need the shared service token")
        }
        otlpEndpoint = try value(ServiceVariable.otlpEndpoint)
        if let text = try value(ServiceVariable.dnsServer) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (1...65_535).contains(port), colon > text.startIndex
            else {
                throw ServiceKitError.configuration(ServiceVariable.dnsServer, "must be HOST:PORT, not \"\(text)\"")
            }
            dnsServer = DNSServerAddress(host: String(text[..<colon]), port: port)
        } else {
            dnsServer = nil
        }
    }

    /// Reads a secret file as UTF-8.
    public static func readFile(_ path: String) throws -> String {
        try SecretFile.read(path)
    }
}
