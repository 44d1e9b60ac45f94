#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A thread that fills batches of events from a `YAMLEventParser` while the composer empties them.
///
/// The two threads share a few batches through two lists under one mutex: filled batches in document order, and
/// empty ones to fill. Each side waits on a condition only when its list is empty; otherwise handing a batch over is
/// one short lock.
final class YAMLEventRelay: @unchecked Sendable {
    /// Batches in flight: one being filled, one being composed, one ready in between.
    private static let batchCount = 3

    private let parser: YAMLEventParser
    private let batchCapacity: Int
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Signalled when a batch is filled or the parser has finished.
    private let filledCondition: UnsafeMutablePointer<pthread_cond_t>
    /// Signalled when a batch is given back or the relay is closed.
    private let emptyCondition: UnsafeMutablePointer<pthread_cond_t>
    #if canImport(Glibc)
        private var thread = pthread_t()
    #endif
    private var isJoined = false

    // Guarded by `mutex`.
    private var filled: [YAMLEventBatch] = []
    private var empty: [YAMLEventBatch]
    private var parserFinished = false
    private var isClosed = false
    private var hasReturned = false

    /// Starts a thread that parses with `parser`; nil when no thread could be started (the caller parses itself).
    /// The thread is started with Glibc's pthread types only; elsewhere the caller always parses itself.
    init?(_ parser: YAMLEventParser, batchCapacity: Int) {
        self.parser = parser
        self.batchCapacity = batchCapacity
        empty = (0..<Self.batchCount).map { _ in YAMLEventBatch(capacity: batchCapacity) }
        filled.reserveCapacity(Self.batchCount)
        mutex = .allocate(capacity: 1)
        filledCondition = .allocate(capacity: 1)
        emptyCondition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(filledCondition, nil)
        pthread_cond_init(emptyCondition, nil)
        #if canImport(Glibc)
            // The thread owns a reference to the relay until it returns.
            let reference = Unmanaged.passRetained(self)
            let started = pthread_create(
                &thread, nil,
                { context in
                    Unmanaged<YAMLEventRelay>.fromOpaque(context!).takeRetainedValue().parseUntilDone()
                    return nil
                }, reference.toOpaque())
            guard started == 0 else {
                reference.release()
                isJoined = true
                return nil
            }
        #else
            isJoined = true
            return nil
        #endif
    }

    deinit {
        close()
        pthread_cond_destroy(emptyCondition)
        pthread_cond_destroy(filledCondition)
        pthread_mutex_destroy(mutex)
        emptyCondition.deallocate()
        filledCondition.deallocate()
        mutex.deallocate()
    }

    /// The next filled batch in document order, waiting for it if need be; nil once the parser has finished and
    /// every batch it filled has been taken.
    func next() -> YAMLEventBatch? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while filled.isEmpty && !parserFinished { pthread_cond_wait(filledCondition, mutex) }
        return filled.isEmpty ? nil : filled.removeFirst()
    }

    /// Gives a batch back to be filled again.
    func recycle(_ batch: consuming YAMLEventBatch) {
        pthread_mutex_lock(mutex)
        empty.append(batch)
        pthread_cond_signal(emptyCondition)
        pthread_mutex_unlock(mutex)
    }

    /// Why libyaml stopped early, once the parser has finished.
    var failure: YAMLParseFailure? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return parserFinished ? parser.failure : nil
    }

    /// Whether the thread has returned (what the tests of closing and releasing check).
    var threadHasReturned: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return hasReturned
    }

    /// Stops the thread after the batch it is filling, and waits for it. Safe to call twice.
    func close() {
        guard !isJoined else { return }
        pthread_mutex_lock(mutex)
        isClosed = true
        pthread_cond_signal(emptyCondition)
        pthread_mutex_unlock(mutex)
        #if canImport(Glibc)
            pthread_join(thread, nil)
        #endif
        isJoined = true
    }

    /// The thread's work: fill each empty batch and pass it on, until the stream ends, fails or the relay closes.
    private func parseUntilDone() {
        defer {
            pthread_mutex_lock(mutex)
            hasReturned = true
            pthread_mutex_unlock(mutex)
        }
        while true {
            pthread_mutex_lock(mutex)
            while empty.isEmpty && !isClosed { pthread_cond_wait(emptyCondition, mutex) }
            guard !isClosed, var batch = empty.popLast() else {
                pthread_mutex_unlock(mutex)
                return
            }
            pthread_mutex_unlock(mutex)

            parser.fill(&batch, limit: batchCapacity)
            let finished = parser.isFinished

            pthread_mutex_lock(mutex)
            filled.append(batch)
            parserFinished = finished
            pthread_cond_signal(filledCondition)
            pthread_mutex_unlock(mutex)
            if finished { return }
        }
    }
}
