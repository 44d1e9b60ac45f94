/// A YAML scalar as written: its text, how it was quoted, its tag and where it starts.
struct YAMLScalar: Sendable {
    enum Style: Sendable {
        case plain
        case quoted
        case block
    }

    /// What a tag says about a scalar; one byte instead of the tag's text, since only standard tags are allowed.
    enum Tag: UInt8, Sendable {
        /// No tag, or an unknown one (already reported).
        case none
        /// `!!str` or the non-specific `!`: text, whatever it looks like.
        case string
        /// `!!int`, `!!float`, `!!bool`, `!!null`, `!!map`, `!!seq`: resolved from the text as if plain.
        case typed
        /// `!!merge`: a merge key however it is spelled.
        case merge

        init(_ tag: String?) {
            switch tag {
            case nil: self = .none
            case YAMLTag.str, YAMLTag.nonSpecific: self = .string
            case YAMLTag.prefix + "merge": self = .merge
            case let tag? where YAMLTag.known.contains(tag): self = .typed
            default: self = .none
            }
        }
    }

    var text: String
    var style: Style
    var tag: Tag
    var location: SourceLocation

    /// What a YAML 1.2 core-schema reader makes of this scalar; quoted, block and `!!str` scalars are strings.
    var resolved: ResolvedScalar {
        switch tag {
        case .string: return .string
        case .none, .merge: if style != .plain { return .string }
        case .typed: break
        }
        return ResolvedScalar(plain: text)
    }
}

/// The kinds of value a plain scalar resolves to under the YAML 1.2 core schema.
enum ResolvedScalar: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    /// An integer too large for `Int`, kept so the error can say so instead of calling it a string.
    case bigInt
    case float(Double)
    case string

    init(plain text: String) {
        // Most scalars are names and paths: the first byte rules out null, booleans and numbers at once.
        guard let first = text.utf8.first else {
            self = .null
            return
        }
        switch first {
        case UInt8(ascii: "~"), UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "t"), UInt8(ascii: "T"),
            UInt8(ascii: "f"), UInt8(ascii: "F"), UInt8(ascii: "."), UInt8(ascii: "+"), UInt8(ascii: "-"):
            break
        case _ where first.isASCIIDigit:
            break
        default:
            self = .string
            return
        }
        switch text {
        case "", "~", "null", "Null", "NULL": self = .null
        case "true", "True", "TRUE": self = .bool(true)
        case "false", "False", "FALSE": self = .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": self = .float(.infinity)
        case "-.inf", "-.Inf", "-.INF": self = .float(-.infinity)
        case ".nan", ".NaN", ".NAN": self = .float(.nan)
        default: self = ResolvedScalar.number(text) ?? .string
        }
    }

    /// The core schema's int (`[-+]?[0-9]+`, `0o…`, `0x…`) and float forms; nil for anything else.
    private static func number(_ text: String) -> ResolvedScalar? {
        var copy = text
        return copy.withUTF8 { number(text, $0) }
    }

    private static func number(_ text: String, _ bytes: UnsafeBufferPointer<UInt8>) -> ResolvedScalar? {
        guard let first = bytes.first else { return nil }
        guard first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
            || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9"))
        else { return nil }
        if bytes.count > 2, bytes[0] == UInt8(ascii: "0") {
            if bytes[1] == UInt8(ascii: "x") {
                return Int(String(text.dropFirst(2)), radix: 16).map { .int($0) } ?? nil
            }
            if bytes[1] == UInt8(ascii: "o") {
                return Int(String(text.dropFirst(2)), radix: 8).map { .int($0) } ?? nil
            }
        }
        var index = 0
        if bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") { index += 1 }
        let digitsStart = index
        while index < bytes.count, bytes[index].isASCIIDigit { index += 1 }
        let integerDigits = index - digitsStart
        if index == bytes.count {
            guard integerDigits > 0 else { return nil }
            return Int(text).map { .int($0) } ?? .bigInt
        }
        var fractionDigits = 0
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            let fractionStart = index
            while index < bytes.count, bytes[index].isASCIIDigit { index += 1 }
            fractionDigits = index - fractionStart
        }
        guard integerDigits + fractionDigits > 0 else { return nil }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
                index += 1
            }
            let exponentStart = index
            while index < bytes.count, bytes[index].isASCIIDigit { index += 1 }
            guard index > exponentStart else { return nil }
        }
        guard index == bytes.count, let value = Double(text) else { return nil }
        return .float(value)
    }
}

extension UInt8 {
    var isASCIIDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
}

/// The tags a spec may use; anything else is reported as unknown.
enum YAMLTag {
    static let prefix = "tag:yaml.org,2002:"
    static let str = prefix + "str"
    static let nonSpecific = "!"
    static let known: Set<String> = [
        nonSpecific, prefix + "str", prefix + "int", prefix + "float", prefix + "bool", prefix + "null",
        prefix + "map", prefix + "seq", prefix + "merge",
    ]
}

/// One `key: value` of a mapping. Keys are scalars: a spec has no use for complex keys.
struct YAMLMappingEntry: Sendable {
    var key: YAMLScalar
    var value: YAMLNode
}

/// A node of the document tree; every node knows where it starts.
///
/// Not `indirect`: the recursion runs through arrays, which are references already, so a node needs no box of
/// its own — one allocation fewer for every node of the document.
enum YAMLNode: Sendable {
    case scalar(YAMLScalar)
    case mapping([YAMLMappingEntry], SourceLocation)
    case sequence([YAMLNode], SourceLocation)

    var location: SourceLocation {
        switch self {
        case .scalar(let scalar): scalar.location
        case .mapping(_, let location), .sequence(_, let location): location
        }
    }

    /// How the node is named in a "found …" message.
    var kindDescription: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar):
            switch scalar.resolved {
            case .null: return "null"
            case .bool(let value): return "the boolean \(value)"
            case .int, .bigInt, .float: return "the number \(scalar.text)"
            case .string: return "the string \"\(scalar.text)\""
            }
        }
    }
}
