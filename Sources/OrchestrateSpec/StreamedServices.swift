/// Reads each service as soon as the composer has finished it, while libyaml is still parsing the ones after it.
///
/// The decoder takes what was read here only when the `services` mapping turns out to hold exactly the streamed
/// entries, in order — a mapping with a merge key (`<<`), for one, gets entries that were never streamed — and
/// otherwise reads the services itself. Reading a service depends on nothing but its own nodes, so either way the
/// services and their diagnostics are the same.
final class StreamedServices {
    private var decoder = SpecDecoder(tree: YAMLTree())
    /// The key of every streamed entry, read or not, in order.
    private var keys: [YAMLScalar] = []
    private(set) var services: [Service] = []
    var diagnostics: [Diagnostic] { decoder.diagnostics }

    /// The composer's side: the root mapping's `services` entries, handed over as each is finished.
    var entryStream: YAMLComposer.EntryStream {
        YAMLComposer.EntryStream(key: "services") { [self] entry, tree in read(entry, in: tree) }
    }

    private func read(_ entry: YAMLMappingEntry, in tree: YAMLTree) {
        decoder.tree = tree
        // The composer's tree must be uniquely referenced again before it adds the next node, or it would be copied.
        defer { decoder.tree = YAMLTree() }
        keys.append(entry.key)
        if let service = decoder.service(entry) { services.append(service) }
    }

    /// Whether the streamed entries are exactly `entries`: the same keys, written at the same places, in order.
    func areTheServices(of entries: YAMLChildList<YAMLMappingEntry>) -> Bool {
        keys.count == entries.count
            && zip(keys, entries).allSatisfy { key, entry in
                key.textIndex == entry.key.textIndex && key.location == entry.key.location
            }
    }
}
