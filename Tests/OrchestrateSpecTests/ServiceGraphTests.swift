import OrchestrateSpec
import Testing

@Suite(.timeLimit(.minutes(5)))
struct ServiceGraphTests {
    private func spec(_ text: String) throws -> Spec {
        try #require(SpecLoader.load(Array(text.utf8)).spec)
    }

    @Test func wavesStartIndependentServicesTogether() throws {
        let graph = ServiceGraph(
            try spec(
                """
                version: 1
                name: g
                services:
                  gateway: { product: G, dependsOn: [orders, users] }
                  orders: { product: O, dependsOn: [users, payments] }
                  users: { product: U }
                  payments: { product: P }
                """))
        #expect(graph.startWaves() == [["users", "payments"], ["orders"], ["gateway"]])
        #expect(graph.dependents(of: "users") == ["gateway", "orders"])
        #expect(graph.dependencies(of: "orders") == ["users", "payments"])
    }

    @Test func everyCycleIsReportedOnceWithItsWholePath() throws {
        let graph = ServiceGraph(
            try spec(
                """
                version: 1
                name: g
                services:
                  a: { product: A, dependsOn: [b] }
                  b: { product: B, dependsOn: [c, a] }
                  c: { product: C, dependsOn: [a] }
                """))
        #expect(graph.startWaves() == nil)
        #expect(Set(graph.cycles().map(\.path)) == [["a", "b", "c", "a"], ["a", "b", "a"]])
    }

    @Test func aLongChainNeedsNoDeepRecursion() throws {
        var text = "version: 1\nname: chain\nservices:\n"
        for index in 0..<5_000 { text += "  s\(index): { product: P, dependsOn: [s\(index + 1)] }\n" }
        text += "  s5000: { product: P, dependsOn: [s0] }\n"
        let cycles = ServiceGraph(try spec(text)).cycles()
        #expect(cycles.count == 1)
        #expect(cycles.first?.path.count == 5_002)
    }
}
