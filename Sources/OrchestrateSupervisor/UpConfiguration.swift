import Foundation
public import OrchestrateSpec

/// What one `orchestrate up` runs and how: the spec, where its files go, and the seams tests replace (the
/// launcher, the prober, the checks that need real sockets).
public struct UpConfiguration: Sendable {
    /// Where databases and the broker run.
    public enum Infrastructure: String, Sendable, CaseIterable {
        /// SQLite files and a SQLite event log under .orchestrate/data: nothing to install.
        case embedded
        /// PostgreSQL and redis-server from this machine.
        case native
    }

    /// A spec that validated.
    public var spec: Spec
    /// The directory of services.yaml; state goes to `.orchestrate` inside it.
    public var projectDirectory: String
    /// Where the built products are.
    public var productsDirectory: String
    /// The built-in gateway's binary (`builtin: gateway`); nil when it is not to be found.
    public var builtinGateway: String?
    /// The DNS server's port on 127.0.0.1; 0 takes a free one.
    public var dnsPort = 0
    /// The dashboard's port on 127.0.0.1 (0: a free one); nil serves no dashboard.
    public var dashboardPort: Int?
    /// Lines kept per service for the dashboard's log view.
    public var dashboardLogLines = 2000
    /// `orchestrate-otlp`, the dashboard's trace decoder; nil: the dashboard shows no traces and the services are
    /// given no exporter.
    public var otlpDecoder: String?
    public var infrastructure = Infrastructure.embedded
    public var useColor = false
    /// The supervisor's environment: secrets may come from it, and `PATH`, `HOME`, … are passed on.
    public var environment: [String: String] = [:]
    /// The gateway's route table (`RouteTableFile` as JSON), written to `.orchestrate/routes.json`.
    public var routeTable: String?
    public var launcher: any ProcessLauncher = NativeLauncher()
    public var prober: any Prober = ProbeRunner()
    public var settings = Supervisor.Settings()
    public var addresses = LoopbackAddresses.linux
    /// Refuse to start when an address a replica will bind is taken (off in tests whose processes bind nothing).
    public var checksAddresses = true
    /// Forward `localhost:PORT` to each public service.
    public var forwardsPublicPorts = true
    /// Give every replica `.orchestrate/hosts` as its /etc/hosts, so dependencies are called by name; off, or where
    /// that is not possible, `<DEP>_URL` carries the service's stable address instead.
    public var privateHostsFile = true
    /// `up --watch`: rebuild and swap on source changes, apply edits of services.yaml; nil does neither.
    public var watch: WatchSettings?
    /// Whether the log also goes to the terminal (tests capture it instead).
    public var logsToTerminal = true
    /// What `up` says before its log exists (generated secrets, reclaimed processes).
    public var say: @Sendable (String) -> Void = { text in
        print("orchestrate: \(text)")
        fflush(nil)
    }

    /// The variables a replica inherits from the supervisor, when the plan does not set them.
    static let inherited = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"]

    public var stateDirectory: String { projectDirectory + "/.orchestrate" }

    public init(spec: Spec, projectDirectory: String, productsDirectory: String) {
        self.spec = spec
        self.projectDirectory = projectDirectory
        self.productsDirectory = productsDirectory
    }
}
