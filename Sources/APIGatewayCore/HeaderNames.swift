import NIOHTTP1

/// A fixed set of header names, matched without regard to ASCII case (RFC 9110 §5.1) and without lowercasing or
/// hashing the name asked about: the proxy asks for every header of every request and response.
struct HeaderNames: Sendable {
    /// The lowercase names with their places in the list given, by their length in bytes.
    private let byLength: [[(name: [UInt8], position: Int)]]

    init(_ names: [String]) {
        let longest = names.map(\.utf8.count).max() ?? 0
        var byLength = [[(name: [UInt8], position: Int)]](repeating: [], count: longest + 1)
        for (position, name) in names.enumerated() {
            byLength[name.utf8.count].append((Array(name.lowercased().utf8), position))
        }
        self.byLength = byLength
    }

    func contains(_ name: String) -> Bool { position(of: name) != nil }

    func contains(_ name: some Collection<UInt8>) -> Bool { position(of: name) != nil }

    /// Where `name` stands in the list the set was made from, or nil when it is not in it.
    func position(of name: String) -> Int? { position(of: name.utf8) }

    func position(of name: some Collection<UInt8>) -> Int? {
        let count = name.count
        guard count < byLength.count else { return nil }
        let candidates = byLength[count]
        if candidates.isEmpty { return nil }
        return candidates.first { Self.equalIgnoringCase($0.name, name) }?.position
    }

    /// `lowercase` is already lowercase; `other` has the same length.
    private static func equalIgnoringCase(_ lowercase: [UInt8], _ other: some Sequence<UInt8>) -> Bool {
        var index = 0
        for byte in other {
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            guard folded == lowercase[index] else { return false }
            index += 1
        }
        return true
    }

    /// The names the `Connection` headers of `headers` list: hop-by-hop for this message only (RFC 9110 §7.6.1).
    /// `close` and `keep-alive` are left out: they name no header the proxy would forward.
    static func connectionOptions(_ headers: HTTPHeaders) -> Set<String> {
        var names: Set<String> = []
        for (name, value) in headers where connection.contains(name) {
            for token in value.utf8.split(separator: UInt8(ascii: ",")) {
                guard let first = token.firstIndex(where: { !isSpace($0) }),
                    let last = token.lastIndex(where: { !isSpace($0) })
                else { continue }
                let option = token[first...last]
                // Compared in place: nearly every answer says `keep-alive`, and no string need be made for it.
                if notOptions.contains(option) { continue }
                names.insert(String(decoding: option, as: UTF8.self).lowercased())
            }
        }
        return names
    }

    private static let connection = HeaderNames(["connection"])
    private static let notOptions = HeaderNames(["close", "keep-alive"])

    /// Optional whitespace (RFC 9110 §5.6.3), as around each name of a list.
    private static func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
}
