import OrchestrateContract
import OrchestrateSpec

extension UpSession {
    /// What the dashboard reads and does: the spec's services (and `--infra native`'s servers), every replica with
    /// its CPU and memory, and control requests as the CLI sends them.
    func dashboardSource(ring: LogRing, spans: SpanStore, infrastructure: [String])
        -> DashboardServer.Source
    {
        let infrastructure = infrastructure.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let project = configuration.spec.name.value
        let capacity = ring.capacity
        let usage = ProcessUsage()
        let metrics = MetricsBoard()
        return DashboardServer.Source(
            state: { [weak self] in
                let replicas = await self?.handle(ControlRequest(command: .status)).replicas ?? []
                usage.keep(only: Set(replicas.compactMap(\.pid)))
                let services = await self?.dashboardServices(infrastructure: infrastructure) ?? []
                return DashboardState(
                    project: project, services: services,
                    replicas: replicas.map { .init(status: $0, usage: $0.pid.flatMap(usage.read)) },
                    logCapacity: capacity)
            },
            act: { [weak self] request in
                await self?.handle(request) ?? ControlResponse(ok: false, error: "orchestrate up has stopped")
            },
            logs: ring, spans: spans, metrics: metrics,
            scrape: { [weak self] in
                guard let targets = await self?.metricsTargets() else { return }
                let scrapes = await withTaskGroup(of: (String, String, String?).self) { group in
                    for target in targets {
                        group.addTask {
                            (
                                target.replica, target.service,
                                await MetricsScrape.fetch(host: target.host, port: target.port)
                            )
                        }
                    }
                    var scrapes: [String: (service: String, text: String?)] = [:]
                    for await (replica, service, text) in group { scrapes[replica] = (service, text) }
                    return scrapes
                }
                metrics.record(scrapes)
            })
    }

    /// The services as the dashboard lists them: `--infra native`'s servers, then the spec's (as `up --watch` last
    /// applied it).
    func dashboardServices(infrastructure: [String]) -> [DashboardState.Service] {
        let addresses = Dictionary(
            (plan?.serviceEndpoints ?? []).map { ($0.service, "\($0.address):\($0.port)") },
            uniquingKeysWith: { first, _ in first })
        var listed = infrastructure.map {
            DashboardState.Service(name: $0, kind: "infrastructure", port: nil, dependsOn: [], url: nil)
        }
        listed += configuration.spec.services.map { service in
            let kind =
                service.product != nil ? "product" : service.builtin != nil ? "gateway" : "command"
            return DashboardState.Service(
                name: service.name.value, kind: kind, port: service.port?.value,
                dependsOn: service.dependsOn.map(\.value),
                url: configuration.forwardsPublicPorts && service.isPublished
                    ? service.port.map { "http://localhost:\($0.value)" } : nil,
                address: addresses[service.name.value])
        }
        return listed
    }

    /// Where each running replica of the spec's services serves `/metrics`: its port, or `METRICS_PORT` (the
    /// built-in gateway's) when set.
    func metricsTargets() async -> [(replica: String, service: String, host: String, port: Int)] {
        let running = Set(
            (await handle(ControlRequest(command: .status)).replicas ?? []).filter { $0.state == .running }.map {
                "\($0.service)-\($0.replica)"
            })
        return (plan?.replicas ?? []).compactMap { replica in
            let name = "\(replica.service)-\(replica.index)"
            guard running.contains(name), configuration.spec.service(named: replica.service) != nil,
                let port = replica.environment["METRICS_PORT"].flatMap(Int.init) ?? replica.port
            else { return nil }
            return (name, replica.service, replica.address, port)
        }
    }

    /// Every replica of the spec's services exports its traces to the dashboard (`OTEL_EXPORTER_OTLP_ENDPOINT`),
    /// named as its service, with the replica as `service.instance.id`, in batches every half second, unless the
    /// spec already sends them elsewhere.
    static func exportingTraces(_ plan: LocalPlan, to endpoint: String, spec: Spec) -> LocalPlan {
        var plan = plan
        for index in plan.replicas.indices where spec.service(named: plan.replicas[index].service) != nil {
            let replica = plan.replicas[index]
            var environment = replica.environment
            guard (environment[ServiceVariable.otlpEndpoint] ?? "").isEmpty else { continue }
            environment[ServiceVariable.otlpEndpoint] = endpoint
            environment["OTEL_SERVICE_NAME"] = environment["OTEL_SERVICE_NAME"] ?? replica.service
            let instance = "service.instance.id=\(replica.service)-\(replica.index)"
            environment["OTEL_RESOURCE_ATTRIBUTES"] =
                environment["OTEL_RESOURCE_ATTRIBUTES"].map { $0 + "," + instance } ?? instance
            environment["OTEL_BSP_SCHEDULE_DELAY"] = environment["OTEL_BSP_SCHEDULE_DELAY"] ?? "500"
            plan.replicas[index].environment = environment
        }
        return plan
    }
}
