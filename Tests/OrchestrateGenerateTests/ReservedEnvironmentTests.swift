import Foundation
import Testing

@testable import OrchestrateGenerate
@testable import OrchestrateSpec

/// Every variable the generators add must be one the validator refuses in a spec's `env`, or a spec could set
/// it a second time and the generated files would hold one key twice.
@Suite(.timeLimit(.minutes(5)))
struct ReservedEnvironmentTests {
    @Test(arguments: [UInt64(0)] + PropertyTests.seeds)
    func everyGeneratedVariableIsReserved(_ seed: UInt64) throws {
        let text =
            seed == 0 ? try String(contentsOf: GeneratedTree.shopSpec, encoding: .utf8) : HostileSpecs.spec(seed: seed)
        let spec = try #require(SpecLoader.load(Array(text.utf8)).spec)
        let topology = Topology(spec)
        for node in topology.nodes {
            let service = node.service
            let own = Set(service.env.map(\.name.value))
            let environment = ServiceEnvironment(node)
            var names = environment.entries.map(\.name)
            names += environment.secrets.map { $0.name + "_FILE" } + ["OTEL_EXPORTER_OTLP_ENDPOINT"]
            for name in names where !own.contains(name) || name.hasSuffix("_FILE") {
                // The rule skips a service whose names all fail this test, so none it reserves may fail it.
                #expect(
                    Topology.mayBeSetByOrchestrate(name),
                    "\(name) is generated, yet the reserved-env rule would skip it")
                #expect(
                    SpecRules.reservedVariables(for: service, in: spec)[name] != nil,
                    "\(service.name.value): \(name) is generated but a spec may set it")
            }
            #expect(
                Set(environment.entries.map(\.name)).count == environment.entries.count,
                "a name twice in \(service.name.value)")
        }
    }
}
