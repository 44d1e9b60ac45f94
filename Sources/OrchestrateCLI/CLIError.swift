/// The one error the CLI's own steps throw (the other targets' errors pass through): what kind of step failed
/// (`code`), what it was doing, as the user reads it (`context`), and the error underneath, when there is one.
struct CLIError: Error, CustomStringConvertible {
    enum Code: String {
        /// A spec file cannot be read.
        case read
        /// An output file or directory cannot be written, or a template directory read.
        case write
        /// `orchestrate resolve` got no usable answer from the DNS server.
        case query
    }

    var code: Code
    var context: String
    var underlying: (any Error)?

    init(_ code: Code, _ context: String, underlying: (any Error)? = nil) {
        self.code = code
        self.context = context
        self.underlying = underlying
    }

    /// The message the user sees: the context, then what went wrong underneath.
    var description: String {
        guard let underlying else { return context }
        return "\(context): \(underlying)"
    }
}
