/// A request's path as the gateway routes it and forwards it, by the rules nginx applies to `$uri` (the generated
/// nginx.conf routes on the same form and, with `rewrite ^ $uri break`, sends it upstream too):
///
/// 1. every `%XX` is decoded (`%2e` is a dot, `%2F` a slash); a `%` without two hex digits, or a decoded NUL, is
///    refused;
/// 2. runs of `/` become one;
/// 3. `.` segments are dropped and `..` removes the segment before it; a `..` above the root is refused;
/// 4. a path that ended in `/`, `.` or `..` keeps its trailing `/`.
///
/// Routing on any other form lets a path reach a route it does not match as text: `/api/public//admin` is
/// `/api/public/admin` to an upstream that collapses slashes, and `/api/public/%2e%2e/admin` is `/api/admin` to one
/// that decodes before resolving dots. One deliberate difference from nginx: a path whose decoded bytes are not
/// UTF-8 is refused (nginx passes them on); a service sees its path as a string.
public enum RequestPath {
    public enum Refusal: Error, Equatable, Sendable {
        case badEscape, nul, aboveRoot, notUTF8

        /// What the client is told.
        public var message: String {
            switch self {
            case .badEscape: "the path has a % that is not followed by two hex digits"
            case .nul: "the path holds a NUL byte"
            case .aboveRoot: "the path's .. segments climb above /"
            case .notUTF8: "the path, percent-decoded, is not UTF-8"
            }
        }
    }

    /// The decoded, normalized form of `raw` (a request target's path, without its query).
    public static func normalize(_ raw: some StringProtocol) -> Result<String, Refusal> {
        let plain = raw.utf8.withContiguousStorageIfAvailable { bytes in
            isPlain(bytes) ? String(decoding: bytes, as: UTF8.self) : nil
        }
        if case .some(.some(let path)) = plain { return .success(path) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(raw.utf8.count + 1)
        var bytes = raw.utf8.makeIterator()
        if raw.utf8.first != UInt8(ascii: "/") { decoded.append(UInt8(ascii: "/")) }
        while let byte = bytes.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = bytes.next().flatMap(hexValue), let low = bytes.next().flatMap(hexValue) else {
                    return .failure(.badEscape)
                }
                let value = high << 4 | low
                guard value != 0 else { return .failure(.nul) }
                decoded.append(value)
            } else {
                guard byte != 0 else { return .failure(.nul) }
                decoded.append(byte)
            }
        }
        var segments: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        let parts = decoded.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        for part in parts {
            trailingSlash = true
            if part.isEmpty || part.elementsEqual([UInt8(ascii: ".")]) { continue }
            if part.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                guard !segments.isEmpty else { return .failure(.aboveRoot) }
                segments.removeLast()
                continue
            }
            segments.append(part)
            trailingSlash = false
        }
        var path: [UInt8] = []
        path.reserveCapacity(decoded.count)
        for segment in segments {
            path.append(UInt8(ascii: "/"))
            path += segment
        }
        if path.isEmpty || trailingSlash { path.append(UInt8(ascii: "/")) }
        guard let text = String(validating: path, as: UTF8.self) else { return .failure(.notUTF8) }
        return .success(text)
    }

    /// Whether `path` is already in the normal form with nothing to decode: it starts with `/`, and holds no `%`, no
    /// NUL, no `//` and no segment that starts with a dot. Most paths are, and they skip the decoding and the
    /// segment list (3.4 % of the gateway's CPU per request, BENCHMARKS.md "gateway").
    private static func isPlain(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        guard path.first == UInt8(ascii: "/") else { return false }
        var previous: UInt8 = 0
        for byte in path {
            switch byte {
            case 0, UInt8(ascii: "%"):
                return false
            case UInt8(ascii: "/"), UInt8(ascii: "."):
                if previous == UInt8(ascii: "/") { return false }
            default:
                break
            }
            previous = byte
        }
        return true
    }

    /// `path` (decoded) escaped for a request line, escaping what nginx's `ngx_escape_uri` does for a URI:
    /// controls, space, `"`, `#`, `%`, `<`, `>`, `?`, `\`, `^`, `` ` ``, `{`, `|`, `}`, DEL and every non-ASCII byte.
    public static func escape(_ path: String) -> String {
        var needsEscaping = false
        for byte in path.utf8 where escaped(byte) {
            needsEscaping = true
            break
        }
        guard needsEscaping else { return path }
        var out: [UInt8] = []
        out.reserveCapacity(path.utf8.count + 16)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in path.utf8 {
            if escaped(byte) {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func escaped(_ byte: UInt8) -> Bool {
        if byte <= 0x20 || byte >= 0x7F { return true }
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "#"), UInt8(ascii: "%"), UInt8(ascii: "<"), UInt8(ascii: ">"),
            UInt8(ascii: "?"), UInt8(ascii: "\\"), UInt8(ascii: "^"), UInt8(ascii: "`"), UInt8(ascii: "{"),
            UInt8(ascii: "|"), UInt8(ascii: "}"):
            return true
        default:
            return false
        }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
