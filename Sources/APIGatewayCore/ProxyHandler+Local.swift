import CoreMetrics
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import OrchestrateContract
import ServiceKit
import Tracing

extension ProxyHandler {
    // MARK: Answers the gateway gives itself

    func startSpan(_ head: HTTPRequestHead, route: String, path: String) -> (any Span)? {
        var parent = ServiceContext.topLevel
        let tracer = loop.tracer
        tracer.extract(head.headers, into: &parent, using: HTTPHeadersExtractor())
        let span = tracer.startSpan(route, context: parent, ofKind: .server)
        guard span.isRecording else { return span }
        span.attributes["http.request.method"] = head.method.rawValue
        span.attributes["url.path"] = path
        span.attributes["http.route"] = route
        if let peer { span.attributes["net.sock.peer.addr"] = peer }
        return span
    }

    /// `/health`, `/ready` and a JSON 404 for everything no route matches. (`/metrics` is served on
    /// `METRICS_PORT` only, never here.)
    func answerLocally(_ head: HTTPRequestHead, path: String, requestID: String) {
        let start = NIODeadline.now()
        let isGet = head.method == .GET || head.method == .HEAD
        switch path {
        case "/health" where isGet:
            local(head, requestID: requestID, route: "/health", start: start, json: #"{"status":"ok"}"#)
        case "/ready" where isGet:
            guard let context else { return }
            let readiness = proxy.runtime.readiness
            let probe = LocalRequest(head: head, requestID: requestID, start: start)
            pendingLocal = probe
            context.eventLoop.makeFutureWithTask { await readiness.check() }
                .assumeIsolated().whenComplete { [self] result in
                    guard pendingLocal === probe, self.context != nil else { return }
                    pendingLocal = nil
                    if case .success(let reason?) = result {
                        let body = Self.json(["status": "not-ready", "reason": reason])
                        local(
                            head, requestID: requestID, route: "/ready", start: start, json: body,
                            status: .serviceUnavailable)
                    } else {
                        local(head, requestID: requestID, route: "/ready", start: start, json: #"{"status":"ready"}"#)
                    }
                }
        default:
            local(
                head, requestID: requestID, route: "NotFound", start: start,
                error: ServiceError(.notFound, code: "not-found", message: "no route for \(path)"))
        }
    }

    func local(
        _ head: HTTPRequestHead, requestID: String, route: String, start: NIODeadline, error: ServiceError,
        close: Bool = false
    ) {
        writeError(error, requestID: requestID, version: head.version, close: close || !head.isKeepAlive)
        record(
            head, route: route, routeIndex: -1, status: error.status.code, start: start, requestID: requestID,
            span: nil)
        afterAnswer()
    }

    func local(
        _ head: HTTPRequestHead, requestID: String, route: String, start: NIODeadline, json: String,
        status: HTTPResponseStatus = .ok
    ) {
        guard let context else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        headers.add(name: "Content-Length", value: String(json.utf8.count))
        headers.add(name: "X-Request-ID", value: requestID)
        let close = !head.isKeepAlive
        Self.addConnection(to: &headers, version: head.version, close: close)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: json)))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        record(
            head, route: route, routeIndex: -1, status: Int(status.code), start: start, requestID: requestID, span: nil)
        afterAnswer()
    }

    /// After an answer: the rest of the request, if any is still coming, is read and dropped (a request that
    /// declared a body was answered with `Connection: close`).
    func afterAnswer() {
        if requestInProgress { discarding = true } else { becomeIdle() }
    }

    func writeError(_ error: ServiceError, requestID: String?, version: HTTPVersion, close: Bool) {
        guard let context else { return }
        let body = error.jsonBody
        var headers = HTTPHeaders()
        for field in error.headers { headers.add(name: field.name.rawName, value: field.value) }
        headers.replaceOrAdd(name: "Content-Type", value: "application/json; charset=utf-8")
        headers.replaceOrAdd(name: "Content-Length", value: String(body.count))
        if let requestID { headers.replaceOrAdd(name: "X-Request-ID", value: requestID) }
        Self.addConnection(to: &headers, version: version, close: close)
        let status = HTTPResponseStatus(statusCode: error.status.code, reasonPhrase: error.status.reasonPhrase)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if close {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    // MARK: Helpers

    /// `Connection: close` on an answer after which the connection closes; `Connection: keep-alive` for an
    /// HTTP/1.0 client whose connection stays open (without it, that client waits for the close).
    static func addConnection(to headers: inout HTTPHeaders, version: HTTPVersion, close: Bool) {
        if close {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version.major == 1, version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
    }

    /// The client's `X-Request-ID` when it is short and printable, otherwise a new one.
    static func requestID(given: String?, loop: LoopState) -> String {
        if let given, !given.isEmpty, given.utf8.count <= 128, GatewayProxy.isSendable(given) { return given }
        return loop.nextRequestID()
    }

    static func json(_ object: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(object)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// A request target's path and query.
    static func split(_ uri: String) -> (path: Substring, query: String?) {
        guard let mark = uri.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (uri[...], nil) }
        return (uri[..<mark], String(uri[uri.index(after: mark)...]))
    }
}
