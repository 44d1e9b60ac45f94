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

/// Decodes RESP2 replies, in time linear in the reply's size however it arrives: the arrays still being filled are
/// kept between calls, so bytes already turned into values are never read again (a 100,000-entry reply that arrives
/// in a thousand reads is read once, not a thousand times). A value that has not fully arrived is left in the buffer
/// until it has; nothing the server sends can make it allocate beyond the limits (512 MiB bulk strings as Redis
/// itself, 64 KiB lines, depth 32, 16 Mi elements an array).
struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = RESPValue

    static let maximumLine = 64 * 1024
    static let maximumBulk = 512 * 1024 * 1024
    static let maximumDepth = 32
    static let maximumElements = 1 << 24

    /// The arrays begun and not yet complete, outermost first: the elements so far and how many there will be.
    private var open: [(elements: [RESPValue], count: Int)] = []

    /// A whole scalar, or the header of an array whose elements follow.
    enum Item {
        case value(RESPValue)
        case arrayHeader(count: Int)
    }

    mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        while true {
            var attempt = buffer
            guard let item = try Self.item(&attempt, depth: open.count) else { return nil }
            buffer.moveReaderIndex(to: attempt.readerIndex)
            var value: RESPValue
            switch item {
            case .value(let scalar): value = scalar
            case .arrayHeader(let count) where count > 0:
                var elements: [RESPValue] = []
                elements.reserveCapacity(min(count, 1024))
                open.append((elements, count))
                continue
            case .arrayHeader(let count): value = .array(count == 0 ? [] : nil)
            }
            // The value completes arrays from the innermost out, for as long as it is the last element of each.
            while !open.isEmpty {
                open[open.count - 1].elements.append(value)
                guard open[open.count - 1].elements.count == open[open.count - 1].count else { break }
                value = .array(open.removeLast().elements)
            }
            if open.isEmpty { return value }
        }
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    /// One whole value, in full for a scalar and as its header for an array; nil when it has not fully arrived (the
    /// buffer's reader index is then meaningless).
    static func item(_ buffer: inout ByteBuffer, depth: Int) throws -> Item? {
        guard let marker = buffer.readInteger(as: UInt8.self) else { return nil }
        guard let line = try readLine(&buffer) else { return nil }
        switch marker {
        case UInt8(ascii: "+"): return .value(.simpleString(line))
        case UInt8(ascii: "-"): return .value(.error(line))
        case UInt8(ascii: ":"):
            guard let value = Int(line) else {
                throw EventsError(.malformedReply, "RESP integer \"\(line.prefix(40))\"")
            }
            return .value(.integer(value))
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1, length <= maximumBulk else {
                throw EventsError(.malformedReply, "RESP bulk length \"\(line.prefix(40))\"")
            }
            if length == -1 { return .value(.bulkString(nil)) }
            guard buffer.readableBytes >= length + 2 else { return nil }
            // A copy, not a slice: a slice would keep the whole receive buffer alive, and every read appended to it
            // would then copy it all again (copy on write), which is quadratic in a long reply.
            let bytes = ByteBuffer(bytes: buffer.readableBytesView.prefix(length))
            buffer.moveReaderIndex(forwardBy: length)
            guard buffer.readInteger(as: UInt16.self) == 0x0D0A else {
                throw EventsError(.malformedReply, "RESP bulk string not followed by CRLF")
            }
            return .value(.bulkString(bytes))
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1, count <= maximumElements else {
                throw EventsError(.malformedReply, "RESP array length \"\(line.prefix(40))\"")
            }
            guard count <= 0 || depth < maximumDepth else {
                throw EventsError(.malformedReply, "RESP nesting deeper than \(maximumDepth)")
            }
            return .arrayHeader(count: count)
        default:
            throw EventsError(.malformedReply, "unknown RESP type byte \(marker)")
        }
    }

    /// The text up to CRLF, consumed with it; nil when no CRLF has arrived yet.
    private static func readLine(_ buffer: inout ByteBuffer) throws -> String? {
        let view = buffer.readableBytesView.prefix(maximumLine + 2)
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
