/// Readers for single values: each checks the node's type and form, reports what is wrong, and returns the
/// value with its location, or nil when there is nothing usable.
extension SpecDecoder {
    func text(_ scalar: YAMLScalar) -> String { tree.text(of: scalar) }
    func resolved(_ scalar: YAMLScalar) -> ResolvedScalar { tree.resolved(scalar) }
    func kindDescription(_ node: YAMLNode) -> String { tree.kindDescription(of: node) }

    mutating func error(
        _ code: DiagnosticCode, _ path: String, at location: SourceLocation, _ message: String,
        hint: String? = nil
    ) {
        diagnostics.append(Diagnostic(.error, code, path: path, at: location, message, hint: hint))
    }

    mutating func warning(
        _ code: DiagnosticCode, _ path: String, at location: SourceLocation, _ message: String,
        hint: String? = nil
    ) {
        diagnostics.append(Diagnostic(.warning, code, path: path, at: location, message, hint: hint))
    }

    /// A required field's value; when the key is absent, reports it as missing. A key that is present with a
    /// bad value has been reported by its reader already, so it is not called missing too.
    mutating func required<T>(
        _ value: T?, _ field: String, in entries: YAMLChildList<YAMLMappingEntry>, _ path: @autoclosure () -> String,
        at location: SourceLocation,
        example: String
    ) -> T? {
        if let value { return value }
        guard !entries.contains(where: { text($0.key) == field }) else { return nil }
        error(
            .missingField, path(), at: location, "the required field \"\(field)\" is missing", hint: "add `\(example)`")
        return nil
    }

    mutating func unknownField(_ key: YAMLScalar, _ path: String, allowed: [String]) {
        let suggestion = Suggestion.closest(to: text(key), among: allowed)
        let message =
            "unknown field \"\(text(key))\"" + (suggestion.map { " (did you mean \"\($0)\"?)" } ?? "")
        error(
            .unknownField, path.isEmpty ? text(key) : path + "." + text(key), at: key.location, message,
            hint: suggestion == nil ? "the fields here are: " + allowed.joined(separator: ", ") : nil)
    }

    mutating func wrongType(_ node: YAMLNode, _ path: String, expected: String, hint: String? = nil) {
        var hint = hint
        if hint == nil, case .scalar(let scalar) = node, expected.hasPrefix("a string") {
            hint = "quote it: \"\(text(scalar))\""
        }
        error(.wrongType, path, at: node.location, "expected \(expected), found \(kindDescription(node))", hint: hint)
    }

    mutating func mapping(_ node: YAMLNode, _ path: @autoclosure () -> String)
        -> (YAMLChildList<YAMLMappingEntry>, SourceLocation)?
    {
        guard case .mapping(let children, let location) = node else {
            wrongType(node, path(), expected: "a mapping")
            return nil
        }
        return (tree.entries(of: children), location)
    }

    mutating func list(_ node: YAMLNode, _ path: @autoclosure () -> String) -> YAMLChildList<YAMLNode>? {
        guard case .sequence(let children, _) = node else {
            var hint: String?
            if case .scalar(let scalar) = node { hint = "write a list: [\(text(scalar))]" }
            wrongType(node, path(), expected: "a list", hint: hint)
            return nil
        }
        return tree.items(of: children)
    }

