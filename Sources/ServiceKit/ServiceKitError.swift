/// The one error ServiceKit throws: what failed (`code`), what it is about (`subject`: the variable, upstream, name
/// or file), in words for whoever reads the log (`context`), and the error underneath, when there is one.
///
/// `ServiceError` is a different thing: the JSON error a handler answers a client with.
public struct ServiceKitError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// An environment variable the service cannot start with; `subject` names it and the process exits 78.
        case configuration
        /// A secret file cannot be read; `subject` is its path.
        case secret
        /// DNS: NXDOMAIN, or an answer without records of the type asked; `subject` is the name.
        case nameNotFound = "name-not-found"
        /// DNS: any other response code (SERVFAIL, REFUSED, …).
        case resolverFailure = "resolver-failure"
        /// DNS: the answer could not be parsed.
        case malformedAnswer = "malformed-answer"
        /// A call: no connection could be made (refused, unreachable, name not found); `subject` is the upstream.
        case unreachable
        /// A call: the connection broke after it was made (the request may have arrived), so it is never retried.
        case connectionLost = "connection-lost"
        /// A call or a DNS query: the deadline passed.
        case timeout
        /// The circuit breaker is open and refused the call without trying.
        case circuitOpen = "circuit-open"
        /// The circuit breaker is half-open and every trial slot is taken: also refused without trying.
        case trialsBusy = "trials-busy"
        /// A call: the upstream answered 5xx.
        case serverError = "server-error"
    }

    public var code: Code
    public var subject: String
    public var context: String
    public var underlying: (any Error)?
    /// When the caller may try again, for `Retry-After` (calls and breaker refusals).
    public var retryAfter: Duration?

    public init(
        _ code: Code, subject: String, _ context: String, underlying: (any Error)? = nil,
        retryAfter: Duration? = nil
    ) {
        self.code = code
        self.subject = subject
        self.context = context
        self.underlying = underlying
        self.retryAfter = retryAfter
    }

    /// A variable the service cannot start with: `PORT must be a number from 1 to 65535`.
    public static func configuration(_ variable: String, _ message: String) -> ServiceKitError {
        ServiceKitError(.configuration, subject: variable, "\(variable) \(message)")
    }

    /// `subject` then the context, then what went wrong underneath.
    public var description: String {
        let head = code == .configuration ? context : "\(subject): \(context)"
        guard let underlying else { return head }
        return "\(head): \(underlying)"
    }

    /// Whole seconds for a `Retry-After` header, rounded up, at least 1.
    public var retryAfterSeconds: Int {
        let wait = (retryAfter ?? .seconds(1)).components
        return max(1, Int(wait.seconds) + (wait.attoseconds > 0 ? 1 : 0))
    }

    /// Whether the breaker refused the call (open or out of trial slots): the upstream was not called.
    public var isRefusedByBreaker: Bool { code == .circuitOpen || code == .trialsBusy }
}
