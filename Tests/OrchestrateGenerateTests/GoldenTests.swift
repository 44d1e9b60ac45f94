import Foundation
import OrchestrateSpec
import OrchestrateTestSupport
import Testing

@testable import OrchestrateGenerate

/// The shop's generated files, byte for byte, against the copies committed at the package root. After an
/// intended change, regenerate them with `swift run orchestrate generate` (or
/// `ORCHESTRATE_UPDATE_GOLDEN=1 swift test --filter GoldenTests`) and review the diff.
@Suite(.timeLimit(.minutes(5)))
struct GoldenTests {
    /// `orchestrate up` gives its gateway the route table alone; it is the committed gateway/routes.json.
    @Test func theRouteTableAloneIsTheGeneratedOne() throws {
        let tree = try GeneratedTree.shop()
        let routes = try #require(tree.files.first { $0.path == "gateway/routes.json" })
        #expect(Generator.routeTable(for: Topology(tree.spec)) == routes.contents)
    }

    @Test func theShopGeneratesExactlyTheCommittedFiles() throws {
        let tree = try GeneratedTree.shop()
        let root = GeneratedTree.goldenDirectory
        if ProcessInfo.processInfo.environment["ORCHESTRATE_UPDATE_GOLDEN"] != nil {
            for path in GeneratedTree.goldenPaths {
                try? FileManager.default.removeItem(at: root.appendingPathComponent(path))
            }
            try tree.write(to: root)
        }
        var expected = Set<String>()
        for top in GeneratedTree.goldenPaths {
            var isDirectory: ObjCBool = false
            guard
                FileManager.default.fileExists(atPath: root.appendingPathComponent(top).path, isDirectory: &isDirectory)
            else { continue }
            guard isDirectory.boolValue else {
                expected.insert(top)
                continue
            }
            let enumerator = FileManager.default.enumerator(atPath: root.appendingPathComponent(top).path)
            while let path = enumerator?.nextObject() as? String {
                var isSubdirectory: ObjCBool = false
                _ = FileManager.default.fileExists(
                    atPath: root.appendingPathComponent(top).appendingPathComponent(path).path,
                    isDirectory: &isSubdirectory)
                if !isSubdirectory.boolValue { expected.insert(top + "/" + path) }
            }
        }
        #expect(Set(tree.files.map(\.path)) == expected)
        for file in tree.files {
            let stored = try? String(contentsOf: root.appendingPathComponent(file.path), encoding: .utf8)
            #expect(stored == file.contents, "\(file.path) differs from the committed file; run orchestrate generate")
        }
    }

    @Test func twoRunsGiveTheSameBytes() throws {
        #expect(try GeneratedTree.shop().files == GeneratedTree.shop().files)
    }

    @Test(arguments: [
        (Generator.Target.compose, ["compose.yaml", "Dockerfile", ".dockerignore", "observability/prometheus.yml"]),
        (.gateway, ["gateway/routes.json", "gateway/nginx.conf", ".orchestrate-generated"]),
    ])
    func eachTargetWritesItsFiles(_ target: Generator.Target, _ paths: [String]) throws {
        let text = try String(contentsOf: GeneratedTree.shopSpec, encoding: .utf8)
        #expect(try GeneratedTree(specText: text, target: target).files.map(\.path) == paths)
    }

    @Test func theEmbeddedTemplatesAreTheFilesInTemplates() throws {
        let directory = ExternalTool.packageRoot.appendingPathComponent("templates")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter {
            $0.hasSuffix(".mustache")
        }
        #expect(Set(names.map { String($0.dropLast(".mustache".count)) }) == Set(BuiltinTemplates.all.keys))
        for name in names {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            #expect(
                BuiltinTemplates.all[String(name.dropLast(".mustache".count))] == text,
                "templates/\(name) changed; run scripts/embed-templates")
        }
    }

    @Test func aReplacedTemplateIsUsedAndAnUnknownOneRefused() throws {
        let templates = try TemplateSet(overrides: ["Dockerfile": "{{% CONTENT_TYPE: TEXT}}\nFROM {{{runtimeImage}}}\n"]
        )
        let spec = try #require(
            OrchestrateSpec.SpecLoader.load(Array(String(contentsOf: GeneratedTree.shopSpec, encoding: .utf8).utf8))
                .spec)
        let files = Generator(templates: templates).generate(spec, target: .compose)
        #expect(files.first { $0.path == "Dockerfile" }?.contents == "FROM ubuntu:24.04\n")
        #expect(throws: GenerateError.self) { try TemplateSet(overrides: ["compose.yml": ""]) }
        #expect(throws: GenerateError.self) { try TemplateSet(overrides: ["compose.yaml": "{{#unclosed}}"]) }
    }
}
