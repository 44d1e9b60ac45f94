/// A YAML scalar as written: its text (kept in the tree), how it was quoted, its tag and where it starts.
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

    /// Where the text is in the tree's `texts`.
    var textIndex: Int32
    var style: Style
    var tag: Tag
    var location: SourceLocation

    /// Whether the core schema resolves the scalar from its text; quoted, block and `!!str` scalars are strings.
    var resolvesFromText: Bool {
        switch tag {
        case .string: false
        case .none, .merge: style == .plain
        case .typed: true
        }
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
        // Most scalars are names and paths: the first byte rules out null, booleans and numbers at once, and the
        // words (null, true, .inf, …) are at most five bytes long.
        let utf8 = text.utf8
        guard let first = utf8.first else {
            self = .null
            return
        }
        let mayBeWord = utf8.count <= 5
        switch first {
        case UInt8(ascii: "~"), UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "t"), UInt8(ascii: "T"),
            UInt8(ascii: "f"), UInt8(ascii: "F"):
            guard mayBeWord else {
                self = .string
                return
            }
        case UInt8(ascii: "."), UInt8(ascii: "+"), UInt8(ascii: "-"):
            break
        case _ where first.isASCIIDigit:
            self = ResolvedScalar.number(text) ?? .string
            return
        default:
            self = .string
            return
        }
        guard mayBeWord else {
            self = ResolvedScalar.number(text) ?? .string
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
        guard
            first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
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
/// A collection names its children by their place in the document's `YAMLTree` instead of holding an array: a
/// node then holds no reference, so the decoder copies nodes and entries without any reference counting, and a
/// document of 12,000 collections is three arrays instead of 12,000.
enum YAMLNode: Sendable {
    case scalar(YAMLScalar)
    case mapping(YAMLChildren, SourceLocation)
    case sequence(YAMLChildren, SourceLocation)

    var location: SourceLocation {
        switch self {
        case .scalar(let scalar): scalar.location
        case .mapping(_, let location), .sequence(_, let location): location
        }
    }
}

/// Where a collection's children sit in its tree: `count` entries (a mapping) or items (a sequence) from `start`.
struct YAMLChildren: Sendable, Equatable {
    var start: Int32
    var count: Int32
}

/// Every scalar's text and every collection's children of one document, each collection's side by side. Nodes
/// and entries hold only indices into it, so copying them costs no reference counting.
struct YAMLTree: Sendable {
    private(set) var texts: [String] = []
    private(set) var entries: [YAMLMappingEntry] = []
    private(set) var items: [YAMLNode] = []

    /// Reserves room for the nodes a document of `size` bytes is likely to have, from the shop's specs (a scalar
    /// every 10 bytes, a mapping entry every 18, a list item every 80), rounded up. Reserved pages that are never
    /// written cost nothing; growing by doubling would copy each array and write twice its final size.
    mutating func reserveCapacity(forDocumentOf size: Int) {
        texts.reserveCapacity(size / 8 + 16)
        entries.reserveCapacity(size / 14 + 16)
        items.reserveCapacity(size / 64 + 16)
    }

    func text(of scalar: YAMLScalar) -> String {
        texts[Int(scalar.textIndex)]
    }

    /// What a YAML 1.2 core-schema reader makes of the scalar.
    func resolved(_ scalar: YAMLScalar) -> ResolvedScalar {
        scalar.resolvesFromText ? ResolvedScalar(plain: text(of: scalar)) : .string
    }

    /// How the node is named in a "found …" message.
    func kindDescription(of node: YAMLNode) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar):
            switch resolved(scalar) {
            case .null: return "null"
            case .bool(let value): return "the boolean \(value)"
            case .int, .bigInt, .float: return "the number \(text(of: scalar))"
            case .string: return "the string \"\(text(of: scalar))\""
            }
        }
    }

    /// Keeps a scalar's text and says where it is.
    mutating func add(text: String) -> Int32 {
        defer { texts.append(text) }
        return Int32(texts.count)
    }

    /// A mapping's entries, indexed from 0.
    func entries(of children: YAMLChildren) -> YAMLChildList<YAMLMappingEntry> {
        YAMLChildList(storage: entries, start: Int(children.start), count: Int(children.count))
    }

    /// A sequence's items, indexed from 0.
    func items(of children: YAMLChildren) -> YAMLChildList<YAMLNode> {
        YAMLChildList(storage: items, start: Int(children.start), count: Int(children.count))
    }

    /// Adds a mapping's entries and says where they are.
    mutating func add<Entries: Collection<YAMLMappingEntry>>(entries new: Entries) -> YAMLChildren {
        defer { entries.append(contentsOf: new) }
        return YAMLChildren(start: Int32(entries.count), count: Int32(new.count))
    }

    /// Adds a sequence's items and says where they are.
    mutating func add<Items: Collection<YAMLNode>>(items new: Items) -> YAMLChildren {
        defer { items.append(contentsOf: new) }
        return YAMLChildren(start: Int32(items.count), count: Int32(new.count))
    }
}

/// A collection's children in their tree, indexed from 0.
struct YAMLChildList<Element: Sendable>: RandomAccessCollection, Sendable {
    let storage: [Element]
    let start: Int
    let count: Int

    var startIndex: Int { 0 }
    var endIndex: Int { count }

    subscript(position: Int) -> Element {
        precondition(position >= 0 && position < count, "index out of range")
        return storage[start + position]
    }
}
