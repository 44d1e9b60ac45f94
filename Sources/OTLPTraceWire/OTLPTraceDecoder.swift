import Foundation
public import OTLPSpan
import SwiftProtobuf

/// OTLP/HTTP traces in protobuf (`POST /v1/traces`, `application/x-protobuf`), what swift-otel's exporter sends.
/// The message types under Generated/ are swift-otel 1.x's own generated code (opentelemetry-proto, Apache 2.0),
/// committed rather than generated in every build; SwiftProtobuf decodes them.
public enum OTLPTraceDecoder {
    public struct DecodeError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Every span of an `ExportTraceServiceRequest`.
    ///
    /// - Throws: `DecodeError` when the bytes are not one.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> [ReceivedSpan] {
        let request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
        do {
            request = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: bytes)
        } catch {
            throw DecodeError(description: "not an OTLP ExportTraceServiceRequest: \(error)")
        }
        var spans: [ReceivedSpan] = []
        for resourceSpans in request.resourceSpans {
            let resource = Self.strings(resourceSpans.resource.attributes)
            for scope in resourceSpans.scopeSpans {
                for span in scope.spans {
                    spans.append(
                        ReceivedSpan(
                            traceID: hex(span.traceID), spanID: hex(span.spanID),
                            parentSpanID: span.parentSpanID.isEmpty ? nil : hex(span.parentSpanID), name: span.name,
                            service: resource["service.name"] ?? "unknown", instance: resource["service.instance.id"],
                            kind: kind(span.kind), startNanoseconds: span.startTimeUnixNano,
                            endNanoseconds: span.endTimeUnixNano, isError: span.status.code == .error,
                            attributes: strings(span.attributes)))
                }
            }
        }
        return spans
    }

    static func hex(_ data: Data) -> String {
        data.map { String(format: "%02x", $0) }.joined()
    }

    static func kind(_ kind: Opentelemetry_Proto_Trace_V1_Span.SpanKind) -> String {
        switch kind {
        case .server: "server"
        case .client: "client"
        case .producer: "producer"
        case .consumer: "consumer"
        default: "internal"
        }
    }

    static func strings(_ attributes: [Opentelemetry_Proto_Common_V1_KeyValue]) -> [String: String] {
        var result: [String: String] = [:]
        for attribute in attributes {
            let value = attribute.value
            switch value.value {
            case .stringValue(let text): result[attribute.key] = text
            case .intValue(let number): result[attribute.key] = String(number)
            case .doubleValue(let number): result[attribute.key] = String(number)
            case .boolValue(let flag): result[attribute.key] = String(flag)
            default: continue
            }
        }
        return result
    }
}
