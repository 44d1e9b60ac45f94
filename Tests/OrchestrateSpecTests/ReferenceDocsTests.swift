import Foundation
import OrchestrateTestSupport
import Testing

@testable import OrchestrateSpec

/// docs/services-yaml.md must name every field the decoder reads and every diagnostic code it can report.
@Suite(.timeLimit(.minutes(5)))
struct ReferenceDocsTests {
    static let reference: String = {
        let url = ExternalTool.packageRoot.appendingPathComponent("docs/services-yaml.md")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }()

    @Test func everyDiagnosticCodeIsDocumented() {
        for code in DiagnosticCode.all {
            #expect(Self.reference.contains("| `\(code.name)` |"), "docs/services-yaml.md lacks \(code.name)")
        }
    }

    @Test func everyFieldIsDocumented() {
        let fields =
            SpecDecoder.topLevelFields + SpecDecoder.serviceFields + SpecDecoder.probeFields
            + SpecDecoder.routeFields + SpecDecoder.resourceFields
        for field in fields {
            #expect(Self.reference.contains("`\(field)`"), "docs/services-yaml.md lacks the field \(field)")
        }
    }
}
