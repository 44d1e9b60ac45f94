public import NIOCore

/// A RESP2 value, the Redis protocol's reply (and, as an array of bulk strings, its command).
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int)
    /// nil is the null bulk string (`$-1`).
    case bulkString(ByteBuffer?)
    /// nil is the null array (`*-1`), as XREADGROUP answers when its block time passes.
    case array([RESPValue]?)

    /// The text of a simple or bulk string (or an integer's digits); nil otherwise.
    public var string: String? {
        switch self {
        case .simpleString(let text): text
        case .bulkString(let buffer?): String(buffer: buffer)
        case .integer(let value): String(value)
        default: nil
        }
    }

    /// The elements of a non-null array; nil otherwise.
    public var array: [RESPValue]? {
        if case .array(let elements?) = self { return elements }
        return nil
    }

    public var integer: Int? {
        switch self {
        case .integer(let value): value
        case .simpleString(let text): Int(text)
        case .bulkString(let buffer?): Int(String(buffer: buffer))
        default: nil
        }
    }

    public var isNull: Bool {
        switch self {
        case .bulkString(nil), .array(nil): true
        default: false
        }
    }

    /// A command as Redis reads it: an array of bulk strings.
    public static func encode(command arguments: [String], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.utf8.count)\r\n")
            buffer.writeString(argument)
            buffer.writeString("\r\n")
        }
    }
}

/// Decodes RESP2 replies. A reply that has not fully arrived is left in the buffer until it has; nothing the server
/// sends can make it allocate beyond the limits (512 MiB bulk strings as Redis itself, 64 KiB lines, depth 32).
struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = RESPValue

    static let maximumLine = 64 * 1024
    static let maximumBulk = 512 * 1024 * 1024
    static let maximumDepth = 32

    mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        var attempt = buffer
        guard let value = try Self.parse(&attempt, depth: 0) else { return nil }
        buffer.moveReaderIndex(to: attempt.readerIndex)
        return value
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    /// One value from the buffer, or nil when it is incomplete (the buffer's reader index is then meaningless).
    static func parse(_ buffer: inout ByteBuffer, depth: Int) throws -> RESPValue? {
        guard depth <= maximumDepth else {
            throw EventsError(.malformedReply, "RESP nesting deeper than \(maximumDepth)")
        }
        guard let marker = buffer.readInteger(as: UInt8.self) else { return nil }
        guard let line = try readLine(&buffer) else { return nil }
        switch marker {
        case UInt8(ascii: "+"): return .simpleString(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let value = Int(line) else {
                throw EventsError(.malformedReply, "RESP integer \"\(line.prefix(40))\"")
            }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1, length <= maximumBulk else {
                throw EventsError(.malformedReply, "RESP bulk length \"\(line.prefix(40))\"")
            }
            if length == -1 { return .bulkString(nil) }
            guard buffer.readableBytes >= length + 2 else { return nil }
            let bytes = buffer.readSlice(length: length)!
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                throw EventsError(.malformedReply, "RESP bulk string not followed by CRLF")
            }
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1, count <= 1 << 24 else {
                throw EventsError(.malformedReply, "RESP array length \"\(line.prefix(40))\"")
            }
            if count == -1 { return .array(nil) }
            var elements: [RESPValue] = []
            elements.reserveCapacity(min(count, 1024))
            for _ in 0..<count {
                guard let element = try parse(&buffer, depth: depth + 1) else { return nil }
                elements.append(element)
            }
            return .array(elements)
        default:
            throw EventsError(.malformedReply, "unknown RESP type byte \(marker)")
        }
    }

    /// The text up to CRLF, consumed with it; nil when no CRLF has arrived yet.
    private static func readLine(_ buffer: inout ByteBuffer) throws -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: 0x0D) else {
            if view.count > maximumLine {
                throw EventsError(.malformedReply, "RESP line longer than \(maximumLine) bytes")
            }
            return nil
        }
        let length = cr - view.startIndex
        guard buffer.readableBytes >= length + 2 else { return nil }
        let line = buffer.readString(length: length)!
        guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
            throw EventsError(.malformedReply, "RESP CR not followed by LF")
        }
        return line
    }
}
