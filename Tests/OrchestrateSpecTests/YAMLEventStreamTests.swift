import Testing

@testable import OrchestrateSpec

@Suite(.timeLimit(.minutes(5)))
struct YAMLEventStreamTests {
    /// Every event of `bytes` as text (kind, position, style, strings), batch by batch.
    private static func batches(_ bytes: [UInt8], concurrently: Bool) -> [[String]] {
        bytes.withUnsafeBufferPointer { buffer in
            let stream = YAMLEventStream(buffer, concurrently: concurrently)
            defer { stream.close() }
            var batches: [[String]] = []
            while let batch = stream.next() {
                batches.append(batch.events.map { describe($0, in: batch) })
                stream.recycle(batch)
            }
            return batches
        }
    }

    private static func describe(_ event: YAMLEvent, in batch: YAMLEventBatch) -> String {
        func text(_ range: YAMLEventText) -> String {
            range.isAbsent
                ? "-" : String(decoding: batch.bytes[Int(range.start)..<Int(range.start + range.count)], as: UTF8.self)
        }
        return
            "\(event.kind) \(event.location) \(event.style) \(text(event.value)) \(text(event.anchor)) \(text(event.tag))"
    }

    @Test func aThreadOfItsOwnDeliversTheSameBatchesAsTheCallersThread() throws {
        let bytes = Array(LargeSpec.text(services: 200, ending: .unknownTag).utf8)
        let concurrent = Self.batches(bytes, concurrently: true)
        #expect(concurrent == Self.batches(bytes, concurrently: false))
        #expect(concurrent.count > 10)
        #expect(concurrent.dropLast().allSatisfy { $0.count == YAMLEventStream.defaultBatchCapacity })
        let last = try #require(concurrent.last?.last)
        #expect(last.hasPrefix("streamEnd"))
        #expect(concurrent.joined().contains { $0.hasSuffix(" plain value - !custom") })
    }

    @Test(arguments: [true, false])
    func aFailureEndsTheStreamWithWhereAndWhy(concurrently: Bool) throws {
        let bytes = Array((LargeSpec.text(services: 100, ending: .nothing) + "x-broken: [unclosed\n").utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            let stream = YAMLEventStream(buffer, concurrently: concurrently)
            defer { stream.close() }
            var events = 0
            while let batch = stream.next() {
                events += batch.events.count
                #expect(!batch.events.contains { $0.kind == .streamEnd })
                stream.recycle(batch)
            }
            #expect(events > 1000)
            let failure = try #require(stream.failure)
            #expect(failure.problem == "did not find expected ',' or ']'")
            #expect(
                failure.problemLocation.line == LargeSpec.text(services: 100, ending: .nothing).count { $0 == "\n" } + 2
            )
        }
    }

    @Test func closingWhileTheThreadWaitsForABatchStopsIt() throws {
        // The composer stops at the second document, in the first batch; the thread has filled every batch by then
        // and waits for one to be given back, which never happens: closing must wake it.
        let bytes = Array(("a: 1\n---\n" + LargeSpec.text(services: 300, ending: .nothing)).utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            let stream = YAMLEventStream(buffer, concurrently: true)
            let first = stream.next()
            #expect(first?.events.contains { $0.kind == .documentStart } == true)
            let relay = try #require(stream.relay, "no parsing thread was started")
            #expect(!relay.threadHasReturned, "the thread waits for a batch to be given back")
            stream.close()
            #expect(relay.threadHasReturned)
            stream.close()
        }
    }

    @Test func aStreamLeftUnclosedStopsItsThreadWhenReleased() throws {
        let bytes = Array(LargeSpec.text(services: 300, ending: .nothing).utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            var stream: YAMLEventStream? = YAMLEventStream(buffer, concurrently: true)
            #expect(stream?.next() != nil)
            // The thread holds the relay until it returns: once the stream is gone, so is the relay, only if the
            // thread has returned (the stream's release joins it).
            weak let relay = try #require(stream?.relay, "no parsing thread was started")
            #expect(relay?.threadHasReturned == false)
            stream = nil
            #expect(relay == nil, "the parsing thread outlived its stream")
        }
    }
}
