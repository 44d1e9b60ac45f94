/// The naming rules of DNS and Kubernetes that spec names must follow.
enum DNSName {
    /// What is wrong with `name` as a DNS-1123 label (lowercase letters, digits and `-`, at most 63, starting
    /// and ending with a letter or digit), or nil when nothing is.
    static func labelProblem(_ name: String, mustStartWithLetter: Bool = false) -> String? {
        let bytes = name.utf8
        guard let first = bytes.first, let last = bytes.last else { return "it is empty" }
        if bytes.count > 63 { return "it is \(bytes.count) characters long; the most is 63" }
        if let bad = bytes.first(where: { !isLabelByte($0) }) {
            if bad >= UInt8(ascii: "A") && bad <= UInt8(ascii: "Z") { return "it has uppercase letters" }
            let shown = name.unicodeScalars.first { !($0.isASCII && isLabelByte(UInt8($0.value))) }
            return "it has the character \"\(shown.map(String.init) ?? "?")\"; only a-z, 0-9 and - are allowed"
        }
        if first == UInt8(ascii: "-") || last == UInt8(ascii: "-") { return "it starts or ends with \"-\"" }
        if mustStartWithLetter, first.isASCIIDigit { return "it starts with a digit" }
        return nil
    }

    /// What is wrong with `name` as an event name: DNS-1123 labels joined by dots (`order.created`).
    static func eventNameProblem(_ name: String) -> String? {
        guard !name.isEmpty else { return "it is empty" }
        if name.utf8.count > 253 { return "it is longer than 253 characters" }
        if isPlainEventName(name) { return nil }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            if let problem = labelProblem(String(label)) {
                return label.isEmpty ? "it has an empty part between dots" : "the part \"\(label)\": \(problem)"
            }
        }
        return nil
    }

    /// The common case, checked in one pass: lowercase labels that start and end with a letter or digit,
    /// at most 63 long, joined by single dots.
    private static func isPlainEventName(_ name: String) -> Bool {
        var length = 0
        var previous: UInt8 = UInt8(ascii: ".")
        for byte in name.utf8 {
            if byte == UInt8(ascii: ".") {
                guard length > 0, previous != UInt8(ascii: "-") else { return false }
                length = 0
            } else {
                guard isLabelByte(byte), length < 63, !(length == 0 && byte == UInt8(ascii: "-")) else { return false }
                length += 1
            }
            previous = byte
        }
        return length > 0 && previous != UInt8(ascii: "-")
    }

    /// A valid label close to `name`, for the hint.
    static func suggestedLabel(for name: String) -> String? {
        var mapped = ""
        for scalar in name.lowercased().unicodeScalars {
            if scalar.isASCII, isLabelByte(UInt8(scalar.value)) {
                mapped.unicodeScalars.append(scalar)
            } else if !mapped.hasSuffix("-") {
                mapped += "-"
            }
        }
        let trimmed = String(mapped.drop { $0 == "-" }.prefix(63).reversed().drop { $0 == "-" }.reversed())
        return trimmed.isEmpty || trimmed == name ? nil : trimmed
    }

    private static func isLabelByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || byte.isASCIIDigit || byte == UInt8(ascii: "-")
    }
}
