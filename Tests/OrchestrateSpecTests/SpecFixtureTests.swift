import Foundation
import OrchestrateSpec
import Testing

@Suite(.timeLimit(.minutes(5)))
struct SpecFixtureTests {
    @Test(arguments: FixtureFile.all)
    func fixtureHasExactlyTheExpectedDiagnostics(_ fixture: FixtureFile) {
        #expect(!fixture.expected.isEmpty || fixture.promisesValid, "the fixture states no expectation")
        let result = SpecLoader.load(fixture.bytes)
        #expect(result.diagnostics.map(\.expectation) == fixture.expected)
        for diagnostic in result.diagnostics {
            #expect(!diagnostic.message.isEmpty)
            #expect(diagnostic.location.line >= 1 && diagnostic.location.column >= 1)
        }
    }

    @Test func everyDiagnosticCodeHasAFixture() {
        let covered = Set(
            FixtureFile.all.flatMap(\.expected).compactMap { line -> String? in
                guard let open = line.firstIndex(of: "["), let close = line.firstIndex(of: "]") else { return nil }
                return String(line[line.index(after: open)..<close])
            })
        let uncovered = DiagnosticCode.all.map(\.name).filter { !covered.contains($0) }
        // file-too-large needs 8 MiB, so SpecLoaderTests builds it in memory instead of shipping a fixture.
        #expect(uncovered == ["file-too-large"])
    }

    @Test func fixturesAreNamedForTheirCode() {
        for fixture in FixtureFile.all {
            let stem = String(fixture.name.dropLast(".yaml".count))
            guard DiagnosticCode(name: stem) != nil else { continue }
            #expect(fixture.expected.contains { $0.contains("[\(stem)]") }, "\(fixture.name) does not show \(stem)")
        }
    }

    @Test func theShopSpecIsValidWithoutWarnings() throws {
        let root = FixtureFile.directory.deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let bytes = try Array(Data(contentsOf: root.appendingPathComponent("services.yaml")))
        let result = SpecLoader.load(bytes)
        #expect(result.diagnostics.isEmpty)
        let spec = try #require(result.spec)
        #expect(
            spec.services.map(\.name.value) == [
                "api-gateway", "user-service", "order-service", "payment-service", "notification-service",
            ])
        #expect(Set(spec.services.compactMap(\.database?.name.value)).count == 4)
        #expect(ServiceGraph(spec).startWaves() != nil)
    }
}
