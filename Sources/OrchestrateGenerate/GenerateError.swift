/// The one error OrchestrateGenerate throws: what failed (`code`), the template at fault, in words (`context`), and
/// the error underneath.
public struct GenerateError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A replacement was given for a template that does not exist.
        case unknownTemplate = "unknown-template"
        /// A template (built in or replaced) is not valid Mustache.
        case templateSyntax = "template-syntax"
    }

    public var code: Code
    public var template: String
    public var context: String
    public var underlying: (any Error)?

    public init(_ code: Code, template: String, _ context: String, underlying: (any Error)? = nil) {
        self.code = code
        self.template = template
        self.context = context
        self.underlying = underlying
    }

    public var description: String {
        let head = "template \(template): \(context)"
        guard let underlying else { return head }
        return "\(head): \(underlying)"
    }
}
