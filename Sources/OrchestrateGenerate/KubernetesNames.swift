import OrchestrateContract
import OrchestrateSpec

/// Names and values that compose and Kubernetes derive the same way.
enum KubernetesNames {
    /// `REGISTRY/SERVICE:TAG` for a built product, or the spec's image.
    static func image(for service: Service, in spec: Spec) -> String {
        if let image = service.image { return image.value }
        if service.builtin?.value == .gateway { return OrchestrateVersion.gatewayImage }
        let registry = spec.images.registry.map { $0.value.hasSuffix("/") ? $0.value : $0.value + "/" } ?? ""
        return "\(registry)\(service.name.value):\(spec.images.tag.value)"
    }

    /// A probe command as argv: a first word without a `/` is a subcommand of the service binary.
    static func command(_ words: [String], binary: String) -> [String] {
        guard let first = words.first, !first.contains("/") else { return words }
        return [binary] + words
    }
}
