/// Turns values from the spec into text that means exactly that value in each output format, so no name, env
/// value or path can change the structure of a generated file.
enum OutputEscaping {
    /// A YAML double-quoted scalar, readable by YAML 1.1 (PyYAML, docker-compose) and 1.2 readers alike.
    ///
    /// Double quotes make every value text: `yes`, `no`, `on`, `1.0`, `0755`, `~`, `*`, `#`, `: ` all stay strings.
    /// Everything outside printable ASCII is escaped, which both YAML versions read back the same way.
    static func yaml(_ text: String) -> String {
        // Most values are printable ASCII without quotes or backslashes: quoted as they are.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            return "\"" + text + "\""
        }
        return quoted(text) { scalar in
            let hex = String(scalar.value, radix: 16, uppercase: true)
            if scalar.value <= 0xFF { return "\\x" + String(repeating: "0", count: 2 - hex.count) + hex }
            if scalar.value <= 0xFFFF { return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex }
            return "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
        }
    }

    /// A JSON string literal.
    static func json(_ text: String) -> String {
        quoted(text) { scalar in String(scalar).utf16.map { "\\u" + hex4(UInt32($0)) }.joined() }
    }

    /// A double-quoted string with the escapes YAML and JSON share; everything outside printable ASCII is
    /// written by `escapeOther` in the format's own notation. Built as bytes: appending to a String scalar by
    /// scalar cost more than the rest of generating a route table.
    private static func quoted(_ text: String, escapeOther: (Unicode.Scalar) -> String) -> String {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case "\\": out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case "\n": out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case "\t": out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case "\r": out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case " "..."~": out.append(UInt8(scalar.value))
            default: out += escapeOther(scalar).utf8
            }
        }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex4(_ value: UInt32) -> String {
        let hex = String(value, radix: 16, uppercase: false)
        return String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// An nginx string argument in double quotes. Route paths use a restricted character set (no `"`, `\`,
    /// space or control characters), but `;`, `'`, `{` or `$` could still end a directive or start a variable:
    /// quoting handles the first, and `$` is written as `${dollar}` (a variable the config defines as `$`).
    static func nginx(_ text: String, interpolated: Bool) -> String {
        var out = "\""
        for character in text {
            switch character {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "$" where interpolated: out += "${dollar}"
            default: out.append(character)
            }
        }
        return out + "\""
    }

    /// A PCRE pattern that matches `text` literally.
    static func regexLiteral(_ text: String) -> String {
        var out = ""
        for character in text {
            if "\\^$.|?*+()[]{}".contains(character) { out += "\\" }
            out.append(character)
        }
        return out
    }
}
