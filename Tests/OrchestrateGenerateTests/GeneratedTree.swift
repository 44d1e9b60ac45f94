import Foundation
import OrchestrateSpec
import OrchestrateTestSupport

@testable import OrchestrateGenerate

/// Generated files of one spec, and where the tests put them on disk.
struct GeneratedTree {
    static let shopSpec = ExternalTool.packageRoot.appendingPathComponent("services.yaml")
    /// The shop's generated files are committed at the package root: they are the golden files, and
    /// `orchestrate generate all --check` guards them in CI as it would in a user's repository.
    static let goldenDirectory = ExternalTool.packageRoot
    static let goldenPaths = [
        "compose.yaml", "Dockerfile", ".dockerignore", "observability", "k8s", "gateway", ".orchestrate-generated",
    ]
    static let supportDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Support")

    let spec: Spec
    let files: [GeneratedFile]

    init(specText: String, target: Generator.Target = .all) throws {
        let result = SpecLoader.load(Array(specText.utf8))
        guard let spec = result.spec, !result.hasErrors else {
            throw SpecError(diagnostics: result.diagnostics)
        }
        self.spec = spec
        files = Generator(templates: try TemplateSet()).generate(spec, target: target)
    }

    static func shop() throws -> GeneratedTree {
        try GeneratedTree(specText: String(contentsOf: shopSpec, encoding: .utf8))
    }

    /// Writes every file under `directory`.
    func write(to directory: URL) throws {
        for file in files {
            let url = directory.appendingPathComponent(file.path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(file.contents.utf8).write(to: url)
        }
    }

    func file(_ path: String) -> String? { files.first { $0.path == path }?.contents }

    struct SpecError: Error, CustomStringConvertible {
        var diagnostics: [Diagnostic]
        var description: String {
            diagnostics.map { "\($0.location): \($0.code): \($0.path): \($0.message)" }.joined(separator: "\n")
        }
    }
}
