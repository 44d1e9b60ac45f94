/// The one error APIGatewayCore throws: what failed (`code`), in words (`context`), and the error underneath. The
/// client never sees it: the gateway answers with a `ServiceError` (JSON) made from it.
public struct GatewayError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The route table file cannot be read or is not one `orchestrate generate gateway` writes.
        case routeTable = "route-table"
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
        guard let underlying else { return context }
        return "\(context): \(underlying)"
    }
}
