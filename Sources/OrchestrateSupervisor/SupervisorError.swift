/// The one error the supervisor throws: what kind of step failed (`code`), what it was doing, in words for the person
/// who ran `orchestrate` (`context`), and the error underneath, when there is one.
public struct SupervisorError: Error, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        /// The spec cannot be turned into a local plan (a cycle, too many replicas for the loopback addresses).
        case plan
        /// A secret cannot be read or generated.
        case secret
        /// `--infra native`: a program is missing or its data directory cannot be prepared.
        case setup
        /// A process cannot be started.
        case launch
        /// A control request (`restart`, `scale`, …) names something the session does not have.
        case control
        /// The control socket of a running session cannot be reached.
        case unreachable
        /// `up` cannot start (a port in use, a file it cannot write, infrastructure not ready); nothing is left running.
        case start
        /// A probe got no answer in time.
        case probeTimeout
    }

    public var code: Code
    public var context: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ context: String, underlying: (any Error)? = nil) {
        self.code = code
        self.context = context
        self.underlying = underlying
    }

    /// The context, then what went wrong underneath: `cannot write .orchestrate/up.json: Permission denied`.
    public var description: String {
        guard let underlying else { return context }
        return "\(context): \(underlying)"
    }

    public static func == (lhs: SupervisorError, rhs: SupervisorError) -> Bool {
        lhs.code == rhs.code && lhs.description == rhs.description
    }
}
