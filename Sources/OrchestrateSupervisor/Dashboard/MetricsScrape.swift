import NIOCore
import NIOHTTP1
import NIOPosix

/// `GET /metrics` of one replica, for the dashboard: the body as text, or nil when the replica does not answer 200
/// within the timeout or answers more than `limit` bytes.
enum MetricsScrape {
    static func fetch(
        host: String, port: Int, path: String = "/metrics", timeout: TimeAmount = .seconds(2), limit: Int = 4 << 20,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async -> String? {
        let loop = group.next()
        let promise = loop.makePromise(of: String?.self)
        let deadline = loop.scheduleTask(in: timeout) { promise.succeed(nil) }
        defer { deadline.cancel() }
        do {
            let channel = try await ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(BodyCollector(promise: promise, limit: limit))
                    }
                }
                .connect(host: host, port: port).get()
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            head.headers.add(name: "User-Agent", value: "orchestrate-dashboard")
            head.headers.add(name: "Connection", value: "close")
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            defer { channel.close(promise: nil) }
            return try await promise.futureResult.get()
        } catch {
            promise.succeed(nil)
            return nil
        }
    }
}

private final class BodyCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<String?>
    let limit: Int
    private var ok = false
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<String?>, limit: Int) {
        self.promise = promise
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            ok = head.status == .ok
        case .body(var buffer):
            if body.count + buffer.readableBytes > limit {
                ok = false
            } else if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                body += bytes
            }
        case .end:
            promise.succeed(ok ? String(decoding: body, as: UTF8.self) : nil)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.succeed(nil)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(nil)
    }
}
