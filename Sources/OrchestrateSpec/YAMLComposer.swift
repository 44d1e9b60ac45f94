/// Builds a `YAMLNode` tree from libyaml's event stream, keeping the position of every node.
///
/// libyaml parses (`YAMLEventStream`); this type composes. It resolves anchors, aliases and merge keys (`<<`), and
/// reports what libyaml lets through: duplicate keys, unknown tags, more than one document, aliases whose expansion
/// would blow up (billion laughs), nesting deep enough to exhaust a stack.
struct YAMLComposer {
    /// The most nodes a document may expand to once every alias is followed.
    static let maximumExpandedNodes = 1_000_000
    /// The deepest nesting of mappings and sequences a document may have.
    static let maximumDepth = 128

    struct Result {
        var root: YAMLNode?
        /// The children of the root's collections.
        var tree: YAMLTree
        var diagnostics: [Diagnostic]
    }

    private struct Collection {
        enum Kind { case mapping, sequence }
        let kind: Kind
        let anchor: String?
        let location: SourceLocation
        var size = 1
        /// Where this collection's items or entries begin in the composer's `Open` arrays.
        let start: Int
        /// Where each explicit key of a large mapping was written; small mappings are searched linearly.
        var keys: [String: SourceLocation] = [:]
        var pendingKey: YAMLScalar?
        var awaitingValue = false
        var skipValue = false
        var pendingKeyIsMerge = false
        /// Merge sources with the index of the explicit entry they were written before.
        var merges: [(index: Int, node: YAMLNode, location: SourceLocation)] = []

        init(_ kind: Kind, anchor: String?, location: SourceLocation, start: Int) {
            self.kind = kind
            self.anchor = anchor
            self.location = location
            self.start = start
        }

        /// Adds a finished node: an item, a key, or the value of the pending key.
        mutating func add(
            _ node: YAMLNode, size nodeSize: Int, to open: inout Open, tree: YAMLTree, diagnostics: inout [Diagnostic]
        ) {
            size += nodeSize
            switch kind {
            case .sequence:
                open.items.append(node)
            case .mapping:
                if !awaitingValue {
                    awaitingValue = true
                    skipValue = false
                    guard case .scalar(let key) = node else {
                        skipValue = true
                        diagnostics.append(
                            Diagnostic(
                                .error, .complexKey, path: "", at: node.location,
                                "a mapping key must be a plain value, not \(tree.kindDescription(of: node))",
                                hint: "write the key as text: `name: value`"))
                        return
                    }
                    pendingKeyIsMerge =
                        (key.style == .plain && key.tag == .none && tree.text(of: key) == "<<") || key.tag == .merge
                    pendingKey = key
                    return
                }
                awaitingValue = false
                guard !skipValue, let key = pendingKey.take() else { return }
                if pendingKeyIsMerge {
                    merges.append((open.entries.count - start, node, key.location))
                    return
                }
                let keyText = tree.text(of: key)
                if let first = location(ofKey: keyText, in: open.entries, tree: tree) {
                    diagnostics.append(
                        Diagnostic(
                            .error, .duplicateKey, path: "", at: key.location,
                            "the key \"\(keyText)\" is already set at line \(first.line), column \(first.column)",
                            hint: "remove one of the two; YAML tools disagree on which one wins"))
                    return
                }
                open.entries.append(YAMLMappingEntry(key: key, value: node))
                indexKeys(open.entries, tree: tree)
            }
        }

        /// Mappings up to this size are searched linearly: cheaper than hashing every key.
        static let linearSearchLimit = 16

        func location(ofKey key: String, in entries: [YAMLMappingEntry], tree: YAMLTree) -> SourceLocation? {
            if entries.count - start > Self.linearSearchLimit { return keys[key] }
            return entries[start...].first { tree.text(of: $0.key) == key }?.key.location
        }

