public import AsyncHTTPClient

/// The one error APIGatewayCore throws: what failed (`code`), in words (`context`), and the error underneath. The
/// client never sees it: the gateway answers with a `ServiceError` (JSON) made from it.
public struct GatewayError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The route table file cannot be read or is not one `orchestrate generate gateway` writes.
        case routeTable = "route-table"
        /// A request body passed its route's `maxBodyBytes` while streaming (413); not the upstream's fault.
        case bodyTooLarge = "body-too-large"
        /// Reading the request body from the client failed (it went away mid-body); not the upstream's fault.
        case clientBody = "client-body"
        /// The upstream answered 5xx other than 503: counted against its breaker, and `response` is passed on.
        case upstreamServerError = "upstream-server-error"
    }

    public var code: Code
    public var context: String
    public var underlying: (any Error)?
    /// The upstream's own answer, for `upstreamServerError`.
    public var response: HTTPClientResponse?

    public init(
        _ code: Code, _ context: String, underlying: (any Error)? = nil, response: HTTPClientResponse? = nil
    ) {
        self.code = code
        self.context = context
        self.underlying = underlying
        self.response = response
    }

    public var description: String {
        guard let underlying else { return context }
        return "\(context): \(underlying)"
    }
}
