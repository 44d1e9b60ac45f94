import OrchestrateSpec

struct GatewayGenerator {
    let spec: Spec
    let templates: TemplateSet
    func files() -> [GeneratedFile] { [] }
}
