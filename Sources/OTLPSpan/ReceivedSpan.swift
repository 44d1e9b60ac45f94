/// One span as the dashboard keeps it: what `orchestrate-otlp` (OTLPDecoder) decodes from an OTLP export and the
/// supervisor stores, as JSON between the two. No dependencies, so the supervisor links no protobuf.
public struct ReceivedSpan: Sendable, Codable, Equatable {
    /// Hex, as in `traceparent` and the services' log lines (`trace_id`).
    public var traceID: String
    public var spanID: String
    public var parentSpanID: String?
    public var name: String
    /// The resource's `service.name`.
    public var service: String
    /// The resource's `service.instance.id` (`up` sets the replica's name there).
    public var instance: String?
    /// `server`, `client`, `internal`, `producer`, `consumer`.
    public var kind: String
    public var startNanoseconds: UInt64
    public var endNanoseconds: UInt64
    public var isError: Bool
    public var attributes: [String: String]

    public init(
        traceID: String, spanID: String, parentSpanID: String?, name: String, service: String, instance: String?,
        kind: String, startNanoseconds: UInt64, endNanoseconds: UInt64, isError: Bool, attributes: [String: String]
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.name = name
        self.service = service
        self.instance = instance
        self.kind = kind
        self.startNanoseconds = startNanoseconds
        self.endNanoseconds = endNanoseconds
        self.isError = isError
        self.attributes = attributes
    }
}
