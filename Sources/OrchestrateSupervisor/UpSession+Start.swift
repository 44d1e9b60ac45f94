import Foundation
import OrchestrateSpec

extension UpSession {
    /// `.orchestrate` and its `data`, `secrets` and `logs`: directories only this user can enter (they hold
    /// passwords, databases and the control socket), made here or already real directories. A symbolic link, or
    /// anything else, in their place stops `up` before anything is written: orchestrate never follows a path it
    /// did not create.
    static func prepareStateDirectory(_ path: String) throws(SupervisorError) {
        // `.orchestrate` itself is 0711: others may pass through (PostgreSQL, run as the postgres user under root,
        // must reach .orchestrate/postgres) but not list it; what it holds is 0700 or 0600.
        for (directory, mode) in [
            (path, mode_t(0o711)), (path + "/data", 0o700), (path + "/secrets", 0o700), (path + "/logs", 0o700),
        ] {
            var status = stat()
            if lstat(directory, &status) == 0 {
                guard status.st_mode & S_IFMT == S_IFDIR else {
                    throw SupervisorError(
                        .start,
                        "\(directory) is a symbolic link or not a directory; orchestrate keeps its state only in "
                            + "directories it made: remove it")
                }
                chmod(directory, mode)
            } else if mkdir(directory, mode) != 0, errno != EEXIST {
                throw SupervisorError(.start, "cannot create \(directory): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// The start, in order; each part that starts is recorded with how to stop it (see `drain`).
    func start() async throws(SupervisorError) {
        let configuration = configuration
        let stateDirectory = configuration.stateDirectory
        startedAt = .now
        try Self.prepareStateDirectory(stateDirectory)
        let statePath = stateDirectory + "/state.json"
        try LeftoverProcesses.reclaim(statePath: statePath, say: configuration.say)

        let directory = ServiceDirectory(project: configuration.spec.name.value)
        let dns: DNSServer
        do {
            dns = try await DNSServer.start(directory: directory, port: configuration.dnsPort)
        } catch {
            throw SupervisorError(.start, "cannot serve DNS on 127.0.0.1:\(configuration.dnsPort)", underlying: error)
        }
        started("the DNS server") { await dns.stop() }
        self.directory = directory

        // Names: a private /etc/hosts for every replica where this system allows it; else addresses in the URLs.
        let hostsPath = stateDirectory + "/hosts"
        let machineHosts = (try? String(contentsOfFile: "/etc/hosts", encoding: .utf8)) ?? "127.0.0.1\tlocalhost\n"
        var naming = LocalPlan.Naming.addresses
        if configuration.privateHostsFile {
            try PrivateHosts.write(machineHosts, to: hostsPath)
            if let reason = PrivateHosts.unavailableReason(path: hostsPath) {
                configuration.say(
                    "a private /etc/hosts is not available here (\(reason)): <DEP>_URL gives addresses, not names")
            } else {
                naming = .hostsFile(hostsPath)
            }
        }
        var plan = try makePlan(configuration.spec, dnsPort: dns.port, naming: naming)
        try PrivateHosts.write(PrivateHosts.text(machine: machineHosts, plan: plan), to: hostsPath)
        let forwards = publicPorts()
        if configuration.checksAddresses {
            let conflicts = LeftoverProcesses.bindConflicts(plan: plan, forwards: forwards)
            guard conflicts.isEmpty else {
                throw SupervisorError(
                    .start, (conflicts + ["nothing was started"]).joined(separator: "\norchestrate: "))
            }
        }
        let infrastructure = try planInfrastructure(after: plan, dnsPort: dns.port)
        if let routes = configuration.routeTable {
            do {
                try routes.write(toFile: stateDirectory + "/routes.json", atomically: true, encoding: .utf8)
            } catch {
                throw SupervisorError(.start, "cannot write \(stateDirectory)/routes.json", underlying: error)
            }
        }
        let log = SupervisorLog(
            directory: stateDirectory + "/logs",
            services: (infrastructure?.plan.replicas.map(\.service) ?? [])
                + configuration.spec.services.map(\.name.value),
            maximumReplicas: configuration.spec.services.map(\.effectiveReplicas).max() ?? 1,
            useColor: configuration.useColor, terminal: configuration.logsToTerminal,
            capture: !configuration.logsToTerminal,
            ring: configuration.dashboardPort == nil ? nil : LogRing(capacity: configuration.dashboardLogLines))
        setLog(log)

        var otlpEndpoint: String?
        let socketPath = stateDirectory + "/control.sock"
        let recorder: StateRecorder
        do {
            recorder = try StateRecorder(
                path: statePath,
                initial: StateFile(supervisorPID: getpid(), dnsPort: dns.port, controlSocket: socketPath))
        } catch {
            throw SupervisorError(.start, "cannot write \(statePath)", underlying: error)
        }
        started("the record of this run (state.json is removed)") { recorder.remove() }
        let control: ControlServer
        do {
            control = try await ControlServer.start(path: socketPath) { request in await self.handle(request) }
        } catch {
            throw SupervisorError(.start, "cannot listen on \(socketPath)", underlying: error)
        }
        started("the control socket") { await control.stop() }
        if let port = configuration.dashboardPort, let ring = log.ring {
            let decoder = configuration.otlpDecoder.map { OTLPDecoderProcess(path: $0) }
            var source = dashboardSource(
                ring: ring, spans: SpanStore(), infrastructure: infrastructure?.plan.replicas.map(\.service) ?? [])
            if let decoder {
                source.decodeTraces = { await decoder.decode($0) }
                started("the OTLP decoder") { decoder.stop() }
            }
            let dashboard: DashboardServer
            do {
                dashboard = try await DashboardServer.start(port: port, source: source)
            } catch {
                throw SupervisorError(.start, "cannot serve the dashboard on 127.0.0.1:\(port)", underlying: error)
            }
            started("the dashboard") { await dashboard.stop() }
            dashboardURL = dashboard.url
            if decoder != nil {
                otlpEndpoint = dashboard.otlpEndpoint
                plan = Self.exportingTraces(plan, to: dashboard.otlpEndpoint, spec: configuration.spec)
            } else {
                log.note("no orchestrate-otlp beside orchestrate: the dashboard shows no traces")
            }
            log.note("dashboard: \(dashboard.url)")
        }
        log.note("DNS on 127.0.0.1:\(dns.port) (dig @127.0.0.1 -p \(dns.port) NAME); state in \(stateDirectory)")

        if let infrastructure {
            let servers = Supervisor(
                plan: infrastructure.plan, executableDirectory: "", launcher: configuration.launcher,
                prober: configuration.prober, directory: directory, log: log, state: recorder,
                settings: configuration.settings)
            supervisors.append(servers)
            started("PostgreSQL and Redis") { await servers.shutdown() }
            try await startInfrastructure(infrastructure, on: servers, log: log)
            plan = infrastructure.apply(to: plan, spec: configuration.spec)
        }

        // Under --watch the products run from snapshots (`ProductSnapshots`), which a build never links over.
        if configuration.watch != nil,
            let snapshots = ProductSnapshots.prepare(
                directory: stateDirectory + "/bin", products: configuration.productsDirectory)
        {
            self.snapshots = snapshots
            plan.replicas = snapshots.running(plan.replicas)
            started("the products' snapshots (.orchestrate/bin)") { snapshots.removeAll(except: []) }
        }
        self.plan = plan
        replanning = Replanning(
            dnsPort: dns.port, naming: naming, hostsPath: hostsPath, machineHosts: machineHosts,
            infrastructure: infrastructure, otlpEndpoint: otlpEndpoint)
        addressPool = AddressPool(
            addresses: configuration.addresses,
            taken: plan.replicas.map(\.address) + (infrastructure?.plan.replicas.map(\.address) ?? []))
        for (service, address, port) in plan.serviceEndpoints {
            await forwardStableAddress(service: service, address: address, port: port)
        }
        let services = Supervisor(
            plan: plan, executableDirectory: configuration.productsDirectory, launcher: configuration.launcher,
            prober: configuration.prober, directory: directory, log: log, state: recorder,
            settings: configuration.settings)
        supervisors.append(services)
        if let addressPool { await services.setAddressPool(addressPool) }
        started("the services: entry points first, then dependents before what they depend on") {
            await services.shutdown()
        }
        await services.start()
        for (service, port) in forwards { await forwardLocalhost(service: service, port: port) }
        if let watch = configuration.watch {
            try await startWatching(watch, log: log)
        }
    }

    /// Serves the service's stable address (what its name resolves to). (Stopping a forward twice, at drain after
    /// `up --watch` stopped it, does nothing.)
    func forwardStableAddress(service: String, address: String, port: Int) async {
        guard let directory else { return }
        do {
            let forward = try await ServiceForward.start(
                service: service, host: address, port: port, directory: directory)
            stableForwards[service] = forward
            started("\(address):\(port), the address of \(service)") { await forward.stop() }
        } catch {
            note("cannot listen on \(address):\(port) for \(service): \(error)")
        }
    }

    /// Forwards `localhost:PORT` to a public service.
    func forwardLocalhost(service: String, port: Int) async {
        guard let directory else { return }
        do {
            let forward = try await ServiceForward.start(
                service: service, host: "127.0.0.1", port: port, directory: directory)
            localForwards[service] = forward
            started("localhost:\(port), the forward to \(service)") { await forward.stop() }
            note("\(service) is also at http://localhost:\(port)")
        } catch {
            note("cannot forward localhost:\(port) to \(service): \(error)")
        }
    }

    /// The plan of the spec's replicas, with what they inherit from the supervisor's environment.
    func makePlan(
        _ spec: Spec, dnsPort: Int, naming: LocalPlan.Naming, keeping kept: [String: String] = [:]
    ) throws(SupervisorError) -> LocalPlan {
        let configuration = configuration
        var plan: LocalPlan
        do {
            plan = try LocalPlan.make(
                spec: spec, stateDirectory: configuration.stateDirectory, dnsPort: dnsPort,
                secrets: SecretStore(
                    directory: configuration.stateDirectory + "/secrets", environment: configuration.environment),
                addresses: configuration.addresses, projectDirectory: configuration.projectDirectory, naming: naming,
                searchPath: configuration.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
                builtinGateway: configuration.builtinGateway, keeping: kept)
        } catch {
            throw SupervisorError(.start, "\(error)")
        }
        for secret in plan.generatedSecrets {
            configuration.say(
                "generated secret \(secret) at random into .orchestrate/secrets/\(secret) (put a real value there to use it)"
            )
        }
        for index in plan.replicas.indices {
            for name in UpConfiguration.inherited where plan.replicas[index].environment[name] == nil {
                plan.replicas[index].environment[name] = configuration.environment[name]
            }
        }
        return plan
    }

    /// The public services and their ports, when `localhost` forwards are wanted.
    func publicPorts(_ spec: Spec? = nil) -> [(service: String, port: Int)] {
        guard configuration.forwardsPublicPorts else { return [] }
        return (spec ?? configuration.spec).services.filter(\.isPublished).compactMap { service in
            service.port.map { (service.name.value, $0.value) }
        }
    }

    /// The servers of `--infra native`, on the two addresses after the services'.
    private func planInfrastructure(after plan: LocalPlan, dnsPort: Int) throws(SupervisorError)
        -> NativeInfrastructure?
    {
        let configuration = configuration
        guard configuration.infrastructure == .native else { return nil }
        do {
            let addresses = (
                try configuration.addresses.address(plan.replicas.count),
                try configuration.addresses.address(plan.replicas.count + 1)
            )
            return try NativeInfrastructure.plan(
                for: configuration.spec, stateDirectory: configuration.stateDirectory,
                environment: configuration.environment, addresses: addresses, dnsPort: dnsPort,
                secrets: SecretStore(
                    directory: configuration.stateDirectory + "/secrets", environment: configuration.environment))
        } catch {
            throw SupervisorError(.start, "\(error); nothing was started")
        }
    }

    /// Prepares (initdb the first time), starts and waits for the native servers, then creates the databases.
    private func startInfrastructure(
        _ infrastructure: NativeInfrastructure, on servers: Supervisor, log: SupervisorLog
    ) async throws(SupervisorError) {
        let output: @Sendable (String) -> Void = { line in
            log.output(line, replica: NativeInfrastructure.postgresName, service: NativeInfrastructure.postgresName)
        }
        do {
            try await infrastructure.prepare(launcher: configuration.launcher, output: output)
            await servers.start()
            let deadline = ContinuousClock.now + .seconds(120)
            while !servers.allReady() {
                let seen = servers.readinessVersion
                let failed = servers.failedServices()
                guard failed.isEmpty else {
                    throw SupervisorError(
                        .start,
                        "\(failed.joined(separator: ", ")) failed to start (`orchestrate logs`, or .orchestrate/logs); nothing was started"
                    )
                }
                guard ContinuousClock.now < deadline else {
                    throw SupervisorError(.start, "the infrastructure was not ready within 120 s; nothing was started")
                }
                await servers.readinessChange(after: seen, deadline: deadline)
            }
            try await infrastructure.provision(launcher: configuration.launcher, output: output)
        } catch let error as SupervisorError {
            throw error
        } catch {
            throw SupervisorError(.start, "\(error); nothing was started")
        }
    }

    /// Answers a control request; the infrastructure's supervisor comes first, so its servers lead
    /// `orchestrate status` and can be restarted by name like any service.
    func handle(_ request: ControlRequest) async -> ControlResponse {
        do {
            switch request.command {
            case .status:
                var replicas: [ReplicaStatus] = []
                for supervisor in supervisors { replicas += await supervisor.status() }
                return ControlResponse(ok: true, replicas: replicas)
            case .down:
                await requestStop("orchestrate down")
                return ControlResponse(ok: true, message: "stopping")
            case .restart, .stop, .start:
                guard let service = request.service else { return ControlResponse(ok: false, error: "which service?") }
                guard var owner = supervisors.last else { return ControlResponse(ok: false, error: "nothing runs yet") }
                for supervisor in supervisors where await supervisor.runs(service) { owner = supervisor }
                switch request.command {
                case .restart: try await owner.restart(service)
                case .stop: try await owner.stop(service)
                default: try await owner.start(service)
                }
                return ControlResponse(ok: true, replicas: await owner.status().filter { $0.service == service })
            }
        } catch {
            return ControlResponse(ok: false, error: "\(error)")
        }
    }
}