        /// Keeps the key table of a large mapping current after an entry was appended.
        mutating func indexKeys(_ entries: [YAMLMappingEntry], tree: YAMLTree) {
            guard entries.count - start > Self.linearSearchLimit else { return }
            if keys.isEmpty {
                keys.reserveCapacity((entries.count - start) * 2)
                for entry in entries[start...] { keys[tree.text(of: entry.key)] = entry.key.location }
            } else if let last = entries.last {
                keys[tree.text(of: last.key)] = last.key.location
            }
        }
    }

    /// The innermost open collection. It is kept out of `outer` so that adding a node changes it in place: going
    /// through `outer[…]` for each node copied the collection (and retained everything in it).
    private var current: Collection?
    /// The collections that enclose `current`, outermost first.
    private var outer: [Collection] = []

    /// The items and entries of every open collection, each collection's after its parent's. A collection that
    /// closes moves its own into the tree, where they stay side by side.
    private struct Open {
        var items: [YAMLNode] = []
        var entries: [YAMLMappingEntry] = []

    }

    private var open = Open()
    private var depth: Int { outer.count + (current == nil ? 0 : 1) }
    private var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    private var expandedNodes = 0
    private var root: YAMLNode?
    private var tree = YAMLTree()
    private var diagnostics: [Diagnostic] = []

    /// Composes the first document of `bytes`, which must already be known to be UTF-8.
    ///
    /// - Parameters:
    ///   - concurrently: parse on a thread of its own (see `YAMLEventStream`); nil: when the document is large.
    ///   - batchCapacity: events handed over at a time (see `YAMLEventStream`).
    static func compose(
        _ bytes: UnsafeBufferPointer<UInt8>, concurrently: Bool? = nil,
        batchCapacity: Int = YAMLEventStream.defaultBatchCapacity
    ) -> Result {
        var composer = YAMLComposer()
        composer.tree.reserveCapacity(forDocumentOf: bytes.count)
        composer.run(YAMLEventStream(bytes, concurrently: concurrently, batchCapacity: batchCapacity), bytes)
        return Result(root: composer.root, tree: composer.tree, diagnostics: composer.diagnostics)
    }

    private mutating func run(_ events: YAMLEventStream, _ bytes: UnsafeBufferPointer<UInt8>) {
        defer { events.close() }
        var documents = 0
        while let batch = events.next() {
            let goOn = batch.bytes.withUnsafeBufferPointer { text in
                batch.events.allSatisfy { compose($0, text, documents: &documents) }
            }
            events.recycle(batch)
            guard goOn else { return }
        }
        if let failure = events.failure {
            reportParserError(failure, bytes)
            root = nil
        }
    }

