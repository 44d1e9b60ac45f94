import DNSWire
public import NIOCore
public import NIOPosix

/// Resolves service names through one DNS server over UDP: the supervisor's under `orchestrate up`
/// (`ORCHESTRATE_DNS`), so `http://user-service:3001` works unchanged there as in compose and Kubernetes.
public struct DNSResolver: Sendable {
    /// An SRV record: where an instance of a service listens.
    public struct ServiceRecord: Sendable, Equatable {
        public var priority: UInt16
        public var weight: UInt16
        public var port: UInt16
        public var target: String

        public init(priority: UInt16, weight: UInt16, port: UInt16, target: String) {
            self.priority = priority
            self.weight = weight
            self.port = port
            self.target = target
        }
    }

    private let server: SocketAddress
    private let timeout: TimeAmount
    private let group: any EventLoopGroup

    public init(
        host: String, port: Int, timeout: Duration = .seconds(1),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        server = try SocketAddress(ipAddress: host, port: port)
        self.timeout = .nanoseconds(
            Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        self.group = group
    }

    /// The IPv4 addresses of `name` (A records), in the server's order.
    public func addresses(of name: String) async throws -> [String] {
        try await query(name, .a).compactMap { record in
            if case .a(let address) = record { address } else { nil }
        }
    }

    /// The SRV records of `_service._proto.name`.
    public func services(of name: String, service: String = "http", transport: String = "tcp") async throws
        -> [ServiceRecord]
    {
        try await query("_\(service)._\(transport).\(name)", .srv).compactMap { record in
            if case .srv(let priority, let weight, let port, let target) = record {
                ServiceRecord(priority: priority, weight: weight, port: port, target: target)
            } else {
                nil
            }
        }
    }

    private func query(_ name: String, _ type: DNSMessage.RecordType) async throws -> [DNSMessage.Record] {
        let id = UInt16.random(in: 0...UInt16.max)
        let request = try DNSMessage.query(id: id, name: name, type: type)
        let eventLoop = group.next()
        let promise = eventLoop.makePromise(of: [UInt8].self)
        // Every exit completes the promise (NIO traps on a promise left unfulfilled); once the answer, the
        // timeout or an error has completed it, this does nothing.
        defer { promise.fail(ServiceKitError(.timeout, subject: name, "the query was abandoned")) }
        let channel = try await DatagramBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ResponseHandler(id: id, promise: promise))
                }
            }
            // Connected to the server: the kernel delivers only its datagrams, so an answer with a guessed id from
            // anywhere else never reaches the handler (a bound, unconnected socket took it from any source).
            .connect(to: server).get()
        let deadline = eventLoop.scheduleTask(in: timeout) {
            promise.fail(
                ServiceKitError(.timeout, subject: name, "no answer within \(timeout.nanoseconds / 1_000_000) ms"))
        }
        defer {
            deadline.cancel()
            channel.close(promise: nil)
        }
        var buffer = channel.allocator.buffer(capacity: request.count)
        buffer.writeBytes(request)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: server, data: buffer)).get()
        let bytes = try await promise.futureResult.get()
        let response: DNSMessage.Response
        do {
            response = try DNSMessage.parse(bytes)
        } catch {
            throw ServiceKitError(.malformedAnswer, subject: name, "the answer cannot be parsed", underlying: error)
        }
        switch response.responseCode {
        case 0 where !response.records.isEmpty: return response.records
        case 0, 3: throw ServiceKitError(.nameNotFound, subject: name, "no such name")
        default:
            throw ServiceKitError(.resolverFailure, subject: name, "response code \(response.responseCode)")
        }
    }
}

/// Completes the query's promise with the first datagram whose id matches; others are ignored.
private final class ResponseHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let id: UInt16
    private let promise: EventLoopPromise<[UInt8]>

    init(id: UInt16, promise: EventLoopPromise<[UInt8]>) {
        self.id = id
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = Self.unwrapInboundIn(data)
        guard let bytes = envelope.data.readBytes(length: envelope.data.readableBytes), bytes.count >= 2,
            UInt16(bytes[0]) << 8 | UInt16(bytes[1]) == id
        else { return }
        promise.succeed(bytes)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
    }
}
