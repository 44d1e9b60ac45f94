import OrchestrateContract
import OrchestrateSpec

/// `compose.yaml`, the `Dockerfile` every product is built with (and its `.dockerignore`), and Prometheus' scrape configuration for the
/// `observability` profile.
struct ComposeGenerator {
    let topology: Topology
    let templates: TemplateSet

    private var spec: Spec { topology.spec }

    private typealias Y = OutputEscaping

    /// A block per service and per database, the Dockerfile and Prometheus' configuration as jobs; compose.yaml
    /// places the blocks.
    func plan() -> RenderPlan {
        let owners = spec.services.filter { $0.database != nil && $0.database?.external == nil }
        var jobs: [RenderPlan.Job] = topology.nodes.map { node in
            { block(self.service(node.service, environment: ServiceEnvironment(node))) }
        }
        jobs += owners.map { service in { block(database(service.database!.name.value)) } }
        jobs.append { templates.render("Dockerfile", dockerfileContext()) }
        jobs.append { templates.render("dockerignore", [:]) }
        jobs.append { templates.render("prometheus.yml", prometheusContext()) }
        let serviceCount = spec.services.count
        return RenderPlan(jobs: jobs) { texts in
            [
                GeneratedFile(
                    path: "compose.yaml",
                    contents: templates.render(
                        "compose.yaml",
                        context(
                            blocks: Array(texts[..<serviceCount]),
                            databaseBlocks: Array(texts[serviceCount..<(texts.count - 3)])))),
                GeneratedFile(path: "Dockerfile", contents: texts[texts.count - 3]),
                GeneratedFile(path: ".dockerignore", contents: texts[texts.count - 2]),
                GeneratedFile(path: "observability/prometheus.yml", contents: texts[texts.count - 1]),
            ]
        }
    }

    private func context(blocks: [String], databaseBlocks: [String]) -> [String: Any] {
        var secrets = Set<String>()
        var services = blocks
        for node in topology.nodes {
            secrets.formUnion(Self.secretNames(ServiceEnvironment(node)))
            let service = node.service
            guard let database = service.database, database.external == nil else { continue }
            secrets.insert(ServiceEnvironment.databasePasswordSecret(database.name.value))
        }
        services += databaseBlocks
        var volumes = spec.services.compactMap { service -> String? in
            guard let database = service.database, database.external == nil else { return nil }
            return database.name.value + "-data"
        }
        if let broker = spec.broker, broker.external == nil {
            services.append(block(redis()))
            volumes.append("redis-data")
            secrets.insert(ServiceEnvironment.brokerPasswordSecret)
        }
        var context: [String: Any] = [
            "projectName": spec.name.value,  // a DNS label, safe in a comment
            "services": services,
        ]
        // Distinct names from the per-service keys: Mustache looks a key missing in a service up in the outer
        // context, so a service without volumes would print these.
        ContextList.set(&context, "volumeDeclarations", volumes.map { ["name": Y.yaml($0)] })
        ContextList.set(
            &context, "secretDeclarations",
            secrets.sorted().map { ["name": Y.yaml($0), "file": Y.yaml("./secrets/" + $0)] })
        return context
    }

    private static func secretNames(_ environment: ServiceEnvironment) -> [String] {
        environment.secrets.map { ServiceEnvironment.composeSecretName(secret: $0.secret, key: $0.key) }
    }

