/// DNS messages (RFC 1035) as orchestrate needs them: the client side (a query for one name and type, the A and SRV
/// records of an answer) for ServiceKit's resolver, and the server side (a question, an answer) for the supervisor's
/// DNS server. Written by hand because no package in the set speaks DNS; tested against dnsmasq and dig.
public enum DNSMessage {
    public enum RecordType: UInt16, Sendable {
        case a = 1
        case srv = 33
    }

    /// A record of an answer section.
    public enum Record: Equatable, Sendable {
        case a(String)
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
    }

    public struct Response: Sendable {
        public var id: UInt16
        public var responseCode: UInt8
        public var records: [Record]
    }

    /// A standard query with recursion desired, one question, class IN.
    public static func query(id: UInt16, name: String, type: RecordType) throws -> [UInt8] {
        var bytes: [UInt8] = []
        append16(id, to: &bytes)
        append16(0x0100, to: &bytes)  // RD
        append16(1, to: &bytes)  // QDCOUNT
        append16(0, to: &bytes)
        append16(0, to: &bytes)
        append16(0, to: &bytes)
        for label in name.split(separator: ".", omittingEmptySubsequences: true) {
            let utf8 = Array(label.utf8)
            guard !utf8.isEmpty, utf8.count <= 63 else {
                throw DNSWireError(.badName, "the name \(name) has a bad label")
            }
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        bytes.append(0)
        append16(type.rawValue, to: &bytes)
        append16(1, to: &bytes)  // IN
        return bytes
    }

    public static func parse(_ bytes: [UInt8]) throws -> Response {
        var reader = Reader(bytes: bytes)
        let id = try reader.uint16()
        let flags = try reader.uint16()
        guard flags & 0x8000 != 0 else { throw DNSWireError(.malformed, "not a response") }
        let questions = try reader.uint16()
        let answers = try reader.uint16()
        _ = try reader.uint16()
        _ = try reader.uint16()
        for _ in 0..<questions {
            _ = try reader.name()
            _ = try reader.uint16()
            _ = try reader.uint16()
        }
        var records: [Record] = []
        for _ in 0..<answers {
            _ = try reader.name()
            let type = try reader.uint16()
            let recordClass = try reader.uint16()
            _ = try reader.uint32()
            let length = Int(try reader.uint16())
            let end = reader.offset + length
            guard end <= bytes.count else { throw DNSWireError(.malformed, "a record runs past the message") }
            if recordClass == 1, type == RecordType.a.rawValue, length == 4 {
                records.append(.a(bytes[reader.offset..<end].map(String.init).joined(separator: ".")))
            } else if recordClass == 1, type == RecordType.srv.rawValue, length >= 7 {
                let priority = try reader.uint16()
                let weight = try reader.uint16()
                let port = try reader.uint16()
                let target = try reader.name()
                records.append(.srv(priority: priority, weight: weight, port: port, target: target))
            }
            reader.offset = end
        }
        return Response(id: id, responseCode: UInt8(flags & 0x000F), records: records)
    }

    static func append16(_ value: UInt16, to bytes: inout [UInt8]) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xFF))
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func uint16() throws -> UInt16 {
            guard offset + 2 <= bytes.count else { throw DNSWireError(.malformed, "the message is truncated") }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func uint32() throws -> UInt32 {
            UInt32(try uint16()) << 16 | UInt32(try uint16())
        }

        /// A name, following compression pointers (at most 32, so a pointer loop cannot hang the reader).
        mutating func name() throws -> String {
            var labels: [String] = []
            var position = offset
            var jumped = false
            var jumps = 0
            while true {
                guard position < bytes.count else { throw DNSWireError(.malformed, "a name runs past the message") }
                let length = Int(bytes[position])
                if length & 0xC0 == 0xC0 {
                    guard position + 1 < bytes.count, jumps < 32 else {
                        throw DNSWireError(.malformed, "a bad name pointer")
                    }
                    if !jumped { offset = position + 2 }
                    jumped = true
                    jumps += 1
                    position = (length & 0x3F) << 8 | Int(bytes[position + 1])
                    continue
                }
                if length == 0 {
                    if !jumped { offset = position + 1 }
                    return labels.joined(separator: ".")
                }
                guard position + 1 + length <= bytes.count else {
                    throw DNSWireError(.malformed, "a label runs past the message")
                }
                labels.append(String(decoding: bytes[(position + 1)...(position + length)], as: UTF8.self))
                position += 1 + length
            }
        }
    }
}
