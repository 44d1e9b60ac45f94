import Logging
import Synchronization
public import Tracing
public import W3CTraceContext

/// The tracer of a service with no trace exporter: it records nothing, and carries W3C trace context through.
///
/// A request's `traceparent` continues in the spans the service starts (same trace id and flags, a new span id),
/// goes on to the calls those spans make, and is logged (`trace_id`, `span_id`, `trace_flags`, the keys swift-otel's
/// provider uses). A request without one starts a trace, not sampled (`-00`). With an exporter, swift-otel's tracer
/// does all this and records as well; without one, it would still take a lock shared by every thread and three
/// `getrandom` calls per span for ids (in the gateway, 4.6 of its 10.4 system calls per request went to those and
/// the lock's `futex`, BENCHMARKS.md), where this tracer takes one atomic add per id.
public struct PropagatingTracer: Tracer {
    public typealias Span = PropagatedSpan

    static let traceParent = "traceparent"
    static let traceState = "tracestate"

    public init() {}

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> ServiceContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> PropagatedSpan {
        var context = context()
        var ids = SpanIDs()
        let trace: TraceContext
        if let parent = context.traceContext {
            trace = TraceContext(
                traceID: parent.traceID, spanID: .random(using: &ids), flags: parent.flags, state: parent.state)
        } else {
            trace = TraceContext(traceID: .random(using: &ids), spanID: .random(using: &ids), flags: [], state: .init())
        }
        context.traceContext = trace
        return PropagatedSpan(context: context, operationName: operationName)
    }

    public func forceFlush() {}

    public func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let parent = extractor.extract(key: Self.traceParent, from: carrier) else { return }
        // A malformed `traceparent` (or `tracestate`) is ignored: the request starts a trace of its own.
        context.traceContext = try? TraceContext(
            traceParentHeaderValue: parent,
            traceStateHeaderValue: extractor.extract(key: Self.traceState, from: carrier))
    }

    public func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        guard let trace = context.traceContext else { return }
        injector.inject(Self.traceParentValue(trace), forKey: Self.traceParent, into: &carrier)
        if let state = trace.traceStateHeaderValue {
            injector.inject(state, forKey: Self.traceState, into: &carrier)
        }
    }

    /// `trace.traceParentHeaderValue`, written in one pass into one string of 55 bytes: the library's getter builds
    /// it from four strings and two arrays, 3.2 % of the gateway's CPU per request (BENCHMARKS.md "gateway").
    static func traceParentValue(_ trace: TraceContext) -> String {
        String(unsafeUninitializedCapacity: 55) { out in
            out[0] = UInt8(ascii: "0")
            out[1] = UInt8(ascii: "0")
            out[2] = UInt8(ascii: "-")
            var index = withUnsafeBytes(of: trace.traceID.bytes) { writeHex($0, into: out, at: 3) }
            out[index] = UInt8(ascii: "-")
            index = withUnsafeBytes(of: trace.spanID.bytes) { writeHex($0, into: out, at: index + 1) }
            out[index] = UInt8(ascii: "-")
            index = withUnsafeBytes(of: trace.flags.rawValue) { writeHex($0, into: out, at: index + 1) }
            return index
        }
    }

    /// Writes `bytes` as lowercase hex into `out` from `start`; returns the index after the last digit.
    private static func writeHex(
        _ bytes: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<UInt8>, at start: Int
    ) -> Int {
        var index = start
        for byte in bytes {
            out[index] = hexDigit(byte >> 4)
            out[index + 1] = hexDigit(byte & 0xF)
            index += 2
        }
        return index
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
    }

    /// Logs the current span's ids under the keys swift-otel's provider uses.
    static let loggingMetadataProvider = Logger.MetadataProvider {
        guard let trace = ServiceContext.current?.traceContext else { return [:] }
        return [
            "trace_id": "\(trace.traceID)", "span_id": "\(trace.spanID)",
            "trace_flags": "\(trace.flags.rawValue)",
        ]
    }
}

/// A span of `PropagatingTracer`: its context, and nothing recorded.
public struct PropagatedSpan: Tracing.Span {
    public let context: ServiceContext
    private let name: String

    init(context: ServiceContext, operationName: String) {
        self.context = context
        self.name = operationName
    }

    public var isRecording: Bool { false }
    public var operationName: String {
        get { name }
        nonmutating set {}
    }
    public var attributes: SpanAttributes {
        get { [:] }
        nonmutating set {}
    }
    public func setStatus(_ status: SpanStatus) {}
    public func addEvent(_ event: SpanEvent) {}
    public func addLink(_ link: SpanLink) {}
    public func recordError<Instant: TracerInstant>(
        _ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant
    ) {}
    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {}
}

extension ServiceContext {
    /// The W3C trace context `PropagatingTracer` carries.
    public var traceContext: TraceContext? {
        get { self[TraceContextKey.self] }
        set { self[TraceContextKey.self] = newValue }
    }
}

private enum TraceContextKey: ServiceContextKey {
    typealias Value = TraceContext
    static let nameOverride: String? = "w3c-trace-context"
}

/// Trace and span ids: SplitMix64's output function over a process-wide counter from a random start. The function
/// is a bijection, so no two ids of one process are equal until the counter wraps; the random start keeps processes
/// apart. Zero (a null id in W3C trace context) is skipped.
struct SpanIDs: RandomNumberGenerator {
    private static let start = UInt64.random(in: .min ... .max)
    private static let counter = Atomic<UInt64>(0)

    mutating func next() -> UInt64 {
        while true {
            let count = Self.counter.wrappingAdd(1, ordering: .relaxed).newValue
            var z = Self.start &+ count &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            if z != 0 { return z }
        }
    }
}
