import ArgumentParser
import Foundation
import OrchestrateContract
import OrchestrateGenerate
import OrchestrateSpec
import OrchestrateSupervisor

/// `orchestrate up`: build the products and run every service of the spec natively, supervised, with names that
/// resolve as they do in compose and Kubernetes.
struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Build and run every service of services.yaml on this machine, supervised.",
        discussion: """
            Validates the spec (nothing starts on an error), builds every product with `swift build`, and starts \
            each service (a product, or a `command:`) once the services it depends on are ready. Each replica gets \
            its own loopback address on its declared port; each service gets a stable address (127.0.2.N) whose \
            forwarder spreads connections over its ready replicas, and every replica sees a private /etc/hosts \
            that gives each service name that address, so any program calls `http://NAME:PORT` or <DEP>_URL. \
            Names also resolve through a DNS server on loopback (ORCHESTRATE_DNS); public services are also at \
            localhost:PORT. Logs are prefixed with the replica's name and kept in .orchestrate/logs. \
            Ctrl-C or SIGTERM stops everything in reverse dependency order.

            Databases and the broker are embedded by default (a SQLite file per database, a SQLite event log). \
            With --infra native they run on PostgreSQL (initdb and postgres from PATH or /usr/lib/postgresql, \
            data in .orchestrate/postgres, a database and role per spec database) and redis-server (data in \
            .orchestrate/redis), started, health-checked and provisioned before any service.

            Examples:
              orchestrate up
              orchestrate up -f services.yaml --no-build
              orchestrate up --infra native
              orchestrate up --dashboard-port 18888
              orchestrate up --watch

            The dashboard (127.0.0.1 only; its URL carries a random token) shows every service and replica with \
            state, readiness, restarts, uptime, PID, CPU and memory, what a starting service waits for, a graph of \
            the dependencies, restart/stop/start buttons, and every service's log lines in one filtered view.

            With --watch, a change to a product's sources (or to a target it depends on) builds the affected \
            products (one `swift build` per batch of changes); a failed build shows its first errors and changes \
            nothing that runs; a good one swaps each affected service one replica at a time, the new replica ready \
            before the old one drains. A valid edit of services.yaml is applied as its difference; an invalid one \
            is shown and changes nothing. `watch: false` on a service opts it out.
            """
    )

    @Option(name: [.customShort("f"), .long], help: "The spec file.", completion: .file(extensions: ["yaml", "yml"]))
    var file = "services.yaml"

    @Flag(help: "Do not run `swift build`; run the products already built.")
    var noBuild = false

    @Option(help: "Where the built products are (default: `swift build --show-bin-path`).", completion: .directory)
    var binPath: String?

    @Option(help: "The DNS server's port on 127.0.0.1 (default: a free one, recorded in .orchestrate/state.json).")
    var dnsPort = 0

    @Option(
        help: "The dashboard's port on 127.0.0.1 (default: a free one); its URL, with a token, is printed at start.")
    var dashboardPort = 0

    @Flag(help: "Serve no dashboard.")
    var noDashboard = false

    @Flag(
        help: """
            Watch the products' sources (from the package), services.yaml and the commands' directories: rebuild \
            and swap the affected services one replica at a time behind readiness; apply a valid edit of \
            services.yaml; restart a command whose files changed.
            """)
    var watch = false

    @Option(help: "Colour the log prefixes: auto, always or never.")
    var color: ColorMode = .auto

    @Option(
        help: "Databases and broker: embedded (SQLite files) or native (PostgreSQL and redis-server from this machine)."
    )
    var infra: InfrastructureMode = .embedded

    func run() async throws {
        let spec = try LoadSpec.load(file, format: .text, color: color, failure: "nothing was started")
        // A closed terminal or pipe must not kill the supervisor (and with it every child): writes just fail.
        signal(SIGPIPE, SIG_IGN)
        let projectDirectory = URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent().path
        // A project of `command:` services only has nothing to build.
        let builds = spec.services.contains { $0.product != nil }
        if !noBuild, builds {
            print("orchestrate: building (swift build)…")
            fflush(nil)
            let build = ForegroundCommand.run(["swift", "build", "--package-path", projectDirectory])
            guard build.status == 0 else {
                POSIX.printError(
                    "orchestrate: the build failed (swift build exited \(build.status)); nothing was started")
                throw ExitCode.failure
            }
        }
        let products = builds ? try productsDirectory(projectDirectory: projectDirectory) : projectDirectory
        let missing = Set(spec.services.compactMap(\.product?.value)).sorted().filter {
            !FileManager.default.isExecutableFile(atPath: products + "/" + $0)
        }
        guard missing.isEmpty else {
            POSIX.printError(
                "orchestrate: not built in \(products): \(missing.joined(separator: ", ")); run swift build, or drop --no-build"
            )
            throw ExitCode.failure
        }
        let environment = ProcessInfo.processInfo.environment
        var configuration = UpConfiguration(spec: spec, projectDirectory: projectDirectory, productsDirectory: products)
        configuration.dnsPort = dnsPort
        configuration.dashboardPort = noDashboard ? nil : dashboardPort
        configuration.infrastructure = infra == .native ? .native : .embedded
        configuration.useColor = color.isEnabled(forDescriptor: 1, environment: environment)
        configuration.environment = environment
        configuration.routeTable = Generator.routeTable(for: Topology(spec))
        configuration.builtinGateway = Self.builtinGateway(products: products)
        configuration.otlpDecoder = Self.besideOrchestrate(
            installed: OrchestrateVersion.otlpDecoderExecutable, built: "OTLPDecoder", products: products)
        if watch {
            let specPath = URL(fileURLWithPath: file).standardizedFileURL.path
            let file = file
            configuration.watch = WatchSettings(
                specPath: specPath, swift: noBuild ? nil : Self.onPath("swift", environment: environment),
                loadSpec: { LoadSpec.check(file) },
                routeTable: { Generator.routeTable(for: Topology($0)) })
        }
        let session = UpSession(configuration)
        let signals = SignalListener()
        let relay = Task {
            for await number in signals.signals {
                await session.requestStop(number == SIGINT ? "interrupted" : "terminated")
            }
        }
        defer { relay.cancel() }
        do {
            try await session.run()
        } catch {
            POSIX.printError("orchestrate: \(error)")
            throw ExitCode.failure
        }
    }

    /// The program's absolute path on PATH, if it is there.
    static func onPath(_ program: String, environment: [String: String]) -> String? {
        (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/\(program)" }.first {
            $0.hasPrefix("/") && FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// The built-in gateway: beside this `orchestrate` as installed (`orchestrate-gateway`), or as this package
    /// builds it (`APIGateway` beside it in .build), or among the project's own products when it is this package.
    static func builtinGateway(products: String) -> String? {
        besideOrchestrate(installed: OrchestrateVersion.gatewayExecutable, built: "APIGateway", products: products)
    }

    /// A program of orchestrate's own: beside this `orchestrate` as installed, or as this package builds it, or
    /// among the project's products when the project is this package.
    static func besideOrchestrate(installed: String, built: String, products: String) -> String? {
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let beside = URL(fileURLWithPath: exe).deletingLastPathComponent().path
        let candidates = [beside + "/" + installed, beside + "/" + built, products + "/" + built]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    private func productsDirectory(projectDirectory: String) throws -> String {
        // Symbolic links resolved (.build/debug is one): the state file records executables as /proc/PID/exe
        // names them, which is how the next run recognises its processes.
        if let binPath { return URL(fileURLWithPath: binPath).standardizedFileURL.resolvingSymlinksInPath().path }
        let shown = ForegroundCommand.run(
            ["swift", "build", "--package-path", projectDirectory, "--show-bin-path"], capture: true)
        let path = shown.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard shown.status == 0, !path.isEmpty else {
            POSIX.printError(
                "orchestrate: cannot find the built products (swift build --show-bin-path exited \(shown.status)); pass --bin-path"
            )
            throw ExitCode.failure
        }
        return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

}

/// `--infra`: where `up` keeps databases and the broker (`UpConfiguration.Infrastructure`).
enum InfrastructureMode: String, ExpressibleByArgument, CaseIterable {
    /// SQLite files and a SQLite event log under .orchestrate/data: nothing to install.
    case embedded
    /// PostgreSQL and redis-server from this machine.
    case native
}
