import Foundation
import OrchestrateSpec
import Testing

/// A spec under `Fixtures/` and the diagnostics its trailing `# expect:` comments promise.
struct FixtureFile: CustomTestStringConvertible, Sendable {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Fixtures")

    static var all: [FixtureFile] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted().map(FixtureFile.init)
    }

    let name: String
    var testDescription: String { name }
    var url: URL { Self.directory.appendingPathComponent(name) }
    var bytes: [UInt8] { (try? Array(Data(contentsOf: url))) ?? [] }

    /// `severity[code] line:column`, one a line, as the fixture's comments state them.
    var expected: [String] {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("# expect: ") else { return nil }
            let value = line.dropFirst("# expect: ".count)
            return value == "valid" ? nil : String(value)
        }
    }

    var promisesValid: Bool { String(decoding: bytes, as: UTF8.self).contains("# expect: valid") }
}

extension Diagnostic {
    /// The form a fixture's `# expect:` comment states.
    var expectation: String { "\(severity.rawValue)[\(code)] \(location.line):\(location.column)" }
}
