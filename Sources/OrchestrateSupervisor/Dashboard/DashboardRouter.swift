import Foundation
import NIOCore
import NIOHTTP1

/// One dashboard connection: checks each request (host, token, origin) and answers it from the session's source.
/// Answers are written from a task on the channel, so a slow status never holds the event loop.
final class DashboardRouter: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    struct Shared: Sendable {
        let token: String
        /// In the path services export traces to (`/otlp/TOKEN/v1/traces`): not the page's token, which a service
        /// has no business holding.
        let ingestToken: String
        let source: DashboardServer.Source
    }

    /// A page's request has no body; a trace export is at most this large.
    static let maximumBody = 1 << 20
    private let shared: Shared
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyBytes = 0

    init(shared: Shared) {
        self.shared = shared
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            bodyBytes = 0
        case .body(var part):
            bodyBytes += part.readableBytes
            if bodyBytes <= Self.maximumBody, let bytes = part.readBytes(length: part.readableBytes) { body += bytes }
        case .end:
            guard let head else { return }
            self.head = nil
            let request = Request(
                head: head, body: body, bodyBytes: bodyBytes, port: context.channel.localAddress?.port ?? 0)
            body = []
            Self.answerLater(request, shared: shared, on: context.channel)
        }
    }

    private static func answerLater(_ request: Request, shared: Shared, on channel: any Channel) {
        Task { await respond(to: request, shared: shared, on: channel) }
    }

    struct Request: Sendable {
        let head: HTTPRequestHead
        let body: [UInt8]
        let bodyBytes: Int
        let port: Int

        var path: String { URLComponents(string: head.uri)?.path ?? head.uri }
        func query(_ name: String) -> String? {
            URLComponents(string: head.uri)?.queryItems?.first { $0.name == name }?.value
        }
        /// Only this server's own names: a page that rebinds its DNS name to 127.0.0.1 sends its own host.
        var hostIsOurs: Bool {
            guard let host = head.headers.first(name: "host")?.lowercased() else { return false }
            return host == "127.0.0.1:\(port)" || host == "localhost:\(port)"
        }
        /// A browser sends Origin with every POST; another site's page is refused even with a stolen token.
        var originIsOursOrAbsent: Bool {
            guard let origin = head.headers.first(name: "origin")?.lowercased() else { return true }
            return origin == "http://127.0.0.1:\(port)" || origin == "http://localhost:\(port)"
        }
    }

    static func respond(to request: Request, shared: Shared, on channel: any Channel) async {
        let answer = await answer(request, shared: shared, channel: channel)
        guard let answer else { return }  // a stream, already answered
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: answer.contentType)
        headers.add(name: "content-length", value: String(answer.body.count))
        headers.add(name: "cache-control", value: "no-store")
        headers.add(name: "x-content-type-options", value: "nosniff")
        headers.add(name: "referrer-policy", value: "no-referrer")
        headers.add(name: "x-frame-options", value: "DENY")
        headers.add(
            name: "content-security-policy",
            value: "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
                + "img-src 'self' data:; frame-ancestors 'none'")
        headers.add(name: "connection", value: "close")
        let head = HTTPResponseHead(version: request.head.version, status: answer.status, headers: headers)
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: answer.body))), promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }

    struct Answer {
        var status: HTTPResponseStatus
        var contentType = "application/json"
        var body: [UInt8]

        static func json(_ value: some Encodable, _ status: HTTPResponseStatus = .ok) -> Answer {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return Answer(status: status, body: Array((try? encoder.encode(value)) ?? Data("{}".utf8)))
        }

        static func error(_ status: HTTPResponseStatus, _ code: String, _ message: String) -> Answer {
            json(["error": ["code": code, "message": message]], status)
        }
    }

    /// The answer, or nil for the event stream (which writes its own).
    static func answer(_ request: Request, shared: Shared, channel: any Channel) async -> Answer? {
        guard request.hostIsOurs else {
            return .error(.forbidden, "forbidden-host", "the dashboard answers only to 127.0.0.1 and localhost")
        }
        let path = request.path
        if path.hasPrefix("/otlp/") { return await receive(request, shared: shared) }
        guard let token = request.query("token"), Self.sameBytes(token, shared.token) else {
            return .error(.unauthorized, "token", "open the URL `orchestrate up` printed: it carries the token")
        }
        guard request.bodyBytes <= 4096 else {
            return .error(.payloadTooLarge, "body-too-large", "dashboard requests have no body")
        }
        switch (request.head.method, path) {
        case (.GET, "/"):
            return Answer(status: .ok, contentType: "text/html; charset=utf-8", body: Array(DashboardPage.html.utf8))
        case (.GET, "/api/state"):
            return .json(await shared.source.state())
        case (.GET, "/api/logs"):
            let after = request.query("after").flatMap(UInt64.init) ?? 0
            return .json(shared.source.logs.entries(after: after))
        case (.GET, "/api/traces"):
            return .json(shared.source.spans.traces())
        case (.GET, _) where path.hasPrefix("/api/traces/"):
            let id = String(path.dropFirst("/api/traces/".count))
            return .json(shared.source.spans.spans(of: id))
        case (.GET, "/api/events"):
            await DashboardEvents.stream(request, source: shared.source, on: channel)
            return nil
        case (.POST, _) where path.hasPrefix("/api/services/"):
            guard request.originIsOursOrAbsent else {
                return .error(.forbidden, "forbidden-origin", "actions come from the dashboard's own page only")
            }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 5, let command = ControlRequest.Command(rawValue: String(parts[4])),
                [.restart, .stop, .start].contains(command)
            else {
                return .error(.notFound, "not-found", "POST /api/services/NAME/restart|stop|start")
            }
            let service = String(parts[3])
            guard await shared.source.state().services.contains(where: { $0.name == service }) else {
                return .error(.notFound, "no-such-service", "no service named \(service)")
            }
            // Accepted at once: a restart waits for readiness, which the page follows on its live feed.
            let act = shared.source.act
            Task { _ = await act(ControlRequest(command: command, service: service)) }
            return .json(ControlResponse(ok: true, message: "\(command.rawValue) \(service)"), .accepted)
        case (.GET, _), (.POST, _):
            return .error(.notFound, "not-found", "no such page: \(path)")
        default:
            return .error(.methodNotAllowed, "method", "GET or POST only")
        }
    }

    /// `POST /otlp/TOKEN/v1/traces`: an OTLP/HTTP protobuf export from a service, its spans kept for the page.
    static func receive(_ request: Request, shared: Shared) async -> Answer {
        let parts = request.path.split(separator: "/")
        guard parts.count == 4, parts[2] == "v1", parts[3] == "traces", sameBytes(String(parts[1]), shared.ingestToken)
        else {
            return .error(.unauthorized, "token", "export traces to the OTEL_EXPORTER_OTLP_ENDPOINT `up` gave")
        }
        guard request.head.method == .POST else { return .error(.methodNotAllowed, "method", "POST only") }
        guard request.bodyBytes <= maximumBody else {
            return .error(.payloadTooLarge, "body-too-large", "an export is at most \(maximumBody >> 20) MiB")
        }
        guard request.head.headers.first(name: "content-type")?.lowercased() == "application/x-protobuf" else {
            return .error(.unsupportedMediaType, "protobuf", "OTLP/HTTP in protobuf (application/x-protobuf) only")
        }
        guard let decode = shared.source.decodeTraces else {
            return .error(.serviceUnavailable, "no-decoder", "no orchestrate-otlp beside orchestrate: no traces")
        }
        switch await decode(request.body) {
        case .success(let spans): shared.source.spans.add(spans)
        case .failure(let failure): return .error(.badRequest, "not-otlp", failure.description)
        }
        // An empty ExportTraceServiceResponse: zero bytes of protobuf.
        return Answer(status: .ok, contentType: "application/x-protobuf", body: [])
    }

    /// Equal strings, compared without stopping at the first difference.
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
