import OrchestrateSpec

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Formats diagnostics of one or more files as text, JSON or GitHub workflow commands.
struct DiagnosticRenderer {
    let format: DiagnosticFormat
    let useColor: Bool
    private var output = ""
    private var records: [JSONDiagnostic] = []

    init(format: DiagnosticFormat, useColor: Bool) {
        self.format = format
        self.useColor = useColor && format == .text
    }

    mutating func add(file: String, source: SpecSource, diagnostics: [Diagnostic], serviceCount: Int?) {
        switch format {
        case .text:
            for diagnostic in diagnostics { output += text(diagnostic, file: file, source: source) }
            output += summary(file: file, diagnostics: diagnostics, serviceCount: serviceCount)
        case .json:
            records += diagnostics.map { JSONDiagnostic(file: file, $0) }
        case .github:
            for diagnostic in diagnostics { output += github(diagnostic, file: file) }
        }
    }

    /// Everything to print, once every file has been added.
    func finish() -> String {
        guard format == .json else { return output }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(records)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private func text(_ diagnostic: Diagnostic, file: String, source: SpecSource) -> String {
        let location = diagnostic.location
        let severity = diagnostic.severity.rawValue
        let severityColor = diagnostic.severity == .error ? ANSI.red : ANSI.yellow
        var line = paint("\(file):\(location.line):\(location.column): ", ANSI.bold)
        line += paint("\(severity)[\(diagnostic.code)]", ANSI.bold + severityColor) + ": "
        if !diagnostic.path.isEmpty { line += paint(Self.visible(diagnostic.path), ANSI.bold) + ": " }
        line += Self.visible(diagnostic.message) + "\n"
        if let sourceLine = source.line(location.line) {
            let number = String(location.line)
            let gutter = String(repeating: " ", count: number.count)
            let (shown, column) = Self.window(of: sourceLine, around: location.column)
            let prefix = String(repeating: " ", count: max(0, column - 1))
            let underline = "^" + String(repeating: "~", count: max(0, tokenLength(in: shown, at: column) - 1))
            line += paint(" \(number) | ", ANSI.blue) + shown + "\n"
            line += paint(" \(gutter) | ", ANSI.blue) + prefix + paint(underline, ANSI.bold + severityColor) + "\n"
        }
        if let hint = diagnostic.hint { line += paint("  = hint: ", ANSI.cyan) + Self.visible(hint) + "\n" }
        return line
    }

    /// The most characters of a source line shown; a longer line (a minified or generated file) is shown as the
    /// part around the column, with `…` where it was cut.
    static let shownWidth = 120

    /// The source line as shown (tabs as spaces, cut to `shownWidth` around `column`) and the column in it.
    static func window(of line: String, around column: Int) -> (text: String, column: Int) {
        // Tabs as spaces; any other control character as its one-column picture (ESC as ␛), so the underline
        // still lines up and the spec cannot drive the terminal.
        let expanded = { (text: Substring) in
            String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == "\t" ? " " : Self.picture(of: $0) }))
        }
        // A line of at most shownWidth bytes has at most that many characters: no need to count them.
        guard line.utf8.count > shownWidth, line.count > shownWidth else { return (expanded(line[...]), column) }
        let start = max(0, min(column - 1 - shownWidth / 3, line.count - shownWidth))
        let part = line.dropFirst(start).prefix(shownWidth)
        let head = start > 0 ? "…" : ""
        let tail = start + shownWidth < line.count ? "…" : ""
        return (head + expanded(part) + tail, column - start + head.count)
    }

    /// Text from the spec (messages quote it), safe for a terminal: a control character (C0, DEL, C1) becomes
    /// `\u{1B}`, so a spec cannot set the terminal's title, write to its clipboard (OSC 52) or move the cursor.
    static func visible(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var shown = ""
        for scalar in text.unicodeScalars {
            if isControl(scalar) {
                shown += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                shown.unicodeScalars.append(scalar)
            }
        }
        return shown
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// A control character as one visible character: C0 as its Control Picture (␛), DEL as ␡, C1 as �.
    static func picture(of scalar: Unicode.Scalar) -> Unicode.Scalar {
        switch scalar.value {
        case 0..<0x20: Unicode.Scalar(0x2400 + scalar.value) ?? "?"
        case 0x7F: "\u{2421}"
        case 0x80...0x9F: "\u{FFFD}"
        default: scalar
        }
    }

    /// How many characters of the token starting at `column` to underline: a quoted string whole, otherwise up
    /// to the next separator.
    private func tokenLength(in line: String, at column: Int) -> Int {
        let characters = Array(line)
        let start = column - 1
        guard start >= 0, start < characters.count else { return 1 }
        let first = characters[start]
        var end = start + 1
        if first == "\"" || first == "'" {
            while end < characters.count, characters[end] != first { end += 1 }
            return min(end + 1, characters.count) - start
        }
        while end < characters.count, !",]}#".contains(characters[end]),
            !(characters[end] == ":" && (end + 1 == characters.count || characters[end + 1] == " "))
        {
            end += 1
        }
        while end > start + 1, characters[end - 1] == " " { end -= 1 }
        return end - start
    }

    private func summary(file: String, diagnostics: [Diagnostic], serviceCount: Int?) -> String {
        let errors = diagnostics.count { $0.severity == .error }
        let warnings = diagnostics.count - errors
        if errors == 0 && warnings == 0 {
            let services = serviceCount.map { ", \($0) service\($0 == 1 ? "" : "s")" } ?? ""
            return paint("\(file): valid\(services)", ANSI.green) + "\n"
        }
        var parts: [String] = []
        if errors > 0 { parts.append("\(errors) error\(errors == 1 ? "" : "s")") }
        if warnings > 0 { parts.append("\(warnings) warning\(warnings == 1 ? "" : "s")") }
        return paint("\(file): " + parts.joined(separator: ", "), ANSI.bold) + "\n"
    }

    private func github(_ diagnostic: Diagnostic, file: String) -> String {
        let command = diagnostic.severity == .error ? "error" : "warning"
        // The log that shows these is a terminal too: the spec's text with its control characters escaped.
        let text = Self.visible(diagnostic.message)
        var message = diagnostic.path.isEmpty ? text : "\(Self.visible(diagnostic.path)): \(text)"
        if let hint = diagnostic.hint { message += "\nhint: " + Self.visible(hint) }
        let properties = [
            "file=" + Self.escapeProperty(file), "line=\(diagnostic.location.line)",
            "col=\(diagnostic.location.column)", "title=" + Self.escapeProperty("\(command)[\(diagnostic.code)]"),
        ]
        return "::\(command) \(properties.joined(separator: ","))::\(Self.escapeData(message))\n"
    }

    /// The escaping GitHub's workflow-command parser undoes for a message.
    static func escapeData(_ text: String) -> String {
        text.replacing("%", with: "%25").replacing("\r", with: "%0D").replacing("\n", with: "%0A")
    }

    /// The escaping for a property value, which also may not hold `:` or `,`.
    static func escapeProperty(_ text: String) -> String {
        escapeData(text).replacing(":", with: "%3A").replacing(",", with: "%2C")
    }

    private func paint(_ text: String, _ style: String) -> String {
        useColor ? style + text + ANSI.reset : text
    }
}

/// One diagnostic as `--format json` prints it.
struct JSONDiagnostic: Codable, Equatable {
    var file: String
    var line: Int
    var column: Int
    var severity: String
    var code: String
    var path: String
    var message: String
    var hint: String?

    init(file: String, _ diagnostic: Diagnostic) {
        self.file = file
        line = diagnostic.location.line
        column = diagnostic.location.column
        severity = diagnostic.severity.rawValue
        code = diagnostic.code.name
        path = diagnostic.path
        message = diagnostic.message
        hint = diagnostic.hint
    }
}

enum ANSI {
    static let reset = "\u{1B}[0m"
    static let bold = "\u{1B}[1m"
    static let red = "\u{1B}[31m"
    static let green = "\u{1B}[32m"
    static let yellow = "\u{1B}[33m"
    static let blue = "\u{1B}[34m"
    static let cyan = "\u{1B}[36m"
}
