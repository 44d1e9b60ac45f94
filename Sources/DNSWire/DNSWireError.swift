/// The one error DNSWire throws: what is wrong (`code`) and where, in words (`context`). Nothing underlies it: the
/// bytes themselves are at fault.
public struct DNSWireError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// A message that is not a well-formed DNS message (truncated, a pointer loop, a label past the end).
        case malformed
        /// A name that cannot be put in a query (an empty or over-long label).
        case badName = "bad-name"
    }

    public var code: Code
    public var context: String

    public init(_ code: Code, _ context: String) {
        self.code = code
        self.context = context
    }

    public var description: String { context }
}
