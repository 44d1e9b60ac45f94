/// One problem found in a spec: where it is, what is wrong, and how to fix it.
///
/// Diagnostics are collected, never thrown: a single pass reports every problem in the file.
public struct Diagnostic: Hashable, Sendable {
    public enum Severity: String, Hashable, Sendable, Comparable {
        case warning
        case error

        public static func < (lhs: Severity, rhs: Severity) -> Bool {
            lhs == .warning && rhs == .error
        }
    }

    public var severity: Severity
    public var code: DiagnosticCode
    /// The field the problem is about, as a dotted path (`services.order-service.dependsOn[1]`); empty for the
    /// document as a whole.
    public var path: String
    public var location: SourceLocation
    public var message: String
    /// What to change to fix the problem, when there is something concrete to say.
    public var hint: String?

    public init(
        _ severity: Severity,
        _ code: DiagnosticCode,
        path: String,
        at location: SourceLocation,
        _ message: String,
        hint: String? = nil
    ) {
        self.severity = severity
        self.code = code
        self.path = path
        self.location = location
        self.message = message
        self.hint = hint
    }
}

extension Array where Element == Diagnostic {
    /// Whether these diagnostics make the spec invalid: any error, or any warning when `strict`.
    public func failsValidation(strict: Bool) -> Bool {
        contains { $0.severity == .error || strict }
    }
}