    /// Adds one event to the tree; false when composing stops here (the stream's end, or a document refused).
    private mutating func compose(
        _ event: YAMLEvent, _ text: UnsafeBufferPointer<UInt8>, documents: inout Int
    ) -> Bool {
        let location = event.location
        switch event.kind {
        case .streamEnd:
            return false
        case .documentStart:
            documents += 1
            if documents > 1 {
                fail(
                    .multipleDocuments, at: location,
                    "the file holds more than one YAML document; a spec is one document",
                    hint: "remove the `---` and everything after it, or merge the documents into one")
                return false
            }
        case .scalar:
            let tag = string(event.tag, text)
            checkTag(tag, at: location)
            let value = string(event.value, text) ?? ""
            let node = YAMLNode.scalar(
                YAMLScalar(
                    textIndex: tree.add(text: value), style: event.style, tag: YAMLScalar.Tag(tag), location: location))
            guard count(1, at: location) else { return false }
            finish(node, size: 1, anchor: string(event.anchor, text))
        case .alias:
            let name = string(event.value, text) ?? ""
            guard let anchored = anchors[name] else {
                diagnostics.append(
                    Diagnostic(
                        .error, .unknownAlias, path: "", at: location,
                        "the alias *\(name) refers to no anchor defined before it",
                        hint: "define `&\(name)` on a node above this line; an alias cannot refer to itself"))
                root = nil
                return false
            }
            guard count(anchored.size, at: location) else { return false }
            finish(relocated(anchored.node, to: location), size: anchored.size)
        case .mappingStart, .sequenceStart:
            let isMapping = event.kind == .mappingStart
            checkTag(string(event.tag, text), at: location)
            guard depth < Self.maximumDepth else {
                fail(
                    .nestingTooDeep, at: location,
                    "the document nests deeper than \(Self.maximumDepth) levels",
                    hint: "a spec needs only a few levels; look for unbalanced brackets")
                return false
            }
            guard count(1, at: location) else { return false }
            if let enclosing = current.take() { outer.append(enclosing) }
            current = Collection(
                isMapping ? .mapping : .sequence, anchor: string(event.anchor, text), location: location,
                start: isMapping ? open.entries.count : open.items.count)
        case .mappingEnd, .sequenceEnd:
            guard let collection = current.take() else { break }
            current = outer.popLast()
            let node: YAMLNode
            switch collection.kind {
            case .sequence:
                node = .sequence(tree.add(items: open.items[collection.start...]), collection.location)
                open.items.removeSubrange(collection.start...)
            case .mapping:
                // No slice of `open` may outlive the move: the removal would copy the whole array.
                let children =
                    collection.merges.isEmpty
                    ? tree.add(entries: open.entries[collection.start...])
                    : tree.add(entries: merged(collection, open.entries[collection.start...]))
                node = .mapping(children, collection.location)
                open.entries.removeSubrange(collection.start...)
            }
            finish(node, size: collection.size, anchor: collection.anchor)
        }
        return true
    }

    /// One of the event's strings, read from its batch; nil when the event has none.
    private func string(_ eventText: YAMLEventText, _ text: UnsafeBufferPointer<UInt8>) -> String? {
        guard !eventText.isAbsent else { return nil }
        let start = Int(eventText.start)
        let bytes = UnsafeBufferPointer(rebasing: text[start..<start + Int(eventText.count)])
        return String(decoding: bytes, as: UTF8.self)
    }

    /// An alias keeps the anchored node's content but reports its own position for the node itself, so an
    /// error about the aliased value points at the alias; the nodes inside keep their original positions.
    private func relocated(_ node: YAMLNode, to location: SourceLocation) -> YAMLNode {
        switch node {
        case .scalar(var scalar):
            scalar.location = location
            return .scalar(scalar)
        case .mapping(let entries, _): return .mapping(entries, location)
        case .sequence(let items, _): return .sequence(items, location)
        }
    }

    /// Counts nodes toward the expansion budget; false (with a diagnostic) once the budget is spent.
    private mutating func count(_ nodes: Int, at location: SourceLocation) -> Bool {
        expandedNodes += nodes
        guard expandedNodes > Self.maximumExpandedNodes else { return true }
        fail(
            .aliasExpansionLimit, at: location,
            "expanding aliases would make more than \(Self.maximumExpandedNodes) nodes; the document is refused",
            hint: "aliases that refer to aliases multiply; share blocks one level deep")
        return false
    }

    private mutating func finish(_ node: YAMLNode, size: Int, anchor: String? = nil) {
        if let anchor { anchors[anchor] = (node, size) }
        guard current != nil else {
            root = node
            return
        }
        current!.add(node, size: size, to: &open, tree: tree, diagnostics: &diagnostics)
    }

