import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OTLPSpan
import OTLPTraceWire
import OrchestrateTestSupport
import SwiftProtobuf
import Testing

@testable import OrchestrateSupervisor

/// The dashboard's OTLP receiver over real sockets: an export in protobuf, as swift-otel sends it, becomes spans and
/// traces; anything else is refused with a 4xx and stores nothing.
@Suite(.timeLimit(.minutes(2))) struct DashboardTraceTests {
    static func export(trace: UInt8, spans: [(id: UInt8, parent: UInt8?, name: String, start: UInt64, error: Bool)])
        -> [UInt8]
    {
        var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        var resource = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        var name = Opentelemetry_Proto_Common_V1_KeyValue()
        name.key = "service.name"
        name.value.stringValue = "order-service"
        var instance = Opentelemetry_Proto_Common_V1_KeyValue()
        instance.key = "service.instance.id"
        instance.value.stringValue = "order-service-1"
        resource.resource.attributes = [name, instance]
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scope.spans = spans.map { item in
            var span = Opentelemetry_Proto_Trace_V1_Span()
            span.traceID = Data(repeating: trace, count: 16)
            span.spanID = Data(repeating: item.id, count: 8)
            if let parent = item.parent { span.parentSpanID = Data(repeating: parent, count: 8) }
            span.name = item.name
            span.kind = .server
            span.startTimeUnixNano = item.start
            span.endTimeUnixNano = item.start + 1_000_000
            if item.error { span.status.code = .error }
            return span
        }
        resource.scopeSpans = [scope]
        request.resourceSpans = [resource]
        return try! request.serializedBytes()
    }

    func post(_ url: String, _ body: [UInt8], type: String = "application/x-protobuf", method: HTTPMethod = .POST)
        async throws -> Int
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "content-type", value: type)
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    @Test func anExportBecomesATraceAndAnythingElseIsRefused() async throws {
        let spans = SpanStore(capacity: 100)
        let server = try await DashboardServer.start(
            port: 0,
            source: .init(
                state: { DashboardServerTests.state }, act: { _ in ControlResponse(ok: true) }, logs: LogRing(),
                spans: spans,
                decodeTraces: { bytes in
                    do {
                        return .success(try OTLPTraceDecoder.decode(bytes))
                    } catch {
                        return .failure(OTLPDecoderProcess.Failure(description: "\(error)"))
                    }
                }))
        defer { Task { await server.stop() } }
        let good = Self.export(
            trace: 0xab,
            spans: [(1, nil, "/orders", 10, false), (2, 1, "GET /users", 20, false), (3, 1, "POST", 30, true)])
        let endpoint = server.otlpEndpoint + "/v1/traces"
        #expect(!server.otlpEndpoint.contains(server.token), "a service must not hold the page's token")

        // Refused, and nothing stored.
        let wrongToken = "http://127.0.0.1:\(server.port)/otlp/\(server.token)/v1/traces"
        #expect(try await post(wrongToken, good) == 401)
        #expect(try await post("http://127.0.0.1:\(server.port)/otlp/v1/traces", good) == 401)
        #expect(try await post(endpoint, good, method: .PUT) == 405)
        #expect(try await post(endpoint, good, type: "application/json") == 415)
        #expect(try await post(endpoint, [0xff, 0xff, 0xff, 0x0f]) == 400)
        #expect(try await post(endpoint, [UInt8](repeating: 0x0a, count: (1 << 20) + 1)) == 413)
        #expect(spans.count == 0)

        #expect(try await post(endpoint, good) == 200)
        #expect(spans.count == 3)
        let summary = try #require(spans.traces().first)
        #expect(summary.traceID == String(repeating: "ab", count: 16))
        #expect(summary.root == "order-service: /orders")
        #expect(summary.services == ["order-service"])
        #expect(summary.spans == 3 && summary.errors == 1)
        let stored = spans.spans(of: summary.traceID)
        #expect(stored.map(\.name) == ["/orders", "GET /users", "POST"])
        #expect(stored[1].parentSpanID == String(repeating: "01", count: 8))
        #expect(stored[0].instance == "order-service-1" && stored[0].kind == "server")

        // The page's API lists it, with the page's token only.
        let list = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/api/traces?token=\(server.token)")
        let response = try await HTTPClient.shared.execute(list, timeout: .seconds(10))
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        #expect(response.status == .ok && body.contains(summary.traceID))
        let anonymous = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/api/traces")
        #expect(try await HTTPClient.shared.execute(anonymous, timeout: .seconds(10)).status == .unauthorized)
    }

    /// orchestrate-otlp as `up` runs it: the built OTLPDecoder, fed over a pipe.
    @Test func theDecoderProcessAnswersEachExport() async throws {
        let executable = URL(
            fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        var path = executable.deletingLastPathComponent().appendingPathComponent("OTLPDecoder").path
        if !FileManager.default.isExecutableFile(atPath: path) {
            path = ExternalTool.packageRoot.appendingPathComponent(".build/debug/OTLPDecoder").path
        }
        try #require(FileManager.default.isExecutableFile(atPath: path), "OTLPDecoder is not built: swift build")
        let decoder = OTLPDecoderProcess(path: path)
        defer { decoder.stop() }
        let good = Self.export(trace: 0xcd, spans: [(1, nil, "/orders", 10, false), (2, 1, "GET", 20, true)])
        guard case .success(let spans) = await decoder.decode(good) else {
            Issue.record("a good export was not decoded")
            return
        }
        #expect(spans.map(\.name) == ["/orders", "GET"] && spans[1].isError)
        guard case .failure(let failure) = await decoder.decode([0xff, 0xff, 0xff, 0x0f]) else {
            Issue.record("garbage was decoded")
            return
        }
        #expect(failure.description.contains("not an OTLP"))
        guard case .success(let again) = await decoder.decode(good) else {
            Issue.record("the decoder did not go on after garbage")
            return
        }
        #expect(again.count == 2)
        let missing = OTLPDecoderProcess(path: "/nonexistent/orchestrate-otlp")
        guard case .failure = await missing.decode(good) else {
            Issue.record("a missing decoder decoded")
            return
        }
    }

    @Test func theStoreKeepsTheNewestSpans() {
        let store = SpanStore(capacity: 2)
        for (index, trace) in ["a", "b", "c"].enumerated() {
            store.add([
                ReceivedSpan(
                    traceID: trace, spanID: trace, parentSpanID: nil, name: trace, service: "s", instance: nil,
                    kind: "server", startNanoseconds: UInt64(index), endNanoseconds: UInt64(index) + 1, isError: false,
                    attributes: [:])
            ])
        }
        #expect(store.count == 2)
        #expect(store.traces().map(\.traceID) == ["c", "b"])
    }
}
