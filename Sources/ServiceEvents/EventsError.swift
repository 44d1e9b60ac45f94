/// The one error ServiceEvents throws: what failed (`code`), in words (`context`), and the error underneath.
public struct EventsError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// Redis answered with an error reply (`-ERR …`, `-BUSYGROUP …`), now in `context`; the connection is fine.
        case redisReply = "redis-reply"
        /// The connection to Redis failed, closed or timed out; the client reconnects on the next command.
        case redisConnection = "redis-connection"
        /// The server sent bytes that are not RESP; the connection is closed.
        case malformedReply = "malformed-reply"
    }

    public var code: Code
    public var context: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ context: String, underlying: (any Error)? = nil) {
        self.code = code
        self.context = context
        self.underlying = underlying
    }

    public var description: String {
        let head =
            switch code {
            case .redisReply: "Redis: \(context)"
            case .redisConnection: "Redis connection: \(context)"
            case .malformedReply: "Redis sent a malformed reply: \(context)"
            }
        guard let underlying else { return head }
        return "\(head): \(underlying)"
    }
}
