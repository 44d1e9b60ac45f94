import CoreMetrics
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import OrchestrateContract
import ServiceKit
import Tracing

/// One client connection, on its event loop: routes each request, checks it (method, JWT, rate limit, body limit,
/// headers), and forwards it over a kept-alive upstream connection of the same loop (`UpstreamPool`), streaming both
/// bodies with backpressure. No task is started per request, except to verify a token the loop has not seen
/// (`VerifiedTokens`), to resolve an upstream name whose answer is not cached, and for `/ready`.
///
/// Requests on one connection are answered in order, one at a time (NIO's `HTTPServerPipelineHandler` in front holds
/// pipelined ones back). The connection is closed after `HTTP_IDLE_TIMEOUT` without a request, when the client stops
/// sending a body for `HTTP_BODY_READ_TIMEOUT`, and after an answer given before the client finished its body.
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let proxy: GatewayProxy
    private let loop: LoopState
    private var context: ChannelHandlerContext?
    private var exchange: Exchange?
    /// The rest of a request that was answered before its body ended is read and dropped.
    private var discarding = false
    /// A read the pipeline asked for while the request's body has nowhere to go yet.
    private var readHeld = false
    private var closing = false
    /// A request head has arrived and its end has not.
    private var requestInProgress = false
    private var peer: String?
    /// When the connection last became idle (no request in progress); nil while one is.
    private var idleSince: NIODeadline?
    private var idleTimer: Scheduled<Void>?
    private var bodyTimer: Scheduled<Void>?

    init(proxy: GatewayProxy, loop: LoopState) {
        self.proxy = proxy
        self.loop = loop
    }

    // MARK: The client's side

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        peer = context.channel.remoteAddress?.ipAddress
        becomeIdle()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        bodyTimer?.cancel()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        bodyTimer?.cancel()
        if let exchange {
            // The client went away: nothing it did counts against the upstream.
            abandon(exchange, status: 499)
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bodyTimer?.cancel()
        bodyTimer = nil
        switch unwrapInboundIn(data) {
        case .head(let head):
            idleSince = nil
            discarding = false
            requestInProgress = true
            begin(head, context: context)
        case .body(let buffer):
            guard !discarding, let exchange else { return }
            exchange.received(body: buffer)
            guard exchange.bodyBytes <= exchange.route.route.maxBodyBytes else {
                let route = exchange.route.route
                fail(
                    exchange,
                    ServiceError(
                        .contentTooLarge, code: "payload-too-large",
                        message: "the body is larger than \(route.maxBodyBytes) bytes, the limit of \(route.prefix)"),
                    outcome: .ignored)
                return
            }
            if let connection = exchange.connection {
                connection.send(.body(.byteBuffer(buffer)))
                exchange.needsFlush = true
            } else {
                exchange.pending.append(.body(.byteBuffer(buffer)))
            }
        case .end:
            requestInProgress = false
            if discarding {
                discarding = false
                if exchange == nil, pendingLocal == nil { becomeIdle() }
                return
            }
            guard let exchange else { return }
            exchange.clientEnded = true
            if let connection = exchange.connection {
                connection.send(.end(nil))
                exchange.needsFlush = true
            } else {
                exchange.pending.append(.end(nil))
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let exchange, exchange.needsFlush, let connection = exchange.connection {
            exchange.needsFlush = false
            connection.flush()
        }
        context.fireChannelReadComplete()
    }

    /// The pipeline asks for more from the client: held while a request body has nowhere to go (the upstream
    /// connection is not there yet, or not writable), so the client's bytes wait in its socket, not here.
    func read(context: ChannelHandlerContext) {
        if requestInProgress {
            if let exchange, !discarding, exchange.connection?.isWritable != true {
                readHeld = true
                return
            }
            if bodyTimer == nil {
                let timeout = TimeAmount(proxy.limits.bodyReadTimeout)
                bodyTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                    bodyTimer = nil
                    guard requestInProgress else { return }
                    if let exchange = self.exchange, !exchange.responseStarted {
                        fail(
                            exchange,
                            ServiceError(
                                .requestTimeout, code: "request-timeout",
                                message: "the request body stopped arriving"),
                            outcome: .ignored)
                    }
                    self.context?.close(promise: nil)
                }
            }
        }
        context.read()
    }

    private func releaseRead() {
        guard readHeld, let context else { return }
        readHeld = false
        read(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let connection = exchange?.connection {
            connection.resumeReads()
        }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError {
            let refusal =
                if case .headerOverflow = parserError {
                    ServiceError(
                        .init(code: 431, reasonPhrase: "Request Header Fields Too Large"), code: "headers-too-large",
                        message: "the request head is larger than this server accepts")
                } else {
                    ServiceError(.badRequest, code: "bad-request", message: "the request is not valid HTTP/1.1")
                }
            if let exchange {
                fail(exchange, refusal, outcome: .ignored)
            } else if !closing {
                closing = true
                writeError(refusal, requestID: nil, version: .http1_1, close: true)
            }
            return
        }
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Idle connections

    private func becomeIdle() {
        guard let context else { return }
        idleSince = .now()
        guard idleTimer == nil else { return }
        scheduleIdleCheck(in: TimeAmount(proxy.limits.idleTimeout), context: context)
    }

    /// One timer per connection, moved on when it fires early, rather than one per request.
    private func scheduleIdleCheck(in delay: TimeAmount, context: ChannelHandlerContext) {
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            idleTimer = nil
            let timeout = TimeAmount(proxy.limits.idleTimeout)
            guard let since = idleSince else {
                scheduleIdleCheck(in: timeout, context: context)
                return
            }
            let due = since + timeout
            if NIODeadline.now() >= due {
                context.close(promise: nil)
            } else {
                scheduleIdleCheck(in: due - .now(), context: context)
            }
        }
    }

    // MARK: A request

    private func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let requestID = Self.requestID(given: head.headers.first(name: "x-request-id"), loop: loop)
        let (rawPath, query) = Self.split(head.uri)
        let path: String
        switch RequestPath.normalize(rawPath) {
        case .success(let normalized):
            path = normalized
        case .failure(let refusal):
            local(
                head, requestID: requestID, route: "NotFound", start: .now(),
                error: ServiceError(.badRequest, code: "bad-path", message: refusal.message))
            return
        }
        guard let prepared = proxy.route(for: path) else {
            answerLocally(head, path: path, requestID: requestID)
            return
        }
        let exchange = Exchange(head: head, route: prepared, requestID: requestID, path: path, query: query)
        self.exchange = exchange
        exchange.span = startSpan(head, route: prepared.route.prefix, path: path)
        loop.activeRequests(head.method).increment()
        if !prepared.route.methods.isEmpty, !prepared.route.methods.contains(head.method.rawValue) {
            var error = ServiceError(
                .methodNotAllowed, code: "method-not-allowed",
                message: "\(prepared.route.prefix) accepts \(prepared.allowed)")
            error.headers[.allow] = prepared.allowed
            fail(exchange, error, outcome: nil)
            return
        }
        guard prepared.route.requiresJWT else {
            admit(exchange)
            return
        }
        let authorization = head.headers.first(name: "authorization")
        if let caller = proxy.tokens.caller(for: authorization) {
            exchange.caller = caller
            admit(exchange)
            return
        }
        let proxy = self.proxy
        context.eventLoop.makeFutureWithTask { try await proxy.authenticate(authorization) }
            .assumeIsolated().whenComplete { [self] result in
                guard self.exchange === exchange, !exchange.finished else { return }
                switch result {
                case .success(let verified):
                    if let authorization { proxy.tokens.store(authorization, verified.caller, until: verified.expires) }
                    exchange.caller = verified.caller
                    admit(exchange)
                case .failure(let error):
                    fail(
                        exchange,
                        error as? ServiceError
                            ?? ServiceError(.unauthorized, code: "unauthorized", message: "the token is invalid"),
                        outcome: nil)
                }
            }
    }

    /// The checks after authentication, then the upstream.
    private func admit(_ exchange: Exchange) {
        let route = exchange.route.route
        let head = exchange.head
        if let limit = route.rateLimit {
            let client =
                exchange.caller.map { "sub:" + $0.subject }
                ?? "ip:"
                + RateLimiter.clientKey(
                    proxy.clientAddress(peer: peer, forwardedFor: head.headers.first(name: "x-forwarded-for")))
            let decision = proxy.limiter.take(
                key: route.prefix + "|" + client, overflowKey: route.prefix, rps: limit.rps, burst: limit.burst)
            guard decision.allowed else {
                var error = ServiceError(
                    .tooManyRequests, code: "rate-limited",
                    message: "too many requests to \(route.prefix): \(limit.rps) a second, bursts of \(limit.burst)")
                error.headers[.retryAfter] = String(decision.retryAfterSeconds)
                fail(exchange, error, outcome: nil)
                return
            }
        }
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > route.maxBodyBytes {
            fail(
                exchange,
                ServiceError(
                    .contentTooLarge, code: "payload-too-large",
                    message: "the body is \(length) bytes; \(route.prefix) accepts at most \(route.maxBodyBytes)"),
                outcome: nil)
            return
        }
        let outgoing: HTTPRequestHead
        do {
            outgoing = try upstreamHead(for: exchange)
        } catch {
            fail(exchange, error, outcome: nil)
            return
        }
        exchange.outgoing = outgoing
        do {
            exchange.ticket = try exchange.route.breaker.admit()
        } catch {
            fail(
                exchange,
                ServiceError.unavailable(
                    "\(route.upstream.service) is failing; its circuit breaker is open",
                    retryAfterSeconds: error.retryAfterSeconds, code: "circuit-open"),
                outcome: nil)
            return
        }
        if let context {
            exchange.timer = context.eventLoop.assumeIsolated().scheduleTask(
                in: .milliseconds(Int64(route.timeoutMilliseconds))
            ) { [self] in
                timedOut(exchange)
            }
        }
        connect(exchange)
    }

    /// The request head the upstream is sent: the rewritten path, the client's headers without hop-by-hop ones and
    /// without what only the gateway sets, then the gateway's own (`Host`, request id, trace context, service token,
    /// caller, forwarding).
    private func upstreamHead(for exchange: Exchange) throws(ServiceError) -> HTTPRequestHead {
        let head = exchange.head
        let upstream = exchange.route.upstream
        let fromTrustedProxy = peer.map(proxy.trustedProxies.contains) ?? false
        var options: Set<String> = []
        if head.headers.contains(name: "connection") {
            options = GatewayProxy.connectionOptions(head.headers[canonicalForm: "connection"].map(String.init))
        }
        var headers = HTTPHeaders()
        headers.reserveCapacity(head.headers.count + 8)
        headers.add(name: "Host", value: upstream.authority)
        for (name, value) in head.headers {
            let lowercased = name.lowercased()
            if GatewayProxy.droppedRequestHeaders.contains(lowercased) || options.contains(lowercased) { continue }
            if !fromTrustedProxy, GatewayProxy.forwardingHeaders.contains(lowercased) { continue }
            if lowercased == "x-request-id" { continue }
            // A value the upstream would refuse is the client's mistake: refused here, before the breaker sees it.
            guard GatewayProxy.isSendable(value) else {
                throw ServiceError(
                    .badRequest, code: "bad-header", message: "the \(name) header holds control characters")
            }
            headers.add(name: name, value: value)
        }
        headers.add(name: "X-Request-ID", value: exchange.requestID)
        if let span = exchange.span {
            InstrumentationSystem.instrument.inject(span.context, into: &headers, using: HTTPHeadersInjector())
        }
        if let internalToken = proxy.internalToken { headers.add(name: InternalToken.headerName, value: internalToken) }
        for (name, value) in exchange.caller?.headers ?? [] { headers.add(name: name, value: value) }
        if let peer {
            let previous = fromTrustedProxy ? head.headers.first(name: "x-forwarded-for") : nil
            headers.replaceOrAdd(name: "X-Forwarded-For", value: previous.map { "\($0), \(peer)" } ?? peer)
            if !fromTrustedProxy {
                let host = head.headers.first(name: "host")
                headers.replaceOrAdd(name: "X-Forwarded-Proto", value: "http")
                headers.replaceOrAdd(name: "Forwarded", value: GatewayProxy.forwarded(peer: peer, host: host))
                if let host, GatewayProxy.isSendable(host) {
                    headers.replaceOrAdd(name: "X-Forwarded-Host", value: host)
                }
            }
        }
        let target = RouteTable.rewrite(path: exchange.path, query: exchange.query, route: exchange.route.route)
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: target, headers: headers)
    }

    // MARK: The upstream's side

    private func connect(_ exchange: Exchange) {
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

    private func connect(_ exchange: Exchange, to endpoint: UpstreamResolver.Endpoint) {
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

    private func connectFailed(_ exchange: Exchange, error: any Error) {
        proxy.resolver.invalidate(host: exchange.route.upstream.host)
        if exchange.idempotent, exchange.attempt < 3 {
            proxy.logger.debug(
                "retrying after connect failure", metadata: ["upstream": "\(exchange.route.route.upstream.service)"])
            connect(exchange)
            return
        }
        upstreamFailed(exchange, error: error)
    }

    private func attach(_ exchange: Exchange, _ connection: UpstreamConnection, reused: Bool) {
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
            exchange.timer?.cancel()
            exchange.timer = nil
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
            var options: Set<String> = []
            if head.headers.contains(name: "connection") {
                options = GatewayProxy.connectionOptions(head.headers[canonicalForm: "connection"].map(String.init))
            }
            for (name, value) in head.headers {
                let lowercased = name.lowercased()
                if GatewayProxy.droppedResponseHeaders.contains(lowercased) || options.contains(lowercased) { continue }
                if lowercased == "x-request-id" { continue }
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
                context.flush()
                connection.pauseReads()
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
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if close {
                // The client asked for it, or was answered before its body ended: the rest is not read.
                written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
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

    private func upstreamFailed(_ exchange: Exchange, error: any Error) {
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

    private func timedOut(_ exchange: Exchange) {
        guard self.exchange === exchange, !exchange.finished, !exchange.responseStarted else { return }
        let route = exchange.route.route
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
    private func fail(_ exchange: Exchange, _ error: any Error, outcome: CircuitBreaker.Outcome?) {
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
    private func abandon(_ exchange: Exchange, status: Int) {
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
    private func complete(_ exchange: Exchange) {
        exchange.finished = true
        exchange.timer?.cancel()
        exchange.timer = nil
        if self.exchange === exchange { self.exchange = nil }
        readHeld = false
        let route = exchange.route.route.prefix
        loop.activeRequests(exchange.head.method).decrement()
        record(
            exchange.head, route: route, routeIndex: exchange.route.index, status: exchange.status,
            start: exchange.start, requestID: exchange.requestID, span: exchange.span)
    }

    private func record(
        _ head: HTTPRequestHead, route: String, routeIndex: Int, status: Int, start: NIODeadline, requestID: String,
        span: (any Span)?
    ) {
        let elapsed = (NIODeadline.now() - start).nanoseconds
        let handles = loop.handles(routeIndex: routeIndex, route: route, method: head.method, status: status)
        handles.counter.increment()
        handles.timer.recordNanoseconds(elapsed)
        if let span {
            span.attributes["http.response.status_code"] = status
            if status >= 500 { span.setStatus(.init(code: .error)) }
            span.end()
        }
        let level = proxy.requestLogLevel
        if proxy.logger.logLevel <= level {
            proxy.logger.log(
                level: level, "request",
                metadata: [
                    "request_id": .string(requestID), "hb.request.method": .string(head.method.rawValue),
                    "hb.request.path": .string(head.uri), "http.route": .string(route),
                    "http.response.status_code": .stringConvertible(status),
                    "duration_ms": .stringConvertible(Double(elapsed) / 1e6),
                ])
        }
    }

    private func startSpan(_ head: HTTPRequestHead, route: String, path: String) -> (any Span)? {
        var parent = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(head.headers, into: &parent, using: HTTPHeadersExtractor())
        let span = InstrumentationSystem.tracer.startSpan(route, context: parent, ofKind: .server)
        guard span.isRecording else { return span }
        span.attributes["http.request.method"] = head.method.rawValue
        span.attributes["url.path"] = path
        span.attributes["http.route"] = route
        if let peer { span.attributes["net.sock.peer.addr"] = peer }
        return span
    }

    /// `/health`, `/ready` and a JSON 404 for everything no route matches. (`/metrics` is served on
    /// `METRICS_PORT` only, never here.)
    private func answerLocally(_ head: HTTPRequestHead, path: String, requestID: String) {
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

    private var pendingLocal: LocalRequest?

    private func local(
        _ head: HTTPRequestHead, requestID: String, route: String, start: NIODeadline, error: ServiceError
    ) {
        writeError(error, requestID: requestID, version: head.version, close: !head.isKeepAlive)
        record(
            head, route: route, routeIndex: -1, status: error.status.code, start: start, requestID: requestID,
            span: nil)
        afterAnswer()
    }

    private func local(
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
    private func afterAnswer() {
        if requestInProgress { discarding = true } else { becomeIdle() }
    }

    private func writeError(_ error: ServiceError, requestID: String?, version: HTTPVersion, close: Bool) {
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
        guard let mark = uri.firstIndex(of: "?") else { return (uri[...], nil) }
        return (uri[..<mark], String(uri[uri.index(after: mark)...]))
    }
}

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
    var timer: Scheduled<Void>?
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
        idempotent = [.GET, .HEAD, .OPTIONS, .PUT, .DELETE].contains(head.method)
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
