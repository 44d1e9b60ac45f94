/// Turns the bytes of a `services.yaml` into a `Spec` and every diagnostic about it, in one pass.
///
/// A recipe: check the bytes (size, encoding, blank), compose the YAML tree, decode the model, run the rules.
/// Composing overlaps libyaml's parsing: a large document is parsed on a second thread (`YAMLEventStream`).
/// It does no I/O; the caller reads the file.
public enum SpecLoader {
    /// The largest file read; a spec is a few kilobytes, and 8 MiB holds tens of thousands of services.
    public static let maximumFileSize = 8 * 1024 * 1024

    public struct Result: Sendable {
        /// The model, when the document could be read well enough to build one (it may still have errors).
        public var spec: Spec?
        /// Every problem found, ordered by position.
        public var diagnostics: [Diagnostic]

        public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
    }

    /// How a document is read. Every strategy gives the same result; the tests hold them to it.
    struct Strategy: Sendable {
        /// Parse on a thread of its own, beside the composing; nil: when the document is large enough to gain.
        var parsesConcurrently: Bool?
        /// Events handed from the parser to the composer at a time.
        var eventsPerBatch = YAMLEventStream.defaultBatchCapacity

        static let standard = Strategy(parsesConcurrently: nil)
    }

    public static func load(_ bytes: some Collection<UInt8>) -> Result {
        load(bytes, strategy: .standard)
    }

    static func load(_ bytes: some Collection<UInt8>, strategy: Strategy) -> Result {
        guard bytes.count <= maximumFileSize else {
            return Result(
                spec: nil,
                diagnostics: [
                    Diagnostic(
                        .error, .fileTooLarge, path: "", at: .start,
                        "the file is \(bytes.count) bytes; the most a spec may be is \(maximumFileSize) bytes (8 MiB)",
                        hint: "is this the right file?")
                ])
        }
        let contiguous = Array(bytes)
        return contiguous.withUnsafeBufferPointer { buffer in
            load(buffer, strategy: strategy)
        }
    }

    private static func load(_ buffer: UnsafeBufferPointer<UInt8>, strategy: Strategy) -> Result {
        if let offset = SourceText.firstInvalidUTF8Offset(buffer) {
            let isUTF16 =
                buffer.count >= 2 && (buffer[0] == 0xFF && buffer[1] == 0xFE || buffer[0] == 0xFE && buffer[1] == 0xFF)
            return Result(
                spec: nil,
                diagnostics: [
                    Diagnostic(
                        .error, .invalidEncoding, path: "", at: SourceText.location(ofByteOffset: offset, in: buffer),
                        isUTF16
                            ? "the file is UTF-16; a spec must be UTF-8"
                            : "the byte 0x\(String(buffer[offset], radix: 16, uppercase: true)) at offset \(offset) is not valid UTF-8",
                        hint: "save the file as UTF-8")
                ])
        }
        // libyaml skips a byte order mark only when it detects the encoding itself; the encoding is fixed to
        // UTF-8 here, so the mark is dropped first. Editors do not count it as a column either.
        if buffer.starts(with: [0xEF, 0xBB, 0xBF]) {
            return load(UnsafeBufferPointer(rebasing: buffer[3...]), strategy: strategy)
        }
        if SourceText.isBlank(buffer) {
            return Result(spec: nil, diagnostics: [emptyDocument()])
        }
        let composed = YAMLComposer.compose(
            buffer, concurrently: strategy.parsesConcurrently, batchCapacity: strategy.eventsPerBatch)
        var diagnostics = composed.diagnostics
        var spec: Spec?
        if let root = composed.root {
            if case .scalar(let scalar) = root, composed.tree.resolved(scalar) == .null {
                diagnostics.append(emptyDocument())
            } else {
                let decoded = SpecDecoder.decode(root, in: composed.tree)
                diagnostics += decoded.diagnostics
                spec = decoded.spec
                if let spec { diagnostics += SpecRules.check(spec) }
            }
        } else if diagnostics.isEmpty {
            diagnostics.append(emptyDocument())
        }
        // A stable sort keeps problems at one position in the order they were found.
        let ordered = diagnostics.enumerated().sorted {
            ($0.element.location, $0.offset) < ($1.element.location, $1.offset)
        }
        return Result(spec: spec, diagnostics: ordered.map(\.element))
    }

    private static func emptyDocument() -> Diagnostic {
        Diagnostic(
            .error, .emptyDocument, path: "", at: .start, "the spec is empty",
            hint: "start with `version: 1`, `name: …` and `services:`; see docs/services-yaml.md")
    }
}
