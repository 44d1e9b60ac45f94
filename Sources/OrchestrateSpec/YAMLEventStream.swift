/// Delivers a document's events to the composer in batches.
///
/// A large document is parsed on a thread of its own, so libyaml's scanning — about half of what `validate` does —
/// runs beside the composing instead of before it. A small one is parsed on the caller's thread as the composer asks
/// for each batch: there a thread would cost more than it saves. Both ways deliver the same events in the same
/// batches.
final class YAMLEventStream {
    /// Events per batch: large enough that handing a batch over is rare, small enough that the composer starts early
    /// and has little left once the parser is done.
    static let defaultBatchCapacity = 1024
    /// Documents from this size are parsed on a thread of their own (a spec of ~55 services). Starting the thread
    /// costs ~0.5 ms on a 2-core VM; measured against the single-threaded build, it paid for itself from ~50 services
    /// (29 KiB) and saved 11% at 100 (58 KiB), 25% at 1,000.
    static let concurrentParsingThreshold = 32 * 1024

    private let parser: YAMLEventParser
    private let batchCapacity: Int
    /// The parsing thread, when there is one (internal for the tests of its end).
    let relay: YAMLEventRelay?
    /// The caller's thread's one batch, while the composer is not holding it.
    private var spare: YAMLEventBatch?

    /// Starts parsing `bytes`, which must stay valid until `close()` has returned.
    /// - Parameters:
    ///   - concurrently: parse on a thread of its own; by default, when the document is large.
    ///   - batchCapacity: events per batch; tests and the fuzzer make it small, so batches change hands often.
    init(
        _ bytes: UnsafeBufferPointer<UInt8>, concurrently: Bool? = nil, batchCapacity: Int = defaultBatchCapacity
    ) {
        parser = YAMLEventParser(bytes)
        self.batchCapacity = max(1, batchCapacity)
        if concurrently ?? (bytes.count >= Self.concurrentParsingThreshold),
            let relay = YAMLEventRelay(parser, batchCapacity: self.batchCapacity)
        {
            self.relay = relay
            spare = nil
        } else {
            relay = nil
            spare = YAMLEventBatch(capacity: self.batchCapacity)
        }
    }

    deinit { close() }

    /// The next batch in document order, or nil once every event has been delivered. Give each batch back with
    /// `recycle` when done with it.
    func next() -> YAMLEventBatch? {
        if let relay { return relay.next() }
        guard !parser.isFinished, var batch = spare.take() else { return nil }
        parser.fill(&batch, limit: batchCapacity)
        if batch.events.isEmpty {
            spare = batch
            return nil
        }
        return batch
    }

    /// Takes back a batch from `next()`, to be filled again.
    func recycle(_ batch: consuming YAMLEventBatch) {
        if let relay {
            relay.recycle(batch)
        } else {
            spare = batch
        }
    }

    /// Why libyaml stopped before the end of the stream; meaningful once `next()` has returned nil.
    var failure: YAMLParseFailure? {
        if let relay { return relay.failure }
        return parser.failure
    }

    /// Stops the parsing thread, if any, and waits for it; the caller may then free the bytes. Safe to call twice.
    func close() {
        relay?.close()
    }
}
