import CoreMetrics
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import OrchestrateContract
import ServiceKit
import Tracing

/// `/ready` while its check runs.
final class LocalRequest {
    let head: HTTPRequestHead
    let requestID: String
    let start: NIODeadline

    init(head: HTTPRequestHead, requestID: String, start: NIODeadline) {
        self.head = head
        self.requestID = requestID
        self.start = start
    }
}

/// One proxied request, from its head to the end of its answer.
final class Exchange {
    let head: HTTPRequestHead
    let route: GatewayProxy.PreparedRoute
    let requestID: String
    let path: String
    let query: String?
    let start = NIODeadline.now()
    let deadline: NIODeadline
    let idempotent: Bool
    var span: (any Span)?
    var caller: Caller?
    var outgoing: HTTPRequestHead?
    var ticket: CircuitBreaker.Ticket?
    var connection: UpstreamConnection?
    var reused = false
    var attempt = 0
    /// Parts of the body that arrived before the upstream connection did.
    var pending: [HTTPClientRequestPart] = []
    var bodyBytes = 0
    var clientEnded = false
    var needsFlush = false
    var responseStarted = false
    var upstreamEnded = false
    var upstreamKeepAlive = false
    /// The answer's framing needs the connection closed after it, whatever the client asked.
    var closesAnyway = false
    var finished = false
    var status = 0

    init(head: HTTPRequestHead, route: GatewayProxy.PreparedRoute, requestID: String, path: String, query: String?) {
        self.head = head
        self.route = route
        self.requestID = requestID
        self.path = path
        self.query = query
        deadline = start + .milliseconds(Int64(route.route.timeoutMilliseconds))
        idempotent =
            switch head.method {
            case .GET, .HEAD, .OPTIONS, .PUT, .DELETE: true
            default: false
            }
    }

    func received(body: ByteBuffer) {
        bodyBytes += body.readableBytes
    }

    /// Whether the request says a body follows (a length above zero, or chunked).
    var hasBody: Bool {
        if let length = head.headers.first(name: "content-length") { return length != "0" }
        return head.headers.contains(name: "transfer-encoding")
    }

    /// The connection closes after the answer when the client asked for that (`Connection: close`, or HTTP/1.0
    /// without keep-alive), and when the answer came before the client's body ended: the rest is not worth reading.
    var closesAfterAnswer: Bool { !head.isKeepAlive || (!clientEnded && hasBody) }
}

/// `traceparent` and `tracestate` in and out of NIO's headers.
struct HTTPHeadersExtractor: Extractor {
    func extract(key: String, from carrier: HTTPHeaders) -> String? {
        carrier.first(name: key)
    }
}

struct HTTPHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        carrier.replaceOrAdd(name: key, value: value)
    }
}
