// The least a SwiftNIO proxy does, as a floor for `scripts/bench gateway`: what any proxy built on this stack pays per
// request before it has a single feature. Not a product, and not safe to expose: no limits, no timeouts, no
// backpressure on HTTP bodies, one upstream connection per client connection.
//
//     NIOFloor relay PORT UPSTREAM_PORT
//         bytes copied both ways between each client connection and an upstream connection of its own (no HTTP);
//     NIOFloor http PORT UPSTREAM_PORT PREFIX REWRITE
//         NIOHTTP1's server and client codecs, the request's target rewritten from PREFIX to REWRITE, each request
//         forwarded on the client connection's kept-alive upstream connection and its answer copied back.
//
// Both listen on 127.0.0.1 with as many event loops as the gateway has (one per core, as NIO's singleton group), and
// the upstream connection is made on the client connection's own event loop.
import NIOCore
import NIOHTTP1
import NIOPosix

let arguments = CommandLine.arguments
guard arguments.count >= 4, let port = Int(arguments[2]), let upstreamPort = Int(arguments[3]) else {
    fatalError("usage: NIOFloor relay PORT UPSTREAM_PORT | NIOFloor http PORT UPSTREAM_PORT PREFIX REWRITE")
}
let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
let upstream = try SocketAddress(ipAddress: "127.0.0.1", port: upstreamPort)

// MARK: relay

/// One side of a relay: what it reads, its partner writes, and it reads only while its partner can write.
final class Glue: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    var partner: Glue?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func pair() -> (Glue, Glue) {
        let first = Glue()
        let second = Glue()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        partner?.partnerBecameWritable()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.context?.write(data, promise: nil) }

    func channelReadComplete(context: ChannelHandlerContext) { partner?.context?.flush() }

    func channelInactive(context: ChannelHandlerContext) { partner?.context?.close(promise: nil) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed = event as? ChannelEvent { partner?.context?.close(mode: .output, promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        partner?.context?.close(promise: nil)
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partnerContext = partner?.context, partnerContext.channel.isActive, partnerContext.channel.isWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }

    private func partnerBecameWritable() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }
}

@Sendable func relay(_ channel: any Channel) -> EventLoopFuture<Void> {
    channel.eventLoop.makeCompletedFuture {
        let (client, server) = Glue.pair()
        try channel.pipeline.syncOperations.addHandler(client)
        let bound = NIOLoopBound(server, eventLoop: channel.eventLoop)
        ClientBootstrap(group: channel.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { upstreamChannel in
                upstreamChannel.eventLoop.makeCompletedFuture {
                    try upstreamChannel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(to: upstream)
            .whenFailure { _ in channel.close(promise: nil) }
    }
}

// MARK: http

/// The client's side: each request's parts go to the upstream connection, its target rewritten.
final class Front: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let prefix: String
    let rewrite: String
    var context: ChannelHandlerContext?
    private var upstreamChannel: (any Channel)?
    private var connecting = false
    private var pending: [HTTPClientRequestPart] = []

    init(prefix: String, rewrite: String) {
        self.prefix = prefix
        self.rewrite = rewrite
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelInactive(context: ChannelHandlerContext) {
        upstreamChannel?.close(promise: nil)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            if head.uri.hasPrefix(prefix) { head.uri = rewrite + head.uri.dropFirst(prefix.count) }
            send(.head(head))
        case .body(let buffer):
            send(.body(.byteBuffer(buffer)))
        case .end:
            send(.end(nil))
            upstreamChannel?.flush()
        }
    }

    private func send(_ part: HTTPClientRequestPart) {
        if let upstreamChannel {
            upstreamChannel.write(part, promise: nil)
            return
        }
        pending.append(part)
        guard !connecting, let context else { return }
        connecting = true
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(Back(front: bound.value))
                }
            }
            .connect(to: upstream)
            .whenComplete { result in
                let front = bound.value
                switch result {
                case .success(let channel):
                    front.upstreamChannel = channel
                    for part in front.pending { channel.write(part, promise: nil) }
                    front.pending = []
                    channel.flush()
                case .failure:
                    front.context?.close(promise: nil)
                }
            }
    }

    func answer(_ part: HTTPServerResponsePart, flush: Bool) {
        guard let context else { return }
        if flush {
            context.writeAndFlush(wrapOutboundOut(part), promise: nil)
        } else {
            context.write(wrapOutboundOut(part), promise: nil)
        }
    }
}

/// The upstream's side: each answer's parts are written to the client, flushed at its end.
final class Back: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let front: Front

    init(front: Front) { self.front = front }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): front.answer(.head(head), flush: false)
        case .body(let buffer): front.answer(.body(.byteBuffer(buffer)), flush: false)
        case .end(let trailers): front.answer(.end(trailers), flush: true)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        front.context?.close(promise: nil)
        context.fireChannelInactive()
    }
}

@Sendable func http(_ channel: any Channel, prefix: String, rewrite: String) -> EventLoopFuture<Void> {
    channel.eventLoop.makeCompletedFuture {
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(Front(prefix: prefix, rewrite: rewrite))
    }
}

// MARK: main

let mode = arguments[1]
let prefix = arguments.count > 4 ? arguments[4] : "/"
let rewrite = arguments.count > 5 ? arguments[5] : "/"
guard mode == "relay" || mode == "http" else { fatalError("unknown mode \(mode): relay or http") }
let server = try await ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelOption(.allowRemoteHalfClosure, value: mode == "relay")
    .childChannelInitializer { channel in
        mode == "relay" ? relay(channel) : http(channel, prefix: prefix, rewrite: rewrite)
    }
    .bind(host: "127.0.0.1", port: port)
    .get()
try await server.closeFuture.get()
