import Mustache

/// The templates every output is rendered from: the built-in ones (copies of the repository's `templates/`,
/// embedded so the binary needs no files beside it), any of which a user may replace.
public struct TemplateSet: Sendable {
    /// Every template name, as its file is named under `templates/` without `.mustache`.
    public static var names: [String] { BuiltinTemplates.all.keys.sorted() }

    /// Every template, registered by name so one can include another as a partial (`{{> k8s-probe.yaml}}`).
    private let library: MustacheLibrary

    /// The built-in templates with some replaced.
    ///
    /// - Parameter overrides: template name → Mustache text; each name must be one of `names`.
    /// - Throws: `GenerateError` (`unknownTemplate`, `templateSyntax`) naming the template.
    public init(overrides: [String: String] = [:]) throws(GenerateError) {
        var templates: [String: MustacheTemplate] = [:]
        for (name, _) in overrides where BuiltinTemplates.all[name] == nil {
            throw GenerateError(
                .unknownTemplate, template: name,
                "there is no template of that name; the templates are: " + Self.names.joined(separator: ", "))
        }
        for (name, builtin) in BuiltinTemplates.all {
            let text = overrides[name] ?? builtin
            do {
                templates[name] = try MustacheTemplate(string: text)
            } catch {
                throw GenerateError(.templateSyntax, template: name, "it does not parse", underlying: error)
            }
        }
        self.library = MustacheLibrary(templates: templates)
    }

    /// Only the built-in templates named (which must not include templates outside `names`): for a caller that
    /// renders one file and should not pay for parsing the other templates.
    init(only names: [String]) {
        var templates: [String: MustacheTemplate] = [:]
        for name in names {
            guard let text = BuiltinTemplates.all[name], let template = try? MustacheTemplate(string: text) else {
                preconditionFailure("no built-in template \(name)")
            }
            templates[name] = template
        }
        self.library = MustacheLibrary(templates: templates)
    }

    /// Renders a template with a context of dictionaries, arrays, strings, numbers and booleans.
    func render(_ name: String, _ context: [String: Any]) -> String {
        guard let text = library.render(context, withTemplate: name) else { preconditionFailure("no template \(name)") }
        return text
    }
}
