import Foundation
public import NIOCore
public import NIOPosix

/// The control API of a running `orchestrate up`: one JSON request per connection on a Unix socket in
/// `.orchestrate/`, one JSON line back. `orchestrate status|restart|stop|start|down` are its clients.
public struct ControlRequest: Codable, Sendable, Equatable {
    public enum Command: String, Codable, Sendable {
        case status, restart, stop, start, down
    }

    public var command: Command
    public var service: String?

    public init(command: Command, service: String? = nil) {
        self.command = command
        self.service = service
    }
}

public struct ControlResponse: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    public var replicas: [ReplicaStatus]?
    public var message: String?

    public init(ok: Bool, error: String? = nil, replicas: [ReplicaStatus]? = nil, message: String? = nil) {
        self.ok = ok
        self.error = error
        self.replicas = replicas
        self.message = message
    }
}

public final class ControlServer: Sendable {
    public typealias Handler = @Sendable (ControlRequest) async -> ControlResponse
    private let channel: any Channel
    public let path: String

    /// Listens at `path` (a stale socket file from a dead supervisor is replaced; the caller has checked that no
    /// supervisor is running).
    public static func start(
        path: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        requestTimeout: TimeAmount = .seconds(10), handler: @escaping Handler
    ) async throws -> ControlServer {
        unlink(path)
        // Bound inside a fresh 0700 directory, made 0600, then renamed into place: nobody else can reach it for a
        // moment between bind and chmod. (Not by changing the umask: that is the whole process's, and a child
        // spawned meanwhile by another thread would inherit it and write files without their execute bit.)
        // Short names: `.cXXXXXX/s` is no longer than `control.sock`, so the 107-byte limit of a socket path is
        // not met any sooner.
        let staging =
            URL(fileURLWithPath: path).deletingLastPathComponent().path + "/.c"
            + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        guard mkdir(staging, 0o700) == 0 else {
            throw SupervisorError(.start, "cannot create \(staging): \(String(cString: strerror(errno)))")
        }
        defer { rmdir(staging) }
        let bound = staging + "/s"
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        RequestHandler(handler: handler, requestTimeout: requestTimeout))
                }
            }
            .bind(unixDomainSocketPath: bound).get()
        guard chmod(bound, 0o600) == 0, rename(bound, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            unlink(bound)
            throw SupervisorError(.start, "cannot put the control socket at \(path): \(reason)")
        }
        return ControlServer(channel: channel, path: path)
    }

    private init(channel: any Channel, path: String) {
        self.channel = channel
        self.path = path
    }

    public func stop() async {
        try? await channel.close()
        unlink(path)
    }
}

private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let handler: ControlServer.Handler
    // Touched on the channel's event loop only.
    private var received: [UInt8] = []
    private var deadline: Scheduled<Void>?
    /// How long a client has to send its one-line request; the answer may then take as long as the request needs
    /// (a restart waits for readiness).
    let requestTimeout: TimeAmount

    init(handler: @escaping ControlServer.Handler, requestTimeout: TimeAmount) {
        self.handler = handler
        self.requestTimeout = requestTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: requestTimeout) { channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        received += buffer.readBytes(length: buffer.readableBytes) ?? []
        guard let newline = received.firstIndex(of: UInt8(ascii: "\n")) else {
            if received.count > 64 * 1024 { context.close(promise: nil) }
            return
        }
        let line = Data(received[..<newline])
        received = []
        deadline?.cancel()
        let channel = context.channel
        let handler = self.handler
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        promise.completeWithTask {
            let response: ControlResponse
            do {
                response = await handler(try JSONDecoder().decode(ControlRequest.self, from: line))
            } catch {
                response = ControlResponse(ok: false, error: "not a control request: \(error)")
            }
            var bytes = (try? JSONEncoder().encode(response)) ?? Data("{\"ok\":false}".utf8)
            bytes.append(UInt8(ascii: "\n"))
            return ByteBuffer(bytes: bytes)
        }
        promise.futureResult.whenSuccess { reply in
            channel.writeAndFlush(reply).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// The client side, blocking and dependency-free: what the CLI's commands use.
public enum ControlClient {
    public static func request(_ request: ControlRequest, at path: String, timeoutSeconds: Int = 120) throws
        -> ControlResponse
    {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw SupervisorError(.unreachable, "cannot create a socket") }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SupervisorError(.unreachable, "the socket path \(path) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            throw SupervisorError(
                .unreachable, "no orchestrate up is running here (\(path): \(String(cString: strerror(errno))))")
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var message = try JSONEncoder().encode(request)
        message.append(UInt8(ascii: "\n"))
        let sent = message.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == message.count else { throw SupervisorError(.unreachable, "the supervisor closed the connection") }
        var reply: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else {
                throw SupervisorError(.unreachable, "no answer from the supervisor within \(timeoutSeconds) s")
            }
            if count == 0 { break }
            reply += chunk[0..<count]
            // One line is the whole answer: do not depend on the end of the connection.
            if reply.last == UInt8(ascii: "\n") { break }
        }
        do {
            return try JSONDecoder().decode(ControlResponse.self, from: Data(reply))
        } catch {
            throw SupervisorError(.unreachable, "the supervisor's answer is not understood", underlying: error)
        }
    }
}
