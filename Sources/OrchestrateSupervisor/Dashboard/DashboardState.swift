/// What the dashboard's page shows: the project, its services as the spec declares them, and every replica now.
public struct DashboardState: Sendable, Codable, Equatable {
    public struct Service: Sendable, Codable, Equatable {
        public var name: String
        /// `product`, `command`, `gateway` (orchestrate's own) or `infrastructure` (PostgreSQL, Redis).
        public var kind: String
        public var port: Int?
        public var dependsOn: [String]
        /// Where a browser reaches it: `http://localhost:PORT` for a public service.
        public var url: String?
        /// Its stable address under `up` (`127.0.2.N:PORT`), which its name resolves to.
        public var address: String?

        public init(
            name: String, kind: String, port: Int?, dependsOn: [String], url: String?, address: String? = nil
        ) {
            self.address = address
            self.name = name
            self.kind = kind
            self.port = port
            self.dependsOn = dependsOn
            self.url = url
        }
    }

    public struct Replica: Sendable, Codable, Equatable {
        public var status: ReplicaStatus
        public var usage: ProcessUsage.Reading?
    }

    public var project: String
    public var services: [Service]
    public var replicas: [Replica]
    /// Lines kept per service in the log view.
    public var logCapacity: Int
}
