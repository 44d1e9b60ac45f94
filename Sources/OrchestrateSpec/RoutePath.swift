/// The rules a route prefix or rewrite must follow to mean the same to our gateway, nginx and Gateway API.
enum RoutePath {
    /// What is wrong with `path`, or nil. The character set is HTTPRoute's; the segment rules are its CEL rules.
    static func problem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "it must start with \"/\"" }
        if let bad = path.unicodeScalars.first(where: { !isAllowed($0) }) {
            return "the character \"\(bad.escaped(asASCII: true))\" is not allowed in a path"
        }
        if path.contains("//") { return "it contains \"//\"" }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        if segments.contains(where: { $0 == "." || $0 == ".." }) { return "it contains a \".\" or \"..\" segment" }
        if path.lowercased().contains("%2f") { return "it contains an encoded \"/\" (%2F)" }
        return nil
    }

    private static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        guard scalar.isASCII else { return false }
        let byte = UInt8(scalar.value)
        if byte.isASCIIDigit { return true }
        if byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z") { return true }
        return "/-._~%!$&'()*+,;=:@".utf8.contains(byte)
    }
}
