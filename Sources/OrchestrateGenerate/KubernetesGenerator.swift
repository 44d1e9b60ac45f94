import OrchestrateSpec

struct KubernetesGenerator {
    let spec: Spec
    let templates: TemplateSet
    func files() -> [GeneratedFile] { [] }
}
