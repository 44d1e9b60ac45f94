import HTTPTypes
public import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// What every ServiceKit server allows a client, so that slow or oversized clients cannot hold it:
///
/// - `HTTP_IDLE_TIMEOUT` (default 30s): a connection with no request in progress, including one that has sent only
///   part of a request head, is closed after this long. (Hummingbird's idle timeout: bytes that do not complete a
///   head do not reset it.)
/// - `HTTP_BODY_READ_TIMEOUT` (default 30s): while the server is reading a request body, the client must send some
///   of it this often; otherwise the answer is a 408 and the connection is closed. Time the server spends not
///   asking for the body (backpressure from a slow upstream) does not count.
/// - `HTTP_SEND_TIMEOUT` (default 60s, nginx's `send_timeout`): a client that takes none of an answer for this long
///   (its connection's send buffer full the whole time) is disconnected. Enforced by the gateway, which would
///   otherwise hold the upstream connection behind the answer; the Hummingbird servers do not enforce it.
/// - `HTTP_MAX_HEADER_BYTES` (default 32768): a request head larger than this is answered 431 and closed; any
///   other malformed request is answered 400 and closed, with the usual JSON error body.
public struct ServerLimits: Sendable, Equatable {
    public var idleTimeout: Duration = .seconds(30)
    public var bodyReadTimeout: Duration = .seconds(30)
    public var sendTimeout: Duration = .seconds(60)
    public var maxHeaderBytes = 32 * 1024

    public init() {}

    public init(environment: [String: String]) throws(ServiceKitError) {
        func duration(_ name: String) throws(ServiceKitError) -> Duration? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = ServiceRuntime.parseDuration(text), value > .zero else {
                throw ServiceKitError.configuration(name, "must be a positive duration such as 30s or 500ms")
            }
            return value
        }
        if let value = try duration("HTTP_IDLE_TIMEOUT") { idleTimeout = value }
        if let value = try duration("HTTP_BODY_READ_TIMEOUT") { bodyReadTimeout = value }
        if let value = try duration("HTTP_SEND_TIMEOUT") { sendTimeout = value }
        if let text = environment["HTTP_MAX_HEADER_BYTES"], !text.isEmpty {
            guard let value = Int(text), (1024...(1 << 20)).contains(value) else {
                throw ServiceKitError.configuration(
                    "HTTP_MAX_HEADER_BYTES", "must be a byte count from 1024 to 1048576")
            }
            maxHeaderBytes = value
        }
    }

    /// The HTTP/1 server with these limits.
    public var server: HTTPServerBuilder {
        let bodyReadTimeout = TimeAmount(bodyReadTimeout)
        return .http1(
            configuration: .init(
                additionalChannelHandlers: [SlowClientHandler(bodyReadTimeout: bodyReadTimeout)],
                idleTimeout: TimeAmount(idleTimeout),
                httpDecoderConfiguration: .init(
                    maxHeaderFieldSize: maxHeaderBytes, maxHeaderListSize: maxHeaderBytes, maxHeaderFieldCount: 256)))
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Sits behind the HTTP codec: answers a malformed request (400) or an oversized head (431) with a JSON error
/// instead of dropping the connection silently, and closes a connection whose client stops sending a body the
/// server is waiting for.
final class SlowClientHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let bodyReadTimeout: TimeAmount
    private var readingBody = false
    private var responseStarted = false
    private var closing = false
    private var timer: Scheduled<Void>?

    init(bodyReadTimeout: TimeAmount) {
        self.bodyReadTimeout = bodyReadTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        timer?.cancel()
        timer = nil
        switch unwrapInboundIn(data) {
        case .head: readingBody = true
        case .body: break
        case .end: readingBody = false
        }
        context.fireChannelRead(data)
    }

    /// The server asks for more: if it is waiting for a body, the client has `bodyReadTimeout` to send some.
    func read(context: ChannelHandlerContext) {
        if readingBody, timer == nil {
            let loop = context.eventLoop.assumeIsolated()
            timer = loop.scheduleTask(in: bodyReadTimeout) { [self] in
                timer = nil
                refuse(
                    context, status: .init(code: 408, reasonPhrase: "Request Timeout"), code: "request-timeout",
                    message: "the request body stopped arriving")
            }
        }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.kind != .informational: responseStarted = true
        case .end: responseStarted = false
        default: break
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        switch parserError {
        case .headerOverflow:
            refuse(
                context, status: .init(code: 431, reasonPhrase: "Request Header Fields Too Large"),
                code: "headers-too-large", message: "the request head is larger than this server accepts")
        default:
            refuse(context, status: .badRequest, code: "bad-request", message: "the request is not valid HTTP/1.1")
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    /// Answers with a JSON error when no response has begun, then closes the connection either way.
    private func refuse(
        _ context: ChannelHandlerContext, status: HTTPResponse.Status, code: String, message: String
    ) {
        guard !closing else { return }
        closing = true
        guard !responseStarted, context.channel.isActive else {
            context.close(promise: nil)
            return
        }
        let body = ByteBuffer(string: #"{"error":{"code":"\#(code)","message":"\#(message)"}}"#)
        var head = HTTPResponse(status: status)
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
