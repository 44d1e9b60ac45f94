/// The rules a route prefix or rewrite must follow to mean the same to our gateway, nginx and Gateway API.
enum RoutePath {
    /// What is wrong with `path`, or nil. The character set is HTTPRoute's; the segment rules are its CEL rules.
    static func problem(_ path: String) -> String? {
        guard path.utf8.first == UInt8(ascii: "/") else { return "it must start with \"/\"" }
        var segmentStart = 1
        var previous: UInt8 = 0
        var index = 0
        for byte in path.utf8 {
            if byte >= 0x80 || !allowed[Int(byte)] {
                let bad = path.unicodeScalars.first { !($0.isASCII && allowed[Int($0.value)]) }
                return "the character \"\(bad.map { $0.escaped(asASCII: true) } ?? "?")\" is not allowed in a path"
            }
            if byte == UInt8(ascii: "/") {
                if previous == UInt8(ascii: "/") { return "it contains \"//\"" }
                if index > 0, isDotSegment(path, from: segmentStart, to: index) {
                    return "it contains a \".\" or \"..\" segment"
                }
                segmentStart = index + 1
            }
            if (byte | 0x20) == UInt8(ascii: "f"), index >= 2, previous == UInt8(ascii: "2"),
                path.utf8[path.utf8.index(path.utf8.startIndex, offsetBy: index - 2)] == UInt8(ascii: "%")
            {
                return "it contains an encoded \"/\" (%2F)"
            }
            previous = byte
            index += 1
        }
        if isDotSegment(path, from: segmentStart, to: index) { return "it contains a \".\" or \"..\" segment" }
        return nil
    }

    private static func isDotSegment(_ path: String, from start: Int, to end: Int) -> Bool {
        let length = end - start
        guard length == 1 || length == 2 else { return false }
        let utf8 = path.utf8
        let first = utf8.index(utf8.startIndex, offsetBy: start)
        return utf8[first..<utf8.index(first, offsetBy: length)].allSatisfy { $0 == UInt8(ascii: ".") }
    }

    /// Letters, digits and `/-._~%!$&'()*+,;=:@`.
    private static let allowed: [Bool] = (0..<128).map { code in
        let byte = UInt8(code)
        return byte.isASCIIDigit || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
            || "/-._~%!$&'()*+,;=:@".utf8.contains(byte)
    }
}
