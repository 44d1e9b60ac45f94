extension DNSMessage {
    /// The question of a query, as a server reads it.
    public struct Question: Sendable, Equatable {
        public var id: UInt16
        /// The name asked, lowercased, without a trailing dot.
        public var name: String
        /// The type asked (1 A, 28 AAAA, 33 SRV, 255 ANY, …).
        public var type: UInt16
        public var recordClass: UInt16
        /// Whether the client asked for recursion (echoed in the answer).
        public var recursionDesired: Bool
        /// The question section as sent, echoed in the answer.
        var wire: ArraySlice<UInt8>
    }

    public enum ResponseCode: UInt8, Sendable {
        case noError = 0
        case formatError = 1
        case serverFailure = 2
        case nameError = 3  // NXDOMAIN
        case notImplemented = 4
        case refused = 5
    }

    /// Reads a query with exactly one question; nil for anything else (a response, no question, a truncated
    /// message), which a server drops.
    public static func question(in bytes: [UInt8]) -> Question? {
        var reader = Reader(bytes: bytes)
        guard let id = try? reader.uint16(), let flags = try? reader.uint16(), flags & 0x8000 == 0,
            flags & 0x7800 == 0,  // opcode QUERY
            let questions = try? reader.uint16(), questions == 1
        else { return nil }
        reader.offset = 12
        let start = reader.offset
        guard let name = try? reader.name(), let type = try? reader.uint16(), let recordClass = try? reader.uint16()
        else { return nil }
        return Question(
            id: id, name: name.lowercased(), type: type, recordClass: recordClass,
            recursionDesired: flags & 0x0100 != 0, wire: bytes[start..<reader.offset])
    }

    /// An authoritative answer to `question` with `records` (each named as asked, TTL `ttl` seconds).
    public static func answer(
        to question: Question, records: [Record], code: ResponseCode = .noError, ttl: UInt32 = 1
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        append16(question.id, to: &bytes)
        var flags: UInt16 = 0x8000 | 0x0400  // QR, AA
        if question.recursionDesired { flags |= 0x0100 }
        flags |= UInt16(code.rawValue)
        append16(flags, to: &bytes)
        append16(1, to: &bytes)
        append16(UInt16(records.count), to: &bytes)
        append16(0, to: &bytes)
        append16(0, to: &bytes)
        bytes += question.wire
        for record in records {
            bytes += [0xC0, 0x0C]  // the name: a pointer to the question's
            switch record {
            case .a(let address):
                append16(RecordType.a.rawValue, to: &bytes)
                append16(1, to: &bytes)
                append32(ttl, to: &bytes)
                let octets = address.split(separator: ".").compactMap { UInt8($0) }
                append16(UInt16(octets.count), to: &bytes)
                bytes += octets
            case .srv(let priority, let weight, let port, let target):
                append16(RecordType.srv.rawValue, to: &bytes)
                append16(1, to: &bytes)
                append32(ttl, to: &bytes)
                let name = encodeName(target)
                append16(UInt16(6 + name.count), to: &bytes)
                append16(priority, to: &bytes)
                append16(weight, to: &bytes)
                append16(port, to: &bytes)
                bytes += name
            }
        }
        return bytes
    }

    static func append32(_ value: UInt32, to bytes: inout [UInt8]) {
        append16(UInt16(value >> 16), to: &bytes)
        append16(UInt16(value & 0xFFFF), to: &bytes)
    }

    static func encodeName(_ name: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for label in name.split(separator: ".") {
            let utf8 = Array(label.utf8.prefix(63))
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        bytes.append(0)
        return bytes
    }
}
