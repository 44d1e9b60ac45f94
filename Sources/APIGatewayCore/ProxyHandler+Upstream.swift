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
    // MARK: The upstream's side

    /// The request head the upstream is sent: the rewritten path, the client's headers without hop-by-hop ones and
    /// without what only the gateway sets, then the gateway's own (`Host`, request id, trace context, service token,
    /// caller, forwarding).
    func upstreamHead(for exchange: Exchange) throws(ServiceError) -> HTTPRequestHead {
        let head = exchange.head
        let upstream = exchange.route.upstream
        let fromTrustedProxy = peer.map(proxy.trustedProxies.contains) ?? false
        let options = HeaderNames.connectionOptions(head.headers)
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 8)
        headers.add(name: "Host", value: upstream.authority)
        // The client's framing is not forwarded, so a chunked body is framed again explicitly: NIO frames a body only
        // for POST, PUT and PATCH by itself, and would send any other method's body bare, for the upstream to read as
        // the next request.
        if let coding = head.headers.first(name: "transfer-encoding") {
            guard head.headers[canonicalForm: "transfer-encoding"].map({ $0.lowercased() }) == ["chunked"] else {
                throw ServiceError(
                    .notImplemented, code: "unsupported-transfer-encoding",
                    message: "Transfer-Encoding \(coding) is not supported; only chunked is")
            }
            headers.add(name: "Transfer-Encoding", value: "chunked")
        }
        var seenUnique: UInt32 = 0  // bit n: the n-th of `uniqueRequestHeaders` was seen
        var hosts = 0
        for (name, value) in head.headers {
            if GatewayProxy.host.contains(name) { hosts += 1 }
            if GatewayProxy.droppedRequestHeaders.contains(name) { continue }
            // Two of these leave open which one counts (the gateway checks the first Authorization, the upstream
            // may read the last): refused, as nginx refuses them.
            if let position = GatewayProxy.uniqueRequestHeaders.position(of: name) {
                guard seenUnique & (1 << position) == 0 else {
                    throw ServiceError(
                        .badRequest, code: "duplicate-header", message: "the request has more than one \(name) header")
                }
                seenUnique |= 1 << position
            }
            if !options.isEmpty, options.contains(name.lowercased()) { continue }
            if !fromTrustedProxy, GatewayProxy.forwardingHeaders.contains(name) { continue }
            // Answered by the gateway (`admit`); the body follows the head without waiting.
            if name.utf8.count == 6, name.lowercased() == "expect", Self.isContinueExpectation(value) { continue }
            // A value the upstream would refuse is the client's mistake: refused here, before the breaker sees it.
            guard GatewayProxy.isSendable(value) else {
                throw ServiceError(
                    .badRequest, code: "bad-header", message: "the \(name) header holds control characters")
            }
            headers.add(name: name, value: value)
        }
        // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host (HTTP/1.0 at most one).
        guard hosts == 1 || (hosts == 0 && head.version == .http1_0) else {
            throw ServiceError(
                .badRequest, code: "bad-host",
                message: hosts == 0 ? "an HTTP/1.1 request needs a Host header" : "the request has more than one Host")
        }
        headers.add(name: "X-Request-ID", value: exchange.requestID)
        if let span = exchange.span {
            loop.tracer.inject(span.context, into: &headers, using: HTTPHeadersInjector())
        }
        if let internalToken = proxy.internalToken { headers.add(name: InternalToken.headerName, value: internalToken) }
        for (name, value) in exchange.caller?.headers ?? [] { headers.add(name: name, value: value) }
        if let peer, fromTrustedProxy {
            let previous = head.headers.first(name: "x-forwarded-for")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: previous.map { "\($0), \(peer)" } ?? peer)
        } else if let peer {
            // The client's own forwarding headers were left out above, so these are added, not searched for.
            let host = head.headers.first(name: "host")
            headers.add(name: "X-Forwarded-For", value: peer)
            headers.add(name: "X-Forwarded-Proto", value: "http")
            headers.add(name: "Forwarded", value: forwarded(peer: peer, host: host))
            if let host, GatewayProxy.isSendable(host) { headers.add(name: "X-Forwarded-Host", value: host) }
        }
        let target = RouteTable.rewrite(path: exchange.path, query: exchange.query, route: exchange.route.route)
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: target, headers: headers)
    }

    /// `Forwarded` for this connection's client: the peer is the connection's, and a client sends the same `Host`
    /// with every request, so the last value is kept.
    func forwarded(peer: String, host: String?) -> String {
        if let last = lastForwarded, last.host == host { return last.value }
        let value = GatewayProxy.forwarded(peer: peer, host: host)
        lastForwarded = (host, value)
        return value
    }

    // MARK: The upstream's side

    func connect(_ exchange: Exchange) {
        guard let context else { return }
        exchange.attempt += 1
        let upstream = exchange.route.upstream
        if let endpoint = proxy.resolver.cachedEndpoint(host: upstream.host, port: upstream.port) {
            connect(exchange, to: endpoint)
            return
        }
        let resolver = proxy.resolver
        context.eventLoop.makeFutureWithTask { try await resolver.endpoint(host: upstream.host, port: upstream.port) }
            .assumeIsolated().whenComplete { [self] result in
                guard self.exchange === exchange, !exchange.finished else { return }
                switch result {
                case .success(let endpoint): connect(exchange, to: endpoint)
                case .failure(let error): connectFailed(exchange, error: error)
                }
            }
    }

    func connect(_ exchange: Exchange, to endpoint: UpstreamResolver.Endpoint) {
        guard let context else { return }
        if let connection = loop.pool.take(endpoint) {
            attach(exchange, connection, reused: true)
            return
        }
        let remaining = exchange.deadline - .now()
        loop.pool.connect(to: endpoint, on: context.eventLoop, timeout: min(remaining, .seconds(10))) {
            [self] result in
            guard self.exchange === exchange, !exchange.finished else {
                if case .success(let connection) = result { loop.pool.release(connection) }
                return
            }
            switch result {
            case .success(let connection): attach(exchange, connection, reused: false)
            case .failure(let error): connectFailed(exchange, error: error)
            }
        }
    }

    func connectFailed(_ exchange: Exchange, error: any Error) {
        proxy.resolver.invalidate(host: exchange.route.upstream.host)
        if exchange.idempotent, exchange.attempt < 3 {
            proxy.logger.debug(
                "retrying after connect failure", metadata: ["upstream": "\(exchange.route.route.upstream.service)"])
            connect(exchange)
            return
        }
        upstreamFailed(exchange, error: error)
    }

    func attach(_ exchange: Exchange, _ connection: UpstreamConnection, reused: Bool) {
        exchange.connection = connection
        exchange.reused = reused
        connection.owner = self
        connection.send(.head(exchange.outgoing!))
        // Kept for a retry on a fresh connection when a kept-alive one turns out to be closed.
        for part in exchange.pending { connection.send(part) }
        if !exchange.idempotent || exchange.bodyBytes > 0 { exchange.pending = [] }
        connection.flush()
        releaseRead()
    }

    /// A part of the upstream's response.
    func upstreamRead(_ part: HTTPClientResponsePart, from connection: UpstreamConnection) {
        guard let exchange, exchange.connection === connection, let context else {
            connection.close()
            return
        }
        switch part {
        case .head(let head):
            guard head.status.code >= 200 else { return }  // 1xx: the gateway answers for itself
            exchange.status = Int(head.status.code)
            exchange.upstreamKeepAlive = head.isKeepAlive
            if let ticket = exchange.ticket {
                exchange.ticket = nil
                // A 503 is the upstream's own answer that one of *its* dependencies is down: the upstream works.
                let failed = head.status.code >= 500 && head.status.code != 503
                exchange.route.breaker.record(ticket, failed ? .failure : .success)
            }
            var headers = HTTPHeaders()
            headers.reserveCapacity(head.headers.count + 1)
            let options = HeaderNames.connectionOptions(head.headers)
            for (name, value) in head.headers {
                if GatewayProxy.droppedResponseHeaders.contains(name) { continue }
                if !options.isEmpty, options.contains(name.lowercased()) { continue }
                headers.add(name: name, value: value)
            }
            headers.add(name: "X-Request-ID", value: exchange.requestID)
            // An HTTP/1.0 client learns where a body without a length ends only by the connection closing.
            let version = exchange.head.version
            let delimitedByClose =
                version.major == 1 && version.minor == 0 && exchange.head.method != .HEAD
                && head.status.mayHaveResponseBody && !headers.contains(name: "content-length")
            exchange.closesAnyway = delimitedByClose
            Self.addConnection(to: &headers, version: version, close: delimitedByClose || exchange.closesAfterAnswer)
            exchange.responseStarted = true
            context.write(
                wrapOutboundOut(
                    .head(HTTPResponseHead(version: exchange.head.version, status: head.status, headers: headers))),
                promise: nil)
        case .body(let buffer):
            guard exchange.responseStarted else { return }
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            if !context.channel.isWritable {
                // Paused before the flush: a flush that drains the client's buffer reports it writable at once,
                // which resumes the reads. Paused after it, they would stay paused for good.
                connection.pauseReads()
                startSendTimer(context: context)
                context.flush()
            }
        case .end:
            guard exchange.responseStarted else { return }
            exchange.upstreamEnded = true
            let reusable = exchange.clientEnded && exchange.upstreamKeepAlive
            connection.owner = nil
            exchange.connection = nil
            if reusable { loop.pool.release(connection) } else { connection.close() }
            let close = exchange.closesAnyway || exchange.closesAfterAnswer
            complete(exchange)
            if close {
                // The client asked for it, or was answered before its body ended: the rest is not read.
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
            afterAnswer()
        }
    }

    func upstreamReadComplete(from connection: UpstreamConnection) {
        guard exchange?.connection === connection else { return }
        context?.flush()
    }

    func upstreamWritable(_ connection: UpstreamConnection) {
        guard exchange?.connection === connection else { return }
        releaseRead()
    }

    /// The upstream connection closed or failed before its response ended.
    func upstreamClosed(_ connection: UpstreamConnection, error: (any Error)?) {
        guard let exchange, exchange.connection === connection else { return }
        connection.owner = nil
        exchange.connection = nil
        if exchange.responseStarted {
            // Part of the answer is on its way: the client learns of the failure by the connection closing.
            complete(exchange)
            context?.close(promise: nil)
            return
        }
        // A kept-alive connection the upstream had already closed: nothing reached it, so the request goes again on a
        // new one, when everything it holds is still here.
        if exchange.reused, exchange.idempotent, exchange.bodyBytes == 0, exchange.attempt < 3 {
            exchange.reused = false
            connect(exchange)
            return
        }
        upstreamFailed(exchange, error: error ?? ChannelError.eof)
    }

    func upstreamFailed(_ exchange: Exchange, error: any Error) {
        let service = exchange.route.route.upstream.service
        if NIODeadline.now() >= exchange.deadline {
            timedOut(exchange)
            return
        }
        proxy.logger.warning("upstream failed", metadata: ["upstream": "\(service)", "error": "\(error)"])
        fail(
            exchange, ServiceError(.badGateway, code: "upstream-unreachable", message: "\(service) is unreachable"),
            outcome: .failure)
    }

    func timedOut(_ exchange: Exchange) {
        guard self.exchange === exchange, !exchange.finished, !exchange.responseStarted else { return }
        let route = exchange.route.route
        guard exchange.ticket != nil else {
            // Still being checked (its token, most likely): the upstream was never asked.
            fail(
                exchange,
                ServiceError(
                    .gatewayTimeout, code: "gateway-timeout",
                    message: "the request was not checked within \(route.timeoutMilliseconds) ms, the route's timeout"),
                outcome: nil)
            return
        }
        if !exchange.clientEnded, exchange.connection != nil {
            // The upstream was waiting for the client's body: the client's failure, not the upstream's.
            fail(
                exchange,
                ServiceError(
                    .requestTimeout, code: "request-body-incomplete",
                    message: "the request body did not arrive in full within \(route.timeoutMilliseconds) ms"),
                outcome: .ignored)
            return
        }
        fail(
            exchange,
            ServiceError(
                .gatewayTimeout, code: "upstream-timeout",
                message: "\(route.upstream.service) did not answer within \(route.timeoutMilliseconds) ms"),
            outcome: .failure)
    }

    // MARK: Ending a request

    /// Answers `exchange` with `error` (when no answer has begun), records `outcome` against the upstream's breaker
    /// (nil: the breaker was not asked), and drops the upstream connection.
    func fail(_ exchange: Exchange, _ error: any Error, outcome: CircuitBreaker.Outcome?) {
        guard !exchange.finished else { return }
        if let ticket = exchange.ticket {
            exchange.ticket = nil
            exchange.route.breaker.record(ticket, outcome ?? .ignored)
        }
        if let connection = exchange.connection {
            connection.owner = nil
            exchange.connection = nil
            connection.close()
        }
        guard !exchange.responseStarted else {
            complete(exchange)
            context?.close(promise: nil)
            return
        }
        let serviceError =
            error as? ServiceError
            ?? ServiceError(.internalServerError, code: "internal", message: "internal error")
        exchange.status = serviceError.status.code
        exchange.responseStarted = true
        let close = exchange.closesAfterAnswer
        complete(exchange)
        writeError(serviceError, requestID: exchange.requestID, version: exchange.head.version, close: close)
        afterAnswer()
    }

    /// The client went away: the upstream connection is dropped and the breaker told nothing.
    func abandon(_ exchange: Exchange, status: Int) {
        guard !exchange.finished else { return }
        if let ticket = exchange.ticket {
            exchange.ticket = nil
            exchange.route.breaker.record(ticket, .ignored)
        }
        if let connection = exchange.connection {
            connection.owner = nil
            exchange.connection = nil
            connection.close()
        }
        if !exchange.responseStarted { exchange.status = status }
        complete(exchange)
    }

    /// Metrics, the span and the log line of a finished request.
    func complete(_ exchange: Exchange) {
        exchange.finished = true
        if self.exchange === exchange { self.exchange = nil }
        readHeld = false
        let route = exchange.route.route.prefix
        loop.activeRequests(exchange.head.method).decrement()
        record(
            exchange.head, route: route, routeIndex: exchange.route.index, status: exchange.status,
            start: exchange.start, requestID: exchange.requestID, span: exchange.span)
    }

    func record(
        _ head: HTTPRequestHead, route: String, routeIndex: Int, status: Int, start: NIODeadline, requestID: String,
        span: (any Span)?
    ) {
        let elapsed = (NIODeadline.now() - start).nanoseconds
        let handles = loop.handles(routeIndex: routeIndex, route: route, method: head.method, status: status)
        handles.counter.increment()
        handles.timer.recordNanoseconds(elapsed)
        if let span {
            if span.isRecording {
                span.attributes["http.response.status_code"] = status
                if status >= 500 { span.setStatus(.init(code: .error)) }
            }
            span.end()
        }
        let level = proxy.requestLogLevel
        guard proxy.logger.logLevel <= level else { return }
        let log = {
            self.proxy.logger.log(
                level: level, "request",
                metadata: [
                    "request_id": .string(requestID), "hb.request.method": .string(head.method.rawValue),
                    "hb.request.path": .string(head.uri), "http.route": .string(route),
                    "http.response.status_code": .stringConvertible(status),
                    "duration_ms": .stringConvertible(Double(elapsed) / 1e6),
                ])
        }
        // In the span's context, the logging metadata provider adds its trace and span ids, as in the services' lines.
        if let span { ServiceContext.withValue(span.context, operation: log) } else { log() }
    }
}