    /// One service's block of compose.yaml, without its final line break.
    private func block(_ context: [String: Any]) -> String {
        var text = templates.render("compose-service.yaml", context)
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    private func service(_ service: Service, environment: ServiceEnvironment) -> [String: Any] {
        let secrets = Self.secretNames(environment)
        let name = service.name.value
        var context: [String: Any] = [
            "name": Y.yaml(name),
            "image": Y.yaml(KubernetesNames.image(for: service, in: spec)),
            "restart": Y.yaml(Self.restart(service.effectiveRestart)),
            "stopGracePeriod": Y.yaml(service.effectiveStopGracePeriod.description),
            "replicas": String(service.autoscaling?.minReplicas.value ?? service.effectiveReplicas),
        ]
        if let product = service.product { context["build"] = ["product": Y.yaml(product.value)] }
        if let policy = spec.images.pullPolicy {
            context["pullPolicy"] = Y.yaml(Self.pullPolicy(policy.value, built: service.product != nil))
        }
        if !service.args.isEmpty {
            context["command"] = Self.flow(service.args.map(\.value).map(Self.escapeInterpolation))
        }
        if service.isPublished, let port = service.port?.value {
            let replicas = max(1, service.effectiveReplicas)
            let hostPorts = replicas > 1 ? "\(port)-\(min(65_535, port + replicas - 1))" : String(port)
            // On the host's loopback only: a laptop's compose is not for the network it is on (Docker's default,
            // 0.0.0.0, would publish every public service to it). Under rootful podman a 0.0.0.0 binding is not
            // even reachable over loopback on some hosts (scripts/test-containers runs there).
            ContextList.set(&context, "ports", [Y.yaml("127.0.0.1:\(hostPorts):\(port)")])
        }
        var variables: [[String: String]] = environment.plain.map {
            ["name": Y.yaml($0.name), "value": Y.yaml(Self.escapeInterpolation($0.value))]
        }
        for secret in environment.secrets {
            let file = "/run/secrets/" + ServiceEnvironment.composeSecretName(secret: secret.secret, key: secret.key)
            variables.append(["name": Y.yaml(ServiceVariable.file(secret.name)), "value": Y.yaml(file)])
        }
        // Deliberate interpolation: set OTEL_EXPORTER_OTLP_ENDPOINT on the host to export traces.
        let otlp = ServiceVariable.otlpEndpoint
        variables.append(["name": Y.yaml(otlp), "value": "\"${\(otlp):-}\""])
        ContextList.set(&context, "environment", variables)
        let uniqueSecrets = secrets.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        ContextList.set(&context, "secrets", uniqueSecrets.map(Y.yaml))
        if let healthcheck = healthcheck(for: service) { context["healthcheck"] = healthcheck }
        var dependencies: [[String: String]] = service.dependsOn.compactMap { dependency in
            guard let target = spec.service(named: dependency.value) else { return nil }
            let condition = healthcheck(for: target) != nil ? "service_healthy" : "service_started"
            return ["name": Y.yaml(dependency.value), "condition": condition]
        }
        if let database = service.database, database.external == nil {
            dependencies.append([
                "name": Y.yaml(ServiceEnvironment.databaseHost(database.name.value)), "condition": "service_healthy",
            ])
        }
        if let broker = spec.broker, broker.external == nil, !service.publishes.isEmpty || !service.subscribes.isEmpty {
            dependencies.append(["name": Y.yaml("redis"), "condition": "service_healthy"])
        }
        ContextList.set(&context, "dependsOn", dependencies)
        if let resources = service.resources { context["resources"] = Self.resources(resources) }
        if spec.gateway?.service.value == name {
            ContextList.set(
                &context, "volumes", [Y.yaml("./\(RouteTableFile.generatedPath):\(RouteTableFile.containerPath):ro")])
        }
        return context
    }

    /// The container's own check of its readiness probe (`ContainerProbe`: bash, which the runtime image has).
    /// For a prebuilt image only a `command:` probe, which its author wrote for it: whether it has bash is unknown,
    /// and a check that can never pass would keep its dependents from starting.
    func healthcheck(for service: Service) -> [String: String]? {
        guard let probe = service.probes.readiness ?? service.probes.liveness else { return nil }
        let test: [String]
        switch probe.check.value {
        case .command(let words):
            test =
                ["CMD"] + (service.product.map { KubernetesNames.command(words, binary: "/app/" + $0.value) } ?? words)
        case let check:
            // Images orchestrate builds (a product's, the built-in gateway's) have bash.
            guard service.product != nil || service.builtin != nil,
                let command = ContainerProbe.command(check, port: service.port?.value)
            else { return nil }
            test = ["CMD"] + command
        }
        return [
            "test": Self.flow(test.map(Self.escapeInterpolation)),
            "interval": Y.yaml(probe.interval.description),
            "timeout": Y.yaml(probe.timeout.description),
            "retries": String(probe.failureThreshold),
            "startPeriod": Y.yaml((service.probes.startup.map { startupWindow($0) } ?? probe.initialDelay).description),
        ]
    }

    private func startupWindow(_ probe: Probe) -> SpecDuration {
        SpecDuration(
            milliseconds: probe.initialDelay.milliseconds + probe.interval.milliseconds * probe.failureThreshold)
    }

    private func database(_ name: String) -> [String: Any] {
        let secret = ServiceEnvironment.databasePasswordSecret(name)
        return [
            "name": Y.yaml(ServiceEnvironment.databaseHost(name)),
            "image": Y.yaml(Images.postgres),
            "restart": Y.yaml("always"),
            "stopGracePeriod": Y.yaml("30s"),
            "replicas": "1",
            "environment": Self.items([
                ["name": Y.yaml("POSTGRES_DB"), "value": Y.yaml(name)],
                ["name": Y.yaml("POSTGRES_USER"), "value": Y.yaml(name)],
                ["name": Y.yaml("POSTGRES_PASSWORD_FILE"), "value": Y.yaml("/run/secrets/" + secret)],
            ]),
            "secrets": Self.items([Y.yaml(secret)]),
            "volumes": Self.items([Y.yaml("\(name)-data:/var/lib/postgresql/data")]),
            "healthcheck": [
                "test": Self.flow(["CMD", "pg_isready", "-U", name, "-d", name]),
                "interval": Y.yaml("5s"), "timeout": Y.yaml("3s"), "retries": "10", "startPeriod": Y.yaml("10s"),
            ],
        ]
    }

    /// Redis with a password (`requirepass`) from the `redis-password` secret, which the services that publish or
    /// subscribe read as `BROKER_PASSWORD_FILE`: another container on the network cannot read or forge events.
    private func redis() -> [String: Any] {
        let password = "$(cat /run/secrets/\(ServiceEnvironment.brokerPasswordSecret))"
        return [
            "name": Y.yaml("redis"),
            "image": Y.yaml(Images.redis),
            "restart": Y.yaml("always"),
            "stopGracePeriod": Y.yaml("10s"),
            "replicas": "1",
            "command": Self.flow(
                [
                    "sh", "-c", "exec redis-server --appendonly yes --requirepass \"\(password)\"",
                ].map(Self.escapeInterpolation)),
            "secrets": Self.items([Y.yaml(ServiceEnvironment.brokerPasswordSecret)]),
            "volumes": Self.items([Y.yaml("redis-data:/data")]),
            "healthcheck": [
                "test": Self.flow(
                    ["CMD-SHELL", "REDISCLI_AUTH=\"\(password)\" redis-cli ping | grep -q PONG"].map(
                        Self.escapeInterpolation)),
                "interval": Y.yaml("5s"), "timeout": Y.yaml("3s"), "retries": "10", "startPeriod": Y.yaml("5s"),
            ],
        ]
    }

    private static func resources(_ resources: Resources) -> [String: Any] {
        var limits: [String: String] = [:]
        var reservations: [String: String] = [:]
        if let cpu = resources.cpuLimit { limits["cpus"] = Y.yaml(cores(cpu.value)) }
        if let memory = resources.memoryLimit { limits["memory"] = Y.yaml(bytes(memory.value)) }
        if let cpu = resources.cpu { reservations["cpus"] = Y.yaml(cores(cpu.value)) }
        if let memory = resources.memory { reservations["memory"] = Y.yaml(bytes(memory.value)) }
        var context: [String: Any] = [:]
        if !limits.isEmpty { context["limits"] = limits }
        if !reservations.isEmpty { context["reservations"] = reservations }
        return context
    }

    /// CPU cores as compose writes them: `0.1`, `1`, `1.5`.
    static func cores(_ quantity: Quantity) -> String {
        let thousandths = Int((quantity.value * 1_000).rounded(.up))
        let whole = thousandths / 1_000
        let fraction = thousandths % 1_000
        guard fraction > 0 else { return String(max(whole, 0)) }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 3 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }

    /// Memory as compose reads it: whole bytes.
    static func bytes(_ quantity: Quantity) -> String {
        String(Int(min(quantity.value.rounded(.up), 9.0e18)))
    }

    /// A list known not to be empty, for the same sections.
    static func items(_ items: [Any]) -> [String: Any] {
        ["items": items]
    }

    /// A YAML flow sequence of quoted strings.
    static func flow(_ items: [String]) -> String {
        "[" + items.map(Y.yaml).joined(separator: ", ") + "]"
    }

    /// Compose reads `$` in values as the start of a variable; `$$` is a literal `$`.
    static func escapeInterpolation(_ value: String) -> String {
        value.replacing("$", with: "$$")
    }

    static func restart(_ policy: RestartPolicy) -> String {
        switch policy {
        case .always: "always"
        case .onFailure: "on-failure"
        case .never: "no"
        }
    }

    static func pullPolicy(_ policy: ImageSettings.PullPolicy, built: Bool) -> String {
        switch policy {
        case .always: "always"
        case .ifNotPresent: built ? "build" : "missing"
        case .never: "never"
        }
    }

    private func dockerfileContext() -> [String: Any] {
        ["swiftImage": Images.swiftBuild, "runtimeImage": Images.runtime]
    }

    private func prometheusContext() -> [String: Any] {
        [
            "jobs": spec.services.compactMap { service -> [String: String]? in
                guard let port = Topology.gatewayMetricsPort(of: service) ?? service.port?.value else { return nil }
                return ["name": Y.yaml(service.name.value), "host": Y.yaml(service.name.value), "port": String(port)]
            }
        ]
    }
}

/// The pinned images of the infrastructure a deployment adds.
enum Images {
    static let postgres = "postgres:16-alpine"
    static let redis = "redis:7-alpine"
    static let jaeger = "jaegertracing/all-in-one:1.62.0"
    static let prometheus = "prom/prometheus:v2.54.1"
    static let swiftBuild = "swift:6.1-noble"
    static let runtime = "ubuntu:24.04"
}
