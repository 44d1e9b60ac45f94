import Foundation
import NIOCore
import NIOPosix
import OrchestrateContract
public import ServiceKit

/// One command on its way: its bytes and where its reply goes. Replies come back in the order commands were sent.
struct RESPRequest: Sendable {
    var bytes: ByteBuffer
    var reply: EventLoopPromise<RESPValue>
}

/// Matches replies to the commands in flight; a closed or failed connection fails every command still waiting.
final class RESPClientHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RESPRequest
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()
    private var closedReason: String?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let closedReason {
            request.reply.fail(EventsError(.redisConnection, closedReason))
            promise?.fail(EventsError(.redisConnection, closedReason))
            return
        }
        waiting.append(request.reply)
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let reply = waiting.popFirst() else {
            failAll(context: context, reason: "a reply no command asked for")
            return
        }
        reply.succeed(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(context: context, reason: "\(error)")
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(context: context, reason: "closed by the server")
        context.fireChannelInactive()
    }

    private func failAll(context: ChannelHandlerContext, reason: String) {
        if closedReason == nil { closedReason = reason }
        while let reply = waiting.popFirst() { reply.fail(EventsError(.redisConnection, reason)) }
        context.close(promise: nil)
    }
}

/// One TCP connection to Redis speaking RESP2. Commands may be pipelined: each is written at once and its reply
/// awaited in order.
final class RedisConnection: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func connect(host: String, port: Int, timeout: Duration) async throws -> RedisConnection {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(TimeAmount(timeout))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPDecoder()))
                        try channel.pipeline.syncOperations.addHandler(RESPClientHandler())
                    }
                }
                .connect(host: host, port: port).get()
            return RedisConnection(channel: channel)
        } catch {
            throw EventsError(.redisConnection, "cannot connect to \(host):\(port)", underlying: error)
        }
    }

    var isActive: Bool { channel.isActive }

    /// Sends the commands together and returns their replies in order (error replies included); a reply later than
    /// `timeout` closes the connection, which fails every command still waiting.
    func send(_ commands: [[String]], timeout: Duration) async throws -> [RESPValue] {
        var futures: [EventLoopFuture<RESPValue>] = []
        var buffer = channel.allocator.buffer(capacity: 256)
        for command in commands {
            buffer.clear()
            RESPValue.encode(command: command, into: &buffer)
            let promise = channel.eventLoop.makePromise(of: RESPValue.self)
            futures.append(promise.futureResult)
            channel.write(RESPRequest(bytes: buffer, reply: promise), promise: nil)
        }
        channel.flush()
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            channel.close(promise: nil)  // fails every reply still waiting
        }
        defer { timer.cancel() }
        var replies: [RESPValue] = []
        replies.reserveCapacity(futures.count)
        for future in futures { replies.append(try await future.get()) }
        return replies
    }

    func close() async {
        try? await channel.close()
    }
}

/// A Redis client for one user at a time (a relay, a consumer): reconnects on the next command after the connection
/// was lost, authenticates and selects the database from the URL.
///
/// `redis://[:PASSWORD@]HOST[:PORT][/DB]`, `rediss://` is refused (no TLS here).
public actor RedisClient {
    public let host: String
    public let port: Int
    private let password: String?
    private let database: Int?
    private var connection: RedisConnection?
    /// How long a command may wait for its reply beyond its own blocking time.
    private let replyTimeout: Duration

    /// - Parameter password: Used when the URL holds none (`BROKER_PASSWORD`).
    public init(url: String, password: String? = nil, replyTimeout: Duration = .seconds(5)) throws(ServiceKitError) {
        guard url.hasPrefix("redis://"), let components = URLComponents(string: url), let host = components.host,
            !host.isEmpty
        else {
            throw ServiceKitError.configuration(
                ServiceVariable.brokerURL, "must be redis://[:PASSWORD@]HOST[:PORT][/DB], not \"\(url.prefix(40))\"")
        }
        self.host = host
        port = components.port ?? 6379
        self.password = components.password.flatMap { $0.removingPercentEncoding ?? $0 } ?? password
        let path = components.path.drop { $0 == "/" }
        if path.isEmpty {
            database = nil
        } else if let number = Int(path), number >= 0 {
            database = number
        } else {
            throw ServiceKitError.configuration(
                ServiceVariable.brokerURL, "the database after / must be a number, not \"\(path)\"")
        }
        self.replyTimeout = replyTimeout
    }

    /// Where it connects, without the password.
    public nonisolated var address: String { "redis://\(host):\(port)" }

    /// One command; an error reply throws `EventsError` with code `redisReply`.
    @discardableResult
    public func command(_ arguments: String..., blocking: Duration = .zero) async throws -> RESPValue {
        try await pipeline([arguments], blocking: blocking)[0].get()
    }

    /// Commands sent together; each reply or its error reply, in order. A lost connection throws for all.
    public func pipeline(_ commands: [[String]], blocking: Duration = .zero) async throws -> [Result<
        RESPValue, EventsError
    >] {
        let connection = try await connected()
        do {
            return try await connection.send(commands, timeout: replyTimeout + blocking).map { reply in
                if case .error(let message) = reply { return .failure(EventsError(.redisReply, message)) }
                return .success(reply)
            }
        } catch {
            self.connection = nil
            await connection.close()
            throw error as? EventsError ?? EventsError(.redisConnection, "the command failed", underlying: error)
        }
    }

    public func close() async {
        await connection?.close()
        connection = nil
    }

    private func connected() async throws -> RedisConnection {
        if let connection, connection.isActive { return connection }
        connection = nil
        let fresh = try await RedisConnection.connect(host: host, port: port, timeout: .seconds(2))
        var setup: [[String]] = []
        if let password { setup.append(["AUTH", password]) }
        if let database { setup.append(["SELECT", String(database)]) }
        if !setup.isEmpty {
            let replies = try await fresh.send(setup, timeout: replyTimeout)
            for reply in replies {
                if case .error(let message) = reply {
                    await fresh.close()
                    throw EventsError(.redisReply, message)
                }
            }
        }
        connection = fresh
        return fresh
    }
}
