import OrchestrateContract
import OrchestrateSpec

/// `k8s/`: the namespace with a default-deny policy, a file per service (ConfigMap, Deployment, Service,
/// PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy), a file per database and for the broker,
/// Gateway API HTTPRoutes, and a `kustomization.yaml` listing them.
struct KubernetesGenerator {
    let topology: Topology
    let templates: TemplateSet
    private let dependents: [String: [String]]
    /// Labels and selectors of every workload, built once: each appears in many places.
    private let labelsByName: [String: (labels: String, selector: String)]
    /// The gateway's route table, shared with gateway/routes.json when both are generated.
    private let routesJSON: SharedResult<String>

    var spec: Spec { topology.spec }

    init(topology: Topology, templates: TemplateSet, routesJSON: SharedResult<String>) {
        let spec = topology.spec
        self.topology = topology
        self.templates = templates
        self.routesJSON = routesJSON
        self.dependents = NetworkPolicyBuilder.dependents(in: spec)
        var workloads = spec.services.map(\.name.value) + ["redis"]
        workloads += spec.services.compactMap { $0.database.map { ServiceEnvironment.databaseHost($0.name.value) } }
        var labels: [String: (labels: String, selector: String)] = [:]
        for name in workloads {
            let selector = [
                ("app.kubernetes.io/name", name),
                ("app.kubernetes.io/instance", Self.labelValue("\(spec.name.value)-\(name)")),
            ]
            let all =
                selector + [
                    ("app.kubernetes.io/part-of", spec.name.value),
                    ("app.kubernetes.io/version", Self.labelValue(spec.images.tag.value)),
                    ("app.kubernetes.io/managed-by", "orchestrate"),
                ]
            labels[name] = (Self.flowMapping(all), Self.flowMapping(selector))
        }
        self.labelsByName = labels
    }

    private var networkPolicies: NetworkPolicyBuilder {
        NetworkPolicyBuilder(spec: spec, generator: self, dependents: dependents)
    }

    private typealias Y = OutputEscaping

    /// Every file as a job of its own; kustomization.yaml, which lists them, is the assembly.
    func plan() -> RenderPlan {
        var files: [(path: String, render: @Sendable () -> String)] = [
            ("k8s/namespace.yaml", { templates.render("k8s-namespace.yaml", base()) })
        ]
        files += topology.nodes.map { node in
            ("k8s/\(node.name).yaml", { templates.render("k8s-service.yaml", context(for: node)) })
        }
        let owners = spec.services.filter { $0.database != nil && $0.database?.external == nil }
        files += owners.map { service in
            let database = service.database!
            let name = ServiceEnvironment.databaseHost(database.name.value)
            return (
                "k8s/\(name).yaml", { templates.render("k8s-postgres.yaml", databaseContext(database, owner: service)) }
            )
        }
        if let broker = spec.broker, broker.external == nil {
            files.append(("k8s/redis.yaml", { templates.render("k8s-redis.yaml", redisContext()) }))
        }
        if let gateway = spec.gateway {
            files.append(
                (
                    "k8s/\(gateway.service.value)-routes.yaml",
                    {
                        var context = base()
                        context["name"] = Y.yaml(gateway.service.value + "-routes")
                        context["routes"] = Y.yaml(routesJSON.get())
                        context["labels"] = labels(for: gateway.service.value)
                        return templates.render("k8s-routes-configmap.yaml", context)
                    }
                ))
        }
        let routes = HTTPRouteBuilder(topology: topology)
        if routes.hasRoutes {
            files.append(
                (
                    "k8s/httproutes.yaml",
                    {
                        var context = base()
                        context["routes"] = routes.contexts()
                        return templates.render("k8s-httproutes.yaml", context)
                    }
                ))
        }
        let pieces = RenderPlan.files(files)
        let paths = files.map(\.path)
        return RenderPlan(jobs: pieces.jobs) { results in
            var kustomization = base()
            kustomization["resources"] = paths.map { Y.yaml(String($0.dropFirst("k8s/".count))) }
            return pieces.assemble(results)
                + [file("kustomization.yaml", template: "k8s-kustomization.yaml", kustomization)]
        }
    }

    private func file(_ name: String, template: String, _ context: [String: Any]) -> GeneratedFile {
        GeneratedFile(path: "k8s/" + name, contents: templates.render(template, context))
    }

    /// What every file's template gets: the namespace and project, and `images.pullPolicy` for every container.
    private func base() -> [String: Any] {
        var context: [String: Any] = ["namespace": Y.yaml(spec.name.value), "project": Y.yaml(spec.name.value)]
        if let policy = spec.images.pullPolicy { context["pullPolicy"] = Y.yaml(policy.value.rawValue) }
        return context
    }

    /// The recommended labels as a YAML flow mapping; `name` and `instance` select a workload's pods.
    ///
    /// One value rather than a list the template loops over: labels appear seven times in a service's file,
    /// and each Mustache lookup costs, so this keeps generating 1,000 services fast.
    func labels(for name: String) -> String {
        labelsByName[name]?.labels ?? ""
    }

    /// The labels that select a workload's pods, as a YAML flow mapping.
    func selector(for name: String) -> String {
        labelsByName[name]?.selector ?? ""
    }

    /// A container `command`/`args` value the kubelet leaves as written: `$` doubled (`$$` is its escape for `$`).
    static func escapeExpansion(_ value: String) -> String {
        value.replacing("$", with: "$$")
    }

    static func flowMapping(_ pairs: [(String, String)]) -> String {
        "{" + pairs.map { "\(Y.yaml($0.0)): \(Y.yaml($0.1))" }.joined(separator: ", ") + "}"
    }

