/// One libyaml event as the composer needs it: kind, position, scalar style and strings. The strings are copied out
/// of libyaml's memory into the event's batch, so an event outlives `yaml_event_delete` and can cross threads.
struct YAMLEvent: Sendable {
    /// The events the composer acts on; libyaml's stream start and document end carry nothing it needs and are not
    /// delivered.
    enum Kind: UInt8, Sendable {
        case streamEnd
        case documentStart
        case scalar
        case alias
        case mappingStart
        case mappingEnd
        case sequenceStart
        case sequenceEnd
    }

    var kind: Kind
    /// A scalar's style; `.plain` for the other kinds.
    var style: YAMLScalar.Style
    var location: SourceLocation
    /// A scalar's text, or the anchor name an alias refers to.
    var value: YAMLEventText
    /// The anchor a scalar or collection defines (`&name`).
    var anchor: YAMLEventText
    /// A scalar's or collection's tag, as libyaml resolved it (`tag:yaml.org,2002:str`).
    var tag: YAMLEventText
}

/// Where one string of an event lies in its batch's bytes.
struct YAMLEventText: Sendable {
    var start: Int32
    /// The length in bytes; negative when the event has no such string.
    var count: Int32

    static let absent = YAMLEventText(start: 0, count: -1)

    var isAbsent: Bool { count < 0 }
}

/// Events in document order with the bytes of their strings.
///
/// A batch belongs to one thread at a time: the producer's while it fills it, the composer's from the moment it
/// is handed over until it is given back to be filled again; it moves between them whole, so its arrays are never
/// shared and never copied. Batches are reused, so a long document needs only a few of them.
struct YAMLEventBatch: Sendable {
    var events: [YAMLEvent] = []
    var bytes: [UInt8] = []

    init(capacity: Int) {
        events.reserveCapacity(capacity)
        bytes.reserveCapacity(capacity * 16)
    }

    /// Keeps `count` bytes from `pointer` and says where they are.
    mutating func append(_ pointer: UnsafePointer<UInt8>, count: Int) -> YAMLEventText {
        let start = Int32(truncatingIfNeeded: bytes.count)
        bytes.append(contentsOf: UnsafeBufferPointer(start: pointer, count: count))
        return YAMLEventText(start: start, count: Int32(truncatingIfNeeded: count))
    }
}

/// Why libyaml stopped: its problem text, where, and the context it was parsing.
struct YAMLParseFailure: Sendable {
    var problem: String?
    var problemLocation: SourceLocation
    /// The byte offset of the problem; a reader error (bad encoding, a control character) has only this.
    var problemOffset: Int
    var isReaderError: Bool
    var context: String?
    var contextLocation: SourceLocation
}
