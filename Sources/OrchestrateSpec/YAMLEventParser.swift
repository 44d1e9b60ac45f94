internal import CLibYAML

/// libyaml's event parser over one UTF-8 text, turning its events into `YAMLEvent`s a batch at a time.
///
/// The parser lives on the heap: libyaml keeps a pointer to it for its string reader, so it must not move.
final class YAMLEventParser {
    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private let isInitialized: Bool
    /// A valid address to read no bytes from, for an empty document: libyaml wants a pointer even then.
    private let emptyInput = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    /// True once the stream has ended or failed; `fill` adds nothing more.
    private(set) var isFinished = false
    /// Why parsing stopped early, if it did.
    private(set) var failure: YAMLParseFailure?

    /// Prepares to parse `bytes`, which must stay valid and unchanged for the parser's lifetime.
    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        parser = .allocate(capacity: 1)
        parser.initialize(to: yaml_parser_t())
        isInitialized = yaml_parser_initialize(parser) == 1
        guard isInitialized else {
            isFinished = true
            failure = YAMLParseFailure(
                problem: "the YAML parser could not be initialised (out of memory)", problemLocation: .start,
                problemOffset: 0, isReaderError: false, context: nil, contextLocation: .start)
            return
        }
        if let base = bytes.baseAddress {
            yaml_parser_set_input_string(parser, base, bytes.count)
        } else {
            yaml_parser_set_input_string(parser, emptyInput, 0)
        }
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
    }

    deinit {
        if isInitialized { yaml_parser_delete(parser) }
        parser.deinitialize(count: 1)
        parser.deallocate()
        emptyInput.deallocate()
    }

    /// Empties `batch` and fills it with up to `limit` events, fewer when the stream ends or fails first.
    func fill(_ batch: inout YAMLEventBatch, limit: Int) {
        batch.events.removeAll(keepingCapacity: true)
        batch.bytes.removeAll(keepingCapacity: true)
        guard !isFinished else { return }
        var event = yaml_event_t()
        while batch.events.count < limit {
            guard yaml_parser_parse(parser, &event) == 1 else {
                failure = currentFailure()
                isFinished = true
                return
            }
            let kind = Self.append(event, to: &batch)
            yaml_event_delete(&event)
            if kind == .streamEnd {
                isFinished = true
                return
            }
        }
    }

    /// Adds the event to the batch when the composer needs it, and says what kind it was.
    private static func append(_ event: yaml_event_t, to batch: inout YAMLEventBatch) -> YAMLEvent.Kind? {
        let location = SourceLocation(line: event.start_mark.line + 1, column: event.start_mark.column + 1)
        var converted = YAMLEvent(
            kind: .streamEnd, style: .plain, location: location, value: .absent, anchor: .absent, tag: .absent)
        switch event.type {
        case YAML_STREAM_END_EVENT:
            converted.kind = .streamEnd
        case YAML_DOCUMENT_START_EVENT:
            converted.kind = .documentStart
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            converted.kind = .scalar
            switch scalar.style {
            case YAML_PLAIN_SCALAR_STYLE: converted.style = .plain
            case YAML_LITERAL_SCALAR_STYLE, YAML_FOLDED_SCALAR_STYLE: converted.style = .block
            default: converted.style = .quoted
            }
            if let value = scalar.value { converted.value = batch.append(value, count: scalar.length) }
            converted.anchor = text(scalar.anchor, into: &batch)
            converted.tag = text(scalar.tag, into: &batch)
        case YAML_ALIAS_EVENT:
            converted.kind = .alias
            converted.value = text(event.data.alias.anchor, into: &batch)
        case YAML_MAPPING_START_EVENT:
            converted.kind = .mappingStart
            converted.anchor = text(event.data.mapping_start.anchor, into: &batch)
            converted.tag = text(event.data.mapping_start.tag, into: &batch)
        case YAML_SEQUENCE_START_EVENT:
            converted.kind = .sequenceStart
            converted.anchor = text(event.data.sequence_start.anchor, into: &batch)
            converted.tag = text(event.data.sequence_start.tag, into: &batch)
        case YAML_MAPPING_END_EVENT:
            converted.kind = .mappingEnd
        case YAML_SEQUENCE_END_EVENT:
            converted.kind = .sequenceEnd
        default:
            return nil
        }
        batch.events.append(converted)
        return converted.kind
    }

    private static func text(
        _ pointer: UnsafeMutablePointer<yaml_char_t>?, into batch: inout YAMLEventBatch
    ) -> YAMLEventText {
        guard let pointer else { return .absent }
        var count = 0
        while pointer[count] != 0 { count += 1 }
        return batch.append(pointer, count: count)
    }

    private func currentFailure() -> YAMLParseFailure {
        let state = parser.pointee
        return YAMLParseFailure(
            problem: state.problem.map { String(cString: $0) },
            problemLocation: SourceLocation(line: state.problem_mark.line + 1, column: state.problem_mark.column + 1),
            problemOffset: state.problem_offset,
            isReaderError: state.error == YAML_READER_ERROR,
            context: state.context.map { String(cString: $0) },
            contextLocation: SourceLocation(line: state.context_mark.line + 1, column: state.context_mark.column + 1))
    }
}
