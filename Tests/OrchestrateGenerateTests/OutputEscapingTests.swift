import Foundation
import OrchestrateTestSupport
import Testing

@testable import OrchestrateGenerate

@Suite(.timeLimit(.minutes(5)))
struct OutputEscapingTests {
    static let hostile = [
        "", " ", "yes", "no", "on", "off", "y", "n", "Yes", "NO", "true", "null", "~", "007", "0x1F", "1e3", "1.0",
        ".inf", "-", "- item", "---", "...", "a: b", "a #b", "#c", "*alias", "&anchor", "!tag", "%TAG", "@at",
        "`tick`", "{a: 1}", "[1, 2]", "'single'", "\"double\"", "back\\slash", "tab\there", "line\nbreak",
        "café", "中文", "🚀", "\u{2028}", "\u{85}", "\u{FEFF}bom", "\u{7}bell", "$HOME", "${X:-y}", "$$", "|", ">",
        "?", ",", "=", "  leading", "trailing  ",
    ]

    static let readers = [("pyyaml", ".build-compose-venv"), ("ruamel", ".build-venv")]

    /// The Python of a virtualenv of the package, not PATH's, which may lack the reader.
    static func python(venv: String) -> URL? {
        let python = ExternalTool.packageRoot.appendingPathComponent("\(venv)/bin/python")
        return FileManager.default.isExecutableFile(atPath: python.path) ? python : nil
    }

    @Test(.requires("the YAML readers' virtualenvs", readers.allSatisfy { python(venv: $0.1) != nil }))
    func yamlScalarsReadBackAsTheSameTextInYAML11And12() async throws {
        var available: [(String, URL)] = []
        for (reader, venv) in Self.readers {
            available.append((reader, try #require(Self.python(venv: venv), "\(reader) is missing (\(venv))")))
        }
        let directory = try ExternalTool.temporaryDirectory("escaping")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("values.yaml")
        let text =
            Self.hostile.enumerated().map { "\(OutputEscaping.yaml("k\($0)")): \(OutputEscaping.yaml($1))" }
            .joined(separator: "\n") + "\n"
        try Data(text.utf8).write(to: file)
        for (reader, python) in available {
            let script = GeneratedTree.supportDirectory.appendingPathComponent("parse_yaml.py").path
            let (status, output, errors) = try await ExternalTool.runCapturingErrors(
                python, [script, reader, file.path])
            #expect(status == 0, "\(reader): \(errors)")
            let parsed = try JSONSerialization.jsonObject(with: output) as? [String: [[String: Any]]]
            let values = try #require(parsed?[file.path]?.first)
            for (index, value) in Self.hostile.enumerated() {
                #expect(
                    values["k\(index)"] as? String == value, "\(reader) reads \(value.debugDescription) differently")
            }
        }
    }

    @Test func jsonStringsAreValidJSON() throws {
        let text = "[" + Self.hostile.map(OutputEscaping.json).joined(separator: ",") + "]"
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String]
        #expect(parsed == Self.hostile)
    }

    @Test func nginxStringsCannotEndADirectiveOrStartAVariable() {
        #expect(OutputEscaping.nginx("/a;b{c}'d", interpolated: false) == "\"/a;b{c}'d\"")
        #expect(OutputEscaping.nginx("/a$b", interpolated: true) == "\"/a${dollar}b\"")
        #expect(OutputEscaping.regexLiteral("/a.b(c)*+$") == "/a\\.b\\(c\\)\\*\\+\\$")
    }
}
