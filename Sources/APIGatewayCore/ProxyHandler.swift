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
/// Requests on one connection are answered in order, one at a time (`ResponseOrdering` in front holds pipelined ones
/// back). The connection is closed after `HTTP_IDLE_TIMEOUT` without a request, when the client stops
/// sending a body for `HTTP_BODY_READ_TIMEOUT`, when it takes none of an answer for `HTTP_SEND_TIMEOUT`, and after
/// an answer given before the client finished its body.
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let proxy: GatewayProxy
    let loop: LoopState
    var context: ChannelHandlerContext?
    var exchange: Exchange?
    /// The rest of a request that was answered before its body ended is read and dropped.
    var discarding = false
    /// A read the pipeline asked for while the request's body has nowhere to go yet.
    var readHeld = false
    var closing = false
    /// A request head has arrived and its end has not.
    var requestInProgress = false
    var peer: String?
    /// The `Forwarded` value of the connection's last request, and the `Host` it was made for.
    var lastForwarded: (host: String?, value: String)?
    /// When the connection last became idle (no request in progress); nil while one is.
    var idleSince: NIODeadline?
    var idleTimer: Scheduled<Void>?
    var bodyTimer: Scheduled<Void>?
    /// Runs while the client takes none of an answer (its channel unwritable): `HTTP_SEND_TIMEOUT`.
    var sendTimer: Scheduled<Void>?
    /// The route timeout's timer (`watchDeadline`), and when it fires.
    var deadlineTimer: (task: Scheduled<Void>, due: NIODeadline)?
    /// `/ready` while its check runs.
    var pendingLocal: LocalRequest?

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
        sendTimer?.cancel()
        deadlineTimer?.task.cancel()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        bodyTimer?.cancel()
        sendTimer?.cancel()
        deadlineTimer?.task.cancel()
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

    func releaseRead() {
        guard readHeld, let context else { return }
        readHeld = false
        read(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendTimer?.cancel()
            sendTimer = nil
            exchange?.connection?.resumeReads()
        }
        context.fireChannelWritabilityChanged()
    }

    /// The client stopped taking the answer: it has `HTTP_SEND_TIMEOUT` to take some more (its channel writable
    /// again), or the connection is closed, and the upstream connection with it. A client that never reads cannot
    /// hold an upstream connection for good.
    func startSendTimer(context: ChannelHandlerContext) {
        guard sendTimer == nil else { return }
        sendTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(proxy.limits.sendTimeout)) {
            [self] in
            sendTimer = nil
            context.close(promise: nil)
        }
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

    func becomeIdle() {
        guard let context else { return }
        idleSince = .now()
        guard idleTimer == nil else { return }
        scheduleIdleCheck(in: TimeAmount(proxy.limits.idleTimeout), context: context)
    }

    /// One timer per connection, moved on when it fires early, rather than one per request.
    func scheduleIdleCheck(in delay: TimeAmount, context: ChannelHandlerContext) {
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

    func begin(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let requestID = Self.requestID(given: head.headers.first(name: "x-request-id"), loop: loop)
        if head.method == .CONNECT || head.method == .TRACE {
            // Refused as nginx refuses them. A CONNECT is no request for a route: the codec takes what follows it for
            // a tunnel's bytes, and its answer's body was left unread on the kept-alive upstream connection, where
            // it broke the next client's request (502, counted against the breaker). A TRACE would echo the
            // headers the gateway adds upstream, the internal token among them.
            local(
                head, requestID: requestID, route: "NotFound", start: .now(),
                error: ServiceError(
                    .methodNotAllowed, code: "method-not-allowed",
                    message: "the gateway does not forward \(head.method.rawValue) requests"),
                close: head.method == .CONNECT)
            return
        }
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
        // The route's deadline counts from here, so a token check that outlasts it is answered on time too (and,
        // with no ticket taken yet, never counts against the upstream's breaker: `timedOut`).
        watchDeadline(of: exchange)
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
    func admit(_ exchange: Exchange) {
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
        // The gateway answers `Expect: 100-continue` itself, once the request is admitted (a refused one gets its
        // final status instead, and the client need not send the body): the upstream's `100` never reaches the
        // client, and without this a client waits for its own timeout (curl: 1 s) before it sends the body.
        if head.version.major == 1, head.version.minor >= 1, Self.expectsContinue(head.headers), let context {
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        connect(exchange)
    }

    /// Whether a request asks for `100 Continue` before it sends its body.
    static func expectsContinue(_ headers: HTTPHeaders) -> Bool {
        headers.first(name: "expect").map(isContinueExpectation) ?? false
    }

    /// Whether an `Expect` value is `100-continue`, the one expectation the gateway answers itself.
    static func isContinueExpectation(_ value: String) -> Bool {
        value.lowercased() == "100-continue"
    }

    /// Times `exchange` out at its route's deadline, with one timer per connection that moves on to the request in
    /// progress when it fires, rather than one scheduled and cancelled per request (1.2 % and 1.8 % of the
    /// gateway's CPU, BENCHMARKS.md "gateway").
    func watchDeadline(of exchange: Exchange) {
        guard let context else { return }
        if let timer = deadlineTimer {
            if timer.due <= exchange.deadline { return }
            timer.task.cancel()
        }
        let due = exchange.deadline
        let task = context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [self] in
            deadlineTimer = nil
            guard let current = self.exchange, !current.finished, !current.responseStarted else { return }
            if NIODeadline.now() >= current.deadline {
                timedOut(current)
            } else {
                watchDeadline(of: current)
            }
        }
        deadlineTimer = (task, due)
    }
}