    /// Applies the mapping's merge keys: merged entries take the place of the `<<`, explicit keys win, and of
    /// several merged mappings the earlier wins (the YAML merge-key rules).
    private mutating func merged(_ collection: Collection, _ entries: ArraySlice<YAMLMappingEntry>)
        -> [YAMLMappingEntry]
    {
        var taken = KeySet(entries.map { tree.text(of: $0.key) })
        var inserts: [Int: [YAMLMappingEntry]] = [:]
        for merge in collection.merges {
            let sources: [YAMLNode]
            switch merge.node {
            case .mapping: sources = [merge.node]
            case .sequence(let items, _): sources = Array(tree.items(of: items))
            case .scalar: sources = [merge.node]
            }
            for source in sources {
                guard case .mapping(let children, _) = source else {
                    diagnostics.append(
                        Diagnostic(
                            .error, .invalidMerge, path: "", at: source.location,
                            "a merge key `<<` takes a mapping or a list of mappings, not \(tree.kindDescription(of: source))",
                            hint: "write `<<: *anchor` where `&anchor` names a mapping"))
                    continue
                }
                for entry in tree.entries(of: children) where taken.insert(tree.text(of: entry.key)) {
                    inserts[merge.index, default: []].append(entry)
                }
            }
        }
        var result: [YAMLMappingEntry] = []
        result.reserveCapacity(entries.count + inserts.values.reduce(0) { $0 + $1.count })
        for (index, entry) in entries.enumerated() {
            result.append(contentsOf: inserts[index] ?? [])
            result.append(entry)
        }
        result.append(contentsOf: inserts[entries.count] ?? [])
        return result
    }

    private mutating func checkTag(_ tag: String?, at location: SourceLocation) {
        guard let tag, !YAMLTag.known.contains(tag) else { return }
        let shown = tag.hasPrefix(YAMLTag.prefix) ? "!!" + tag.dropFirst(YAMLTag.prefix.count) : Substring(tag)
        diagnostics.append(
            Diagnostic(
                .error, .unknownTag, path: "", at: location,
                "the tag \(shown) means nothing in a spec",
                hint: "remove the tag; only YAML's standard tags (!!str, !!int, !!bool, …) are understood"))
    }

    private mutating func fail(
        _ code: DiagnosticCode, at location: SourceLocation, _ message: String, hint: String? = nil
    ) {
        diagnostics.append(Diagnostic(.error, code, path: "", at: location, message, hint: hint))
    }

    private mutating func reportParserError(_ failure: YAMLParseFailure, _ bytes: UnsafeBufferPointer<UInt8>) {
        let problem = failure.problem ?? "the YAML is malformed"
        let location =
            failure.isReaderError
            ? SourceText.location(ofByteOffset: failure.problemOffset, in: bytes) : failure.problemLocation
        var message = problem
        if let context = failure.context {
            message += " (\(context) at \(failure.contextLocation.line):\(failure.contextLocation.column))"
        }
        fail(.yamlSyntax, at: location, message, hint: Self.hint(forProblem: problem))
    }

    private static func hint(forProblem problem: String) -> String? {
        switch problem {
        case let text where text.contains("found character that cannot start any token"):
            "tabs cannot indent YAML, and `@` or a backquote cannot start a plain value; use spaces, or quote the value"
        case let text where text.contains("mapping values are not allowed"):
            "a value containing `: ` must be quoted, or the indentation is off"
        case let text where text.contains("could not find expected ':'"):
            "each line of a mapping needs `key: value`; check the indentation and unclosed quotes"
        case let text where text.contains("did not find expected key"):
            "the indentation of this line does not match the lines above it"
        case let text where text.contains("control characters are not allowed"):
            "remove the control character (a NUL or other byte below 0x20 other than tab and newline)"
        default: nil
        }
    }
}

/// The keys a merge has taken: a list searched linearly while it is short (a merged env block has a few keys, and
/// hashing each costs more than comparing them), a set once it is long.
private struct KeySet {
    private var list: [String]
    private var set: Set<String>?

    init(_ keys: [String]) {
        list = keys
        if keys.count > 16 { set = Set(keys) }
    }

    /// Adds the key; false when it was there already.
    mutating func insert(_ key: String) -> Bool {
        if set != nil { return set!.insert(key).inserted }
        if list.contains(key) { return false }
        list.append(key)
        if list.count > 16 { set = Set(list) }
        return true
    }
}