    /// A label value: at most 63 characters, starting and ending with a letter or digit.
    static func labelValue(_ text: String) -> String {
        var value = String(text.prefix(63))
        while let last = value.last, !(last.isLetter || last.isNumber) { value.removeLast() }
        while let first = value.first, !(first.isLetter || first.isNumber) { value.removeFirst() }
        return value
    }

    private func context(for node: Topology.Node) -> [String: Any] {
        let service = node.service
        let name = service.name.value
        let environment = ServiceEnvironment(node)
        var context = base()
        context["name"] = Y.yaml(name)
        context["labels"] = labels(for: name)
        context["selector"] = selector(for: name)
        context["image"] = Y.yaml(KubernetesNames.image(for: service, in: spec))
        if let policy = spec.images.pullPolicy { context["pullPolicy"] = Y.yaml(policy.value.rawValue) }
        // The kubelet expands `$(VAR)` in args (a secret variable's value could land in argv) and reads `$$` as `$`:
        // every `$` doubled keeps an argument as written.
        ContextList.set(&context, "args", service.args.map { Y.yaml(Self.escapeExpansion($0.value)) })
        context["configMap"] = Y.yaml(name + "-env")
        // A secret arrives as a file under /run/secrets (as in compose), named in the ConfigMap by NAME_FILE, which
        // ServiceKit (and most images) read: never as an environment variable, which leaks into crash dumps,
        // `kubectl describe` and child processes.
        let secretFiles = environment.secrets.map { secret in
            (secret, ServiceEnvironment.composeSecretName(secret: secret.secret, key: secret.key))
        }
        context["config"] =
            environment.plain.map { ["key": Y.yaml($0.name), "value": Y.yaml($0.value)] }
            + secretFiles.map {
                ["key": Y.yaml(ServiceVariable.file($0.0.name)), "value": Y.yaml("/run/secrets/" + $0.1)]
            }
        // One volume item per file: the same secret key may back two variables.
        var seen = Set<String>()
        let secrets = secretFiles.compactMap { secret, file -> [String: String]? in
            guard seen.insert(file).inserted else { return nil }
            return ["secret": Y.yaml(secret.secret), "key": Y.yaml(secret.key), "file": Y.yaml(file)]
        }
        if !secrets.isEmpty { context["secrets"] = ["items": secrets] }
        context["terminationGracePeriodSeconds"] = String(service.effectiveStopGracePeriod.seconds)
        context["resources"] = KubernetesResources(service.resources).context
        if let port = service.port?.value {
            context["port"] = ["number": String(port)]
        }
        let binary = "/app/" + (service.product?.value ?? "service")
        if let probe = service.probes.startup ?? service.probes.liveness.map(Self.startupProbe(from:)) {
            context["startupProbe"] = KubernetesProbe(probe, binary: binary).context
        }
        if let probe = service.probes.readiness {
            context["readinessProbe"] = KubernetesProbe(probe, binary: binary).context
        }
        if let probe = service.probes.liveness {
            context["livenessProbe"] = KubernetesProbe(probe, binary: binary).context
        }
        let minimum = service.autoscaling?.minReplicas.value ?? service.effectiveReplicas
        if let autoscaling = service.autoscaling {
            context["autoscaling"] = [
                "min": String(autoscaling.minReplicas.value), "max": String(autoscaling.maxReplicas.value),
                "cpu": String(autoscaling.targetCPUUtilization.value),
            ]
        } else {
            context["replicas"] = ["count": String(service.effectiveReplicas)]
        }
        if minimum >= 2 { context["highlyAvailable"] = true }
        if spec.gateway?.service.value == name {
            context["routesConfigMap"] = Y.yaml(name + "-routes")
            context["routesDirectory"] = Y.yaml("/etc/orchestrate")
        }
        context["networkPolicy"] = networkPolicies.context(for: service)
        return context
    }

    /// Without a startup probe, the liveness check gives a slow start a minute before liveness counts.
    static func startupProbe(from liveness: Probe) -> Probe {
        var probe = liveness
        probe.interval = SpecDuration(milliseconds: 2_000)
        probe.failureThreshold = 30
        probe.successThreshold = 1
        return probe
    }

    private func databaseContext(_ database: Database, owner: Service) -> [String: Any] {
        let name = ServiceEnvironment.databaseHost(database.name.value)
        var context = base()
        context["name"] = Y.yaml(name)
        context["database"] = Y.yaml(database.name.value)
        context["labels"] = labels(for: name)
        context["selector"] = selector(for: name)
        context["image"] = Y.yaml(Images.postgres)
        context["passwordSecret"] = Y.yaml(ServiceEnvironment.databasePasswordSecret(database.name.value))
        context["storage"] = Y.yaml((database.storage?.value ?? Database.defaultStorage).text)
        context["readyCommand"] = ComposeGenerator.flow([
            "pg_isready", "-U", database.name.value, "-d", database.name.value,
        ])
        context["clients"] = selector(for: owner.name.value)
        return context
    }

    private func redisContext() -> [String: Any] {
        var context = base()
        context["name"] = Y.yaml("redis")
        context["labels"] = labels(for: "redis")
        context["selector"] = selector(for: "redis")
        context["image"] = Y.yaml(Images.redis)
        context["passwordSecret"] = Y.yaml(ServiceEnvironment.brokerPasswordSecret)
        context["clients"] = spec.services.filter { !$0.publishes.isEmpty || !$0.subscribes.isEmpty }.map { service in
            ["selector": selector(for: service.name.value)]
        }
        return context
    }
}