    /// A string; a plain scalar that YAML reads as a number, boolean or null is refused with a hint to quote
    /// it, because every other YAML tool would read it as that type.
    mutating func string(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Located<String>? {
        guard case .scalar(let scalar) = node, resolved(scalar) == .string else {
            wrongType(node, path(), expected: "a string")
            return nil
        }
        return Located(text(scalar), at: scalar.location)
    }

    mutating func strings(_ node: YAMLNode, _ path: @autoclosure () -> String) -> [Located<String>] {
        guard let items = list(node, path()) else { return [] }
        return items.enumerated().compactMap { index, item in string(item, "\(path())[\(index)]") }
    }

    mutating func int(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Located<Int>? {
        guard case .scalar(let scalar) = node, case .int(let value) = resolved(scalar) else {
            var hint: String?
            if case .scalar(let scalar) = node, resolved(scalar) == .string, Int(text(scalar)) != nil {
                hint = "remove the quotes: \(text(scalar))"
            }
            wrongType(node, path(), expected: "an integer", hint: hint)
            return nil
        }
        return Located(value, at: scalar.location)
    }

    /// An integer of at least `minimum`; a smaller one is reported with `code`.
    mutating func int(
        _ node: YAMLNode, _ path: @autoclosure () -> String, minimum: Int, code: DiagnosticCode = .invalidValue
    )
        -> Located<Int>?
    {
        guard let value = int(node, path()) else { return nil }
        guard value.value >= minimum else {
            error(code, path(), at: value.location, "\(value.value) is too small; the least allowed is \(minimum)")
            return nil
        }
        return value
    }

    mutating func bool(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Located<Bool>? {
        guard case .scalar(let scalar) = node, case .bool(let value) = resolved(scalar) else {
            var hint: String?
            if case .scalar(let scalar) = node {
                switch text(scalar).lowercased() {
                case "yes", "on", "y": hint = "write `true`: YAML 1.2 reads \(text(scalar)) as text"
                case "no", "off", "n": hint = "write `false`: YAML 1.2 reads \(text(scalar)) as text"
                default: hint = "write `true` or `false`"
                }
            }
            wrongType(node, path(), expected: "a boolean", hint: hint)
            return nil
        }
        return Located(value, at: scalar.location)
    }

    /// One of an enumeration's raw values, with a suggestion when the value is close to one.
    mutating func choice<Choice: RawRepresentable & CaseIterable & Sendable>(
        _ node: YAMLNode, _ path: @autoclosure () -> String, _ type: Choice.Type
    ) -> Located<Choice>? where Choice.RawValue == String {
        guard let text = string(node, path()) else { return nil }
        if let value = Choice(rawValue: text.value) { return Located(value, at: text.location) }
        let allowed = Choice.allCases.map(\.rawValue)
        error(
            .invalidValue, path(), at: text.location,
            "\"\(text.value)\" is not one of: \(allowed.joined(separator: ", "))"
                + Suggestion.clause(for: text.value, among: allowed))
        return nil
    }

    mutating func duration(_ node: YAMLNode, _ path: @autoclosure () -> String, positive: Bool = false) -> Located<
        SpecDuration
    >? {
        guard case .scalar(let scalar) = node, resolved(scalar) == .string else {
            var hint = "write a number and a unit: 500ms, 5s, 1m30s"
            if case .scalar(let scalar) = node, case .int = resolved(scalar) { hint = "add a unit: \(text(scalar))s" }
            wrongType(node, path(), expected: "a duration", hint: hint)
            return nil
        }
        guard let duration = SpecDuration(parsing: text(scalar)), !positive || duration.milliseconds > 0 else {
            error(
                .invalidDuration, path(), at: scalar.location, "\"\(text(scalar))\" is not a valid duration",
                hint: positive
                    ? "write a positive number and a unit (ms, s, m, h): 500ms, 5s, 1m30s"
                    : "write a number and a unit (ms, s, m, h): 500ms, 5s, 1m30s")
            return nil
        }
        return Located(duration, at: scalar.location)
    }

    /// A Kubernetes quantity, written as text (`128Mi`) or as a plain number (`0.5`).
    mutating func quantity(_ node: YAMLNode, _ path: @autoclosure () -> String) -> Located<Quantity>? {
        guard case .scalar(let scalar) = node else {
            wrongType(node, path(), expected: "a quantity")
            return nil
        }
        switch resolved(scalar) {
        case .string, .int, .float:
            guard let quantity = Quantity(parsing: text(scalar)) else {
                error(
                    .invalidQuantity, path(), at: scalar.location, "\"\(text(scalar))\" is not a Kubernetes quantity",
                    hint: "write a positive number with an optional suffix: 250m, 0.5, 128Mi, 1Gi, 1G")
                return nil
            }
            return Located(quantity, at: scalar.location)
        default:
            wrongType(node, path(), expected: "a quantity", hint: "write 250m, 0.5, 128Mi, 1Gi")
            return nil
        }
    }

    /// A name that becomes a hostname or an object name: a DNS-1123 label.
    mutating func dnsLabel(_ node: YAMLNode, _ path: @autoclosure () -> String, what: String) -> Located<String>? {
        guard let name = string(node, path()) else { return nil }
        checkDNSLabel(name, path(), what: what)
        return name
    }

    mutating func checkDNSLabel(
        _ name: Located<String>, _ path: @autoclosure () -> String, what: String, mustStartWithLetter: Bool = false
    ) {
        guard let problem = DNSName.labelProblem(name.value, mustStartWithLetter: mustStartWithLetter) else { return }
        error(
            .invalidName, path(), at: name.location, "\"\(name.value)\" is not a valid name for \(what): \(problem)",
            hint: DNSName.suggestedLabel(for: name.value).map { "try \"\($0)\"" })
    }

    /// Service names become hostnames, compose service names and Kubernetes Service names; Kubernetes wants
    /// those to start with a letter (RFC 1035), so that is the rule.
    mutating func checkServiceName(_ key: YAMLScalar, _ path: @autoclosure () -> String) {
        checkDNSLabel(Located(text(key), at: key.location), path(), what: "a service", mustStartWithLetter: true)
    }
}
