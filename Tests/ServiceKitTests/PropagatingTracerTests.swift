import Logging
import Testing
import Tracing
import W3CTraceContext

@testable import ServiceKit

/// Headers as a list of pairs, for extract and inject.
struct Headers: Extractor, Injector {
    func extract(key: String, from carrier: [(String, String)]) -> String? {
        carrier.first { $0.0 == key }?.1
    }

    func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) {
        carrier.append((key, value))
    }
}

@Suite struct PropagatingTracerTests {
    let tracer = PropagatingTracer()

    func outgoing(_ incoming: [(String, String)]) -> [String: String] {
        var parent = ServiceContext.topLevel
        tracer.extract(incoming, into: &parent, using: Headers())
        let span = tracer.startSpan("GET /things", context: parent)
        defer { span.end() }
        var carrier: [(String, String)] = []
        tracer.inject(span.context, into: &carrier, using: Headers())
        return Dictionary(carrier, uniquingKeysWith: { first, _ in first })
    }

    @Test func theTraceparentWrittenIsTheLibrarysForm() {
        var ids = SystemRandomNumberGenerator()
        for flags: TraceFlags in [[], .sampled, TraceFlags(rawValue: 0xA5)] {
            for _ in 0..<100 {
                let trace = TraceContext(
                    traceID: .random(using: &ids), spanID: .random(using: &ids), flags: flags, state: .init())
                #expect(PropagatingTracer.traceParentValue(trace) == trace.traceParentHeaderValue)
            }
        }
    }

    @Test func aRequestsTraceContinuesWithANewSpan() throws {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let sent = outgoing([("traceparent", parent), ("tracestate", "vendor=value")])
        let traceparent = try #require(sent["traceparent"])
        #expect(traceparent.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-"))
        #expect(traceparent.hasSuffix("-01"))
        #expect(traceparent != parent)
        #expect(sent["tracestate"] == "vendor=value")
        #expect(try TraceContext(traceParentHeaderValue: traceparent).spanID != .null)
    }

    @Test func aRequestWithoutOneStartsAnUnsampledTrace() throws {
        let traceparent = try #require(outgoing([])["traceparent"])
        let context = try TraceContext(traceParentHeaderValue: traceparent)
        #expect(context.flags == [])
        #expect(context.traceID != .null && context.spanID != .null)
        #expect(outgoing([])["tracestate"] == nil)
    }

    /// Whatever a client sends as `traceparent`, what goes on is well-formed and not the client's text.
    @Test(arguments: [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  // short
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // unknown version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // null trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // null span id
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx-injected: 1",
    ])
    func aMalformedTraceparentStartsATraceOfItsOwn(_ hostile: String) throws {
        let sent = outgoing([("traceparent", hostile)])
        let traceparent = try #require(sent["traceparent"])
        let context = try TraceContext(traceParentHeaderValue: traceparent)
        #expect(context.traceID != .null)
        #expect(!traceparent.contains("4bf92f3577b34da6a3ce929d0e0e4736"))
        #expect(context.flags == [])
    }

    @Test func idsDoNotRepeat() {
        var traces = Set<TraceID>()
        var spans = Set<SpanID>()
        for _ in 0..<20_000 {
            let context = tracer.startSpan("x", context: .topLevel).context.traceContext!
            traces.insert(context.traceID)
            spans.insert(context.spanID)
        }
        #expect(traces.count == 20_000)
        #expect(spans.count == 20_000)
    }

    @Test func logLinesCarryTheSpansIds() throws {
        let span = tracer.startSpan("x", context: .topLevel)
        let trace = try #require(span.context.traceContext)
        ServiceContext.withValue(span.context) {
            let metadata = PropagatingTracer.loggingMetadataProvider.get()
            #expect(metadata["trace_id"] == "\(trace.traceID)")
            #expect(metadata["span_id"] == "\(trace.spanID)")
            #expect(metadata["trace_flags"] == "0")
        }
        #expect(PropagatingTracer.loggingMetadataProvider.get().isEmpty)
    }
}
