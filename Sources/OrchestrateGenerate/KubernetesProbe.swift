import OrchestrateSpec

/// A probe as Kubernetes writes it: the check, then times in whole seconds.
struct KubernetesProbe {
    let context: [String: Any]

    init(_ probe: Probe, binary: String) {
        var context: [String: Any] = [
            "initialDelaySeconds": String(probe.initialDelay.seconds),
            "periodSeconds": String(max(1, probe.interval.seconds)),
            "timeoutSeconds": String(max(1, probe.timeout.seconds)),
            "failureThreshold": String(probe.failureThreshold),
            "successThreshold": String(probe.successThreshold),
        ]
        switch probe.check.value {
        case .http(let path): context["httpGet"] = ["path": OutputEscaping.yaml(path)]
        case .tcp(let port): context["tcpSocket"] = ["port": String(port)]
        case .command(let words):
            context["exec"] = ["command": ComposeGenerator.flow(KubernetesNames.command(words, binary: binary))]
        }
        self.context = context
    }
}

/// Requests and limits for CPU, memory and ephemeral storage, with defaults for what the spec leaves out.
struct KubernetesResources {
    let context: [String: String]

    private static let defaults: [(request: String, limit: String)] = [
        ("100m", "500m"), ("128Mi", "256Mi"), ("64Mi", "256Mi"),
    ]

    init(_ resources: Resources?) {
        let pairs = [
            (resources?.cpu, resources?.cpuLimit), (resources?.memory, resources?.memoryLimit),
            (resources?.ephemeralStorage, resources?.ephemeralStorageLimit),
        ]
        var context: [String: String] = [:]
        for (index, (request, limit)) in pairs.enumerated() {
            let defaultRequest = Quantity(parsing: Self.defaults[index].request)!
            let defaultLimit = Quantity(parsing: Self.defaults[index].limit)!
            var effectiveRequest = request?.value ?? defaultRequest
            var effectiveLimit = limit?.value ?? defaultLimit
            // A default must never make a request exceed a limit the spec wrote, or the other way round.
            if effectiveRequest.value > effectiveLimit.value {
                if limit == nil { effectiveLimit = effectiveRequest } else { effectiveRequest = effectiveLimit }
            }
            let key = ["cpu", "memory", "ephemeral"][index]
            context[key + "Request"] = OutputEscaping.yaml(effectiveRequest.text)
            context[key + "Limit"] = OutputEscaping.yaml(effectiveLimit.text)
        }
        self.context = context
    }
}
