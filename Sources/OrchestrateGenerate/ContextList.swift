/// Lists in template contexts for sections that print a header once: `{items: […]}`.
enum ContextList {
    /// Sets `context[key]` to `{items: …}`, or leaves the key out when there are no items, so the section and
    /// its header disappear. (Assigning an optional to a `[String: Any]` subscript would store a wrapped nil,
    /// which Mustache renders as present.)
    static func set(_ context: inout [String: Any], _ key: String, _ items: [Any]) {
        guard !items.isEmpty else { return }
        context[key] = ["items": items]
    }
}
