import NIOCore
import NIOHTTP1

/// Answers the requests of one HTTP/1 connection in order, one at a time, and closes the connection gracefully when
/// the server quiesces: what NIO's `HTTPServerPipelineHandler` does, except that reads are held back only once a
/// pipelined request has actually arrived, not whenever a response is outstanding. A client that waits for each
/// answer (nearly all do) then costs no `epoll_ctl` to stop and restart reading per request (2 of the gateway's
/// 6.1 system calls per request, BENCHMARKS.md "gateway").
///
/// - A request that arrives while the previous one is answered is queued, with whatever the client sends after it,
///   and delivered once that answer's `.end` is written: on the next turn of the event loop, after the handler that
///   wrote it has finished with the request it answered.
/// - An answer may end before its request does (a refusal while the body still comes): the rest of the request is
///   delivered as it arrives, and the next request after it.
/// - On `ChannelShouldQuiesceEvent` queued requests are dropped, an idle connection is closed at once, and otherwise
///   the answer in progress carries `Connection: close` and the connection closes once both it and its request have
///   ended.
final class ResponseOrdering: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    enum State: Equatable {
        /// No request in progress.
        case idle
        /// A request is arriving, and its answer has not ended.
        case receiving
        /// A request has arrived, and its answer has not ended: what the client sends now is a pipelined request.
        case responding
        /// The answer has ended, and the rest of its request is still arriving.
        case draining
    }

    private enum Buffered {
        case part(NIOAny)
        case error(any Error)
        case inputClosed
    }

    private(set) var state = State.idle
    private var queue = CircularBuffer<Buffered>(initialCapacity: 0)
    private var readPending = false
    private var deliveryScheduled = false
    private var quiescing = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Whether what arrives now waits: behind queued parts, or because it is a request after one being answered.
    private var holding: Bool { !queue.isEmpty || state == .responding }

    /// Whether the connection takes no more requests: quiescing, with no request arriving.
    private var finishedReading: Bool { quiescing && (state == .idle || state == .responding) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if finishedReading { return }
        if holding {
            queue.append(.part(data))
            return
        }
        deliver(data, context: context)
    }

    private func deliver(_ data: NIOAny, context: ChannelHandlerContext) {
        switch unwrapInboundIn(data) {
        case .head:
            state = .receiving
        case .body:
            break
        case .end:
            state = state == .draining ? .idle : .responding
            if quiescing, state == .idle { context.close(promise: nil) }
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request after one being answered is refused after that answer, in its turn.
        if error is HTTPParserError, holding {
            queue.append(.error(error))
            return
        }
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ChannelShouldQuiesceEvent:
            quiescing = true
            queue.removeAll()
            if state == .idle { context.close(promise: nil) }
        case ChannelEvent.inputClosed where !queue.isEmpty:
            queue.append(.inputClosed)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func read(context: ChannelHandlerContext) {
        if !queue.isEmpty || finishedReading {
            readPending = true
            return
        }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where quiescing && head.status.code >= 200:
            if head.isKeepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .head, .body:
            context.write(data, promise: promise)
        case .end:
            // An answer without a request before it (a refusal of bytes that were not HTTP) leaves the state as is.
            state = state == .receiving || state == .draining ? .draining : .idle
            if quiescing, state == .idle {
                let loopBound = context.loopBound
                context.write(data).flatMap { loopBound.value.close() }.cascade(to: promise)
                return
            }
            context.write(data, promise: promise)
            if !queue.isEmpty, !deliveryScheduled {
                deliveryScheduled = true
                context.eventLoop.assumeIsolated().execute { [self] in
                    deliveryScheduled = false
                    deliverQueued()
                }
            }
        }
    }

    /// Delivers what was queued, up to and including the end of the next request.
    private func deliverQueued() {
        guard let context else { return }
        var delivered = false
        while state != .responding, let next = queue.popFirst() {
            switch next {
            case .part(let data):
                delivered = true
                deliver(data, context: context)
            case .error(let error):
                context.fireErrorCaught(error)
            case .inputClosed:
                context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            }
            if self.context == nil { return }
        }
        if delivered { context.fireChannelReadComplete() }
        if queue.isEmpty, readPending, !finishedReading {
            readPending = false
            context.read()
        }
    }
}
