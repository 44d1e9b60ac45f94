import DNSWire
public import Logging
public import NIOCore
public import NIOPosix

/// The supervisor's DNS server on loopback, UDP and TCP on one port, answering from a `ServiceDirectory` with a TTL
/// of one second, so that `http://user-service:3001` resolves for native processes as it does in compose and
/// Kubernetes (`ORCHESTRATE_DNS=127.0.0.1:PORT`).
public final class DNSServer: Sendable {
    public let port: Int
    private let udp: any Channel
    private let tcp: any Channel

    /// Binds UDP and TCP on `host:port` (port 0: a free one, the same for both).
    public static func start(
        directory: ServiceDirectory, host: String = "127.0.0.1", port: Int = 0,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "dns"),
        tcpIdleTimeout: TimeAmount = .seconds(10)
    ) async throws -> DNSServer {
        // With port 0 the UDP port is chosen first and TCP must get the same: a few tries if it is taken.
        var lastError: (any Error)?
        for _ in 0..<(port == 0 ? 8 : 1) {
            let udp = try await DatagramBootstrap(group: group)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UDPHandler(directory: directory))
                    }
                }
                .bind(host: host, port: port).get()
            let chosen = udp.localAddress?.port ?? port
            do {
                let tcp = try await ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandlers(IdleTimeout.handlers(after: tcpIdleTimeout))
                            try channel.pipeline.syncOperations.addHandler(
                                ByteToMessageHandler(LengthPrefixedDecoder()))
                            try channel.pipeline.syncOperations.addHandler(TCPHandler(directory: directory))
                        }
                    }
                    .bind(host: host, port: chosen).get()
                logger.debug("DNS server listening", metadata: ["address": "\(host):\(chosen)"])
                return DNSServer(port: chosen, udp: udp, tcp: tcp)
            } catch {
                lastError = error
                try? await udp.close()
            }
        }
        throw lastError ?? ChannelError.alreadyClosed
    }

    private init(port: Int, udp: any Channel, tcp: any Channel) {
        self.port = port
        self.udp = udp
        self.tcp = tcp
    }

    public func stop() async {
        try? await udp.close()
        try? await tcp.close()
    }
}

private final class UDPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    let directory: ServiceDirectory

    init(directory: ServiceDirectory) {
        self.directory = directory
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = Self.unwrapInboundIn(data)
        guard let query = envelope.data.readBytes(length: envelope.data.readableBytes),
            let reply = directory.reply(to: query)
        else { return }
        var buffer = context.channel.allocator.buffer(capacity: reply.count)
        buffer.writeBytes(reply)
        context.writeAndFlush(
            Self.wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A datagram error (an ICMP unreachable for an earlier reply) must not close the server.
    }
}

/// DNS over TCP: each message behind a two-byte length.
private struct LengthPrefixedDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
            buffer.readableBytes >= 2 + Int(length)
        else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

private final class TCPHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let directory: ServiceDirectory

    init(directory: ServiceDirectory) {
        self.directory = directory
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var message = Self.unwrapInboundIn(data)
        guard let query = message.readBytes(length: message.readableBytes), let reply = directory.reply(to: query)
        else {
            context.close(promise: nil)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: reply.count + 2)
        buffer.writeInteger(UInt16(reply.count))
        buffer.writeBytes(reply)
        context.writeAndFlush(Self.wrapOutboundOut(buffer), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
