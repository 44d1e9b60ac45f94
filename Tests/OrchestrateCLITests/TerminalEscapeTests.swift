import Foundation
import OrchestrateTestSupport
import Testing

/// A spec cannot drive the terminal that shows its diagnostics: no escape sequence (set the title, OSC 52 to
/// the clipboard) reaches the output, in any format.
@Suite(.timeLimit(.minutes(5)))
struct TerminalEscapeTests {
    @Test func controlCharactersInASpecArePrintedEscaped() async throws {
        let directory = try ExternalTool.temporaryDirectory("escapes")
        defer { try? FileManager.default.removeItem(at: directory) }
        // YAML's \e and \a put ESC and BEL into a key, which the diagnostic quotes.
        let quoted = directory.appendingPathComponent("services.yaml")
        try Data(
            "version: 1\nname: esc\nservices:\n  a:\n    product: A\n    \"title\\e]0;pwned\\a\": 1\n    \"clip\\e]52;c;ZXZpbA==\\a\": 2\n"
                .utf8
        ).write(to: quoted)
        // A raw ESC in a comment: the source line itself is shown.
        let raw = directory.appendingPathComponent("raw.yaml")
        try Data("version: 1\nname: esc\n# \u{1B}]0;pwned\u{7} raw\nservices: {}\n".utf8).write(to: raw)
        for format in ["text", "github", "json"] {
            for file in [quoted, raw] {
                let run = try await orchestrate(["validate", file.path, "--format", format, "--color", "always"])
                #expect(run.status == 1)
                let output = run.stdout + run.stderr
                // Colour is on, so ESC appears only as the start of SGR colour codes (`ESC [ … m`), never OSC.
                #expect(!output.contains("\u{1B}]") && !output.contains("\u{7}"), "\(format) \(file.lastPathComponent)")
            }
        }
        let text = try await orchestrate(["validate", quoted.path, "--color", "never"])
        #expect(text.stdout.contains("\"title\\u{1B}]0;pwned\\u{7}\""), "\(text.stdout)")
        let shown = try await orchestrate(["validate", raw.path, "--color", "never"])
        #expect(shown.stdout.contains("# \u{241B}]0;pwned\u{2407} raw"), "\(shown.stdout)")
    }
}
