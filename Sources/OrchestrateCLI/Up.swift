import ArgumentParser
import Foundation
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
            each service once the services it depends on are ready. Each replica gets its own loopback address on \
            its declared port; names resolve through a DNS server on loopback (ORCHESTRATE_DNS); public services \
            are also at localhost:PORT. Logs are prefixed with the replica's name and kept in .orchestrate/logs. \
            Ctrl-C or SIGTERM stops everything in reverse dependency order.

            Databases and the broker are embedded by default (a SQLite file per database, a SQLite event log). \
            With --infra native they run on PostgreSQL (initdb and postgres from PATH or /usr/lib/postgresql, \
            data in .orchestrate/postgres, a database and role per spec database) and redis-server (data in \
            .orchestrate/redis), started, health-checked and provisioned before any service.

            Examples:
              orchestrate up
              orchestrate up -f services.yaml --no-build
              orchestrate up --infra native
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

    @Option(help: "Colour the log prefixes: auto, always or never.")
    var color: ColorMode = .auto

    @Option(help: "Databases and broker: embedded (SQLite files) or native (PostgreSQL and redis-server from this machine).")
    var infra: InfrastructureMode = .embedded

    func run() async throws {
        let spec = try LoadSpec.load(file, format: .text, color: color, failure: "nothing was started")
        // A closed terminal or pipe must not kill the supervisor (and with it every child): writes just fail.
        signal(SIGPIPE, SIG_IGN)
        let specPath = URL(fileURLWithPath: file).standardizedFileURL
        let projectDirectory = specPath.deletingLastPathComponent().path
        let stateDirectory = projectDirectory + "/.orchestrate"
        let environment = ProcessInfo.processInfo.environment
        let useColor = color.isEnabled(forDescriptor: 1, environment: environment)
        let say = { (text: String) in
            print("orchestrate: \(text)")
            fflush(nil)
        }

        try FileManager.default.createDirectory(atPath: stateDirectory + "/data", withIntermediateDirectories: true)
        let statePath = stateDirectory + "/state.json"
        try reclaim(statePath: statePath, say: say)

        if !noBuild {
            say("building (swift build)…")
            let build = ForegroundCommand.run(["swift", "build", "--package-path", projectDirectory])
            guard build.status == 0 else {
                POSIX.printError("orchestrate: the build failed (swift build exited \(build.status)); nothing was started")
                throw ExitCode.failure
            }
        }
        let products = try productsDirectory(projectDirectory: projectDirectory)
        let missing = Set(spec.services.compactMap(\.product?.value)).sorted().filter {
            !FileManager.default.isExecutableFile(atPath: products + "/" + $0)
        }
        guard missing.isEmpty else {
            POSIX.printError("orchestrate: not built in \(products): \(missing.joined(separator: ", ")); run swift build, or drop --no-build")
            throw ExitCode.failure
        }

        let directory = ServiceDirectory(project: spec.name.value)
        let dns: DNSServer
        do {
            dns = try await DNSServer.start(directory: directory, port: dnsPort)
        } catch {
            POSIX.printError("orchestrate: cannot serve DNS on 127.0.0.1:\(dnsPort): \(error)")
            throw ExitCode.failure
        }
        let plan: LocalPlan
        do {
            plan = try LocalPlan.make(
                spec: spec, stateDirectory: stateDirectory, dnsPort: dns.port,
                secrets: SecretStore(directory: stateDirectory + "/secrets", environment: environment))
        } catch {
            await dns.stop()
            POSIX.printError("orchestrate: \(error)")
            throw ExitCode.failure
        }
        for secret in plan.generatedSecrets {
            say("generated secret \(secret) at random into .orchestrate/secrets/\(secret) (put a real value there to use it)")
        }
        let forwards = spec.services.filter { $0.isPublic?.value == true }.compactMap { service in
            service.port.map { (service.name.value, $0.value) }
        }
        let conflicts = portConflicts(plan: plan, forwards: forwards)
        guard conflicts.isEmpty else {
            await dns.stop()
            for conflict in conflicts { POSIX.printError("orchestrate: \(conflict)") }
            POSIX.printError("orchestrate: nothing was started")
            throw ExitCode.failure
        }
        var infrastructure: NativeInfrastructure?
        if infra == .native {
            do {
                let addresses = try (LoopbackAddresses.linux.address(plan.replicas.count), LoopbackAddresses.linux.address(plan.replicas.count + 1))
                infrastructure = try NativeInfrastructure.plan(
                    for: spec, stateDirectory: stateDirectory, environment: environment, addresses: addresses,
                    dnsPort: dns.port)
            } catch {
                await dns.stop()
                POSIX.printError("orchestrate: \(error); nothing was started")
                throw ExitCode.failure
            }
        }
        try writeRoutes(spec: spec, to: stateDirectory + "/routes.json")

        let inherited = ["PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"]
        var runPlan = plan
        for index in runPlan.replicas.indices {
            for name in inherited where runPlan.replicas[index].environment[name] == nil {
                runPlan.replicas[index].environment[name] = environment[name]
            }
        }
        let infrastructureNames = infrastructure?.spec.services.map(\.name.value) ?? []
        let log = SupervisorLog(
            directory: stateDirectory + "/logs", services: infrastructureNames + spec.services.map(\.name.value),
            maximumReplicas: spec.services.map(\.effectiveReplicas).max() ?? 1, useColor: useColor)
        let socketPath = stateDirectory + "/control.sock"
        let recorder = try StateRecorder(
            path: statePath,
            initial: StateFile(supervisorPID: getpid(), dnsPort: dns.port, controlSocket: socketPath))
        let started = ContinuousClock.now
        var infrastructureSupervisor: Supervisor?
        if let infrastructure {
            infrastructureSupervisor = try await startInfrastructure(
                infrastructure, log: log, directory: directory, recorder: recorder, dns: dns)
            runPlan = infrastructure.apply(to: runPlan, spec: spec)
        }
        let supervisor = Supervisor(
            spec: spec, plan: runPlan, executableDirectory: products, launcher: NativeLauncher(), prober: ProbeRunner(),
            directory: directory, log: log, state: recorder)
        try? directory.hostsFile().write(toFile: stateDirectory + "/hosts", atomically: true, encoding: .utf8)
        let supervisors = [infrastructureSupervisor, supervisor].compactMap { $0 }

        let (stopRequests, requestStop) = AsyncStream<String>.makeStream()
        let control = try await ControlServer.start(path: socketPath) { request in
            await Self.handle(request, supervisors: supervisors, requestStop: requestStop)
        }
        let signals = SignalListener()
        let signalTask = Task {
            var count = 0
            for await number in signals.signals {
                count += 1
                if count == 1 {
                    requestStop.yield(number == SIGINT ? "interrupted" : "terminated")
                } else {
                    // A second Ctrl-C: no more waiting for grace periods.
                    log.note("second signal: killing every process now")
                    for supervisor in supervisors {
                        for row in await supervisor.status() { if let pid = row.pid { kill(-pid, SIGKILL) } }
                    }
                }
            }
        }
        log.note("DNS on 127.0.0.1:\(dns.port) (dig @127.0.0.1 -p \(dns.port) NAME); state in \(stateDirectory)")
        await supervisor.start()
        var localForwards: [LocalhostForward] = []
        for (service, port) in forwards {
            do {
                localForwards.append(try await LocalhostForward.start(service: service, port: port, directory: directory))
                log.note("\(service) is also at http://localhost:\(port)")
            } catch {
                log.note("cannot forward localhost:\(port) to \(service): \(error)")
            }
        }
        let announcer = Task {
            var reportedFailures: Set<String> = []
            while !Task.isCancelled {
                if await supervisor.allReady() {
                    let elapsed = ContinuousClock.now - started
                    log.note("all \(runPlan.replicas.count) replicas of \(spec.services.count) services ready in \(Self.format(elapsed)); `orchestrate status` shows them")
                    return
                }
                for failed in await supervisor.failedServices() where !reportedFailures.contains(failed) {
                    reportedFailures.insert(failed)
                    log.note("\(failed) failed; the other services keep running (`orchestrate logs \(failed)`)")
                }
                // Often while the shop starts; rarely once it should have (a failed service may never be ready).
                try? await Task.sleep(for: ContinuousClock.now - started < .seconds(2) ? .milliseconds(5) : .milliseconds(250))
            }
        }

        var reasons = stopRequests.makeAsyncIterator()
        let reason = await reasons.next() ?? "stopped"
        announcer.cancel()
        log.note("\(reason): stopping in reverse dependency order")
        await supervisor.shutdown()
        await infrastructureSupervisor?.shutdown()
        for forward in localForwards { await forward.stop() }
        await control.stop()
        await dns.stop()
        signalTask.cancel()
        recorder.remove()
        log.note("stopped")
        log.close()
    }

    /// Answers a control request; with --infra native the infrastructure's supervisor comes first, so its
    /// servers lead `orchestrate status` and can be restarted by name like any service.
    static func handle(
        _ request: ControlRequest, supervisors: [Supervisor], requestStop: AsyncStream<String>.Continuation
    ) async -> ControlResponse {
        do {
            switch request.command {
            case .status:
                var replicas: [ReplicaStatus] = []
                for supervisor in supervisors { replicas += await supervisor.status() }
                return ControlResponse(ok: true, replicas: replicas)
            case .down:
                requestStop.yield("orchestrate down")
                return ControlResponse(ok: true, message: "stopping")
            case .restart, .stop, .start:
                guard let service = request.service else { return ControlResponse(ok: false, error: "which service?") }
                var owner = supervisors.last!
                for supervisor in supervisors where await supervisor.runs(service) { owner = supervisor }
                let supervisor = owner
                switch request.command {
                case .restart: try await supervisor.restart(service)
                case .stop: try await supervisor.stop(service)
                default: try await supervisor.start(service)
                }
                return ControlResponse(ok: true, replicas: await supervisor.status().filter { $0.service == service })
            }
        } catch {
            return ControlResponse(ok: false, error: "\(error)")
        }
    }

    /// Prepares (initdb the first time), starts and waits for the native servers, then creates the databases;
    /// on any failure stops what started and exits without starting a service.
    private func startInfrastructure(
        _ infrastructure: NativeInfrastructure, log: SupervisorLog, directory: ServiceDirectory,
        recorder: StateRecorder, dns: DNSServer
    ) async throws -> Supervisor {
        let launcher = NativeLauncher()
        let postgresOutput: @Sendable (String) -> Void = { line in
            log.output(line, replica: NativeInfrastructure.postgresName, service: NativeInfrastructure.postgresName)
        }
        let supervisor = Supervisor(
            spec: infrastructure.spec, plan: infrastructure.plan, executableDirectory: "", launcher: launcher,
            prober: ProbeRunner(), directory: directory, log: log, state: recorder)
        do {
            try await infrastructure.prepare(launcher: launcher, output: postgresOutput)
            await supervisor.start()
            let deadline = ContinuousClock.now + .seconds(120)
            while !(await supervisor.allReady()) {
                let failed = await supervisor.failedServices()
                guard failed.isEmpty else {
                    throw NativeInfrastructure.SetupError(
                        description: "\(failed.joined(separator: ", ")) failed to start (`orchestrate logs`, or .orchestrate/logs)")
                }
                guard ContinuousClock.now < deadline else {
                    throw NativeInfrastructure.SetupError(description: "the infrastructure was not ready within 120 s")
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            try await infrastructure.provision(launcher: launcher, output: postgresOutput)
            return supervisor
        } catch {
            await supervisor.shutdown()
            await dns.stop()
            recorder.remove()
            log.note("\(error); nothing was started")
            log.close()
            throw ExitCode.failure
        }
    }

    /// A supervisor that is still running is an error; processes a dead one left behind are stopped.
    private func reclaim(statePath: String, say: (String) -> Void) throws {
        guard let state = StateFile.read(statePath) else { return }
        if ProcessInfoReader.isAlive(state.supervisorPID),
            ProcessInfoReader.command(of: state.supervisorPID).map({ $0.hasPrefix("orchestrate") }) == true
        {
            POSIX.printError("orchestrate: orchestrate up is already running here (PID \(state.supervisorPID)); `orchestrate down` stops it")
            throw ExitCode.failure
        }
        var killed: [Int32] = []
        for process in state.processes
        where ProcessInfoReader.executable(of: process.pid) == process.executable {
            say("reclaiming \(process.service)-\(process.replica) (PID \(process.pid)), left running by an earlier orchestrate up")
            Self.signalGroup(process.pid, SIGTERM)
            killed.append(process.pid)
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while killed.contains(where: ProcessInfoReader.isAlive), ContinuousClock.now < deadline {
            usleep(50_000)
        }
        for pid in killed where ProcessInfoReader.isAlive(pid) { Self.signalGroup(pid, SIGKILL) }
        unlink(statePath)
    }

    /// Its group (our children lead one each), or the process alone when it leads none.
    static func signalGroup(_ pid: Int32, _ signal: Int32) {
        if kill(-pid, signal) != 0, errno == ESRCH { kill(pid, signal) }
    }

    private func productsDirectory(projectDirectory: String) throws -> String {
        // Symbolic links resolved (.build/debug is one): the state file records executables as /proc/PID/exe
        // names them, which is how the next run recognises its processes.
        if let binPath { return URL(fileURLWithPath: binPath).standardizedFileURL.resolvingSymlinksInPath().path }
        let shown = ForegroundCommand.run(["swift", "build", "--package-path", projectDirectory, "--show-bin-path"], capture: true)
        let path = shown.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard shown.status == 0, !path.isEmpty else {
            POSIX.printError("orchestrate: cannot find the built products (swift build --show-bin-path exited \(shown.status)); pass --bin-path")
            throw ExitCode.failure
        }
        return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

    /// Every address a replica or a localhost forward will bind that is taken, with who holds it.
    private func portConflicts(plan: LocalPlan, forwards: [(String, Int)]) -> [String] {
        let binds = plan.replicas.compactMap { replica in
            replica.port.map { (replica.address, $0, "\(replica.service)-\(replica.index)") }
        } + forwards.map { ("127.0.0.1", $0.1, "localhost:\($0.1) for \($0.0)") }
        return binds.compactMap { address, port, user in
            guard let error = PortCheck.bindError(address: address, port: port) else { return nil }
            var text = "\(address):\(port) (for \(user)) cannot be bound: \(error)"
            if let holder = PortCheck.holder(address: address, port: port) {
                text = "\(address):\(port) (for \(user)) is held by PID \(holder.pid) (\(holder.command))"
            }
            return text
        }
    }

    private func writeRoutes(spec: Spec, to path: String) throws {
        guard let routes = Generator.routeTable(for: Topology(spec)) else { return }
        try routes.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func format(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(format: "%.2f s", seconds)
    }
}

/// Where `up` keeps databases and the broker.
enum InfrastructureMode: String, ExpressibleByArgument, CaseIterable {
    /// SQLite files and a SQLite event log under .orchestrate/data: nothing to install.
    case embedded
    /// PostgreSQL and redis-server from this machine.
    case native
}
