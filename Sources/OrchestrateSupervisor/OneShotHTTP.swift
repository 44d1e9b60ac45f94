import NIOCore
import NIOHTTP1
import NIOPosix

/// One `GET` over a connection of its own, closed after the answer: what an HTTP probe and the dashboard's metrics
/// scrape ask of a replica.
enum OneShotHTTP {
    struct Answer {
        var status: HTTPResponseStatus
        /// The body, when it was asked for and was no longer than the limit; nil otherwise.
        var body: [UInt8]?
    }

    /// - Parameters:
    ///   - bodyLimit: nil: the answer is its head, and the body is not waited for. Otherwise the body is read, up to
    ///     this many bytes (a longer one is read to its end and answered as nil).
    /// - Throws: `SupervisorError(.probeTimeout)` when no answer came within `timeout`, and what connecting threw.
    static func get(
        host: String, port: Int, path: String, userAgent: String, timeout: TimeAmount, bodyLimit: Int?,
        group: any EventLoopGroup
    ) async throws -> Answer {
        let loop = group.next()
        let promise = loop.makePromise(of: Answer.self)
        let deadline = loop.scheduleTask(in: timeout) { promise.fail(SupervisorError(.probeTimeout, "timed out")) }
        defer { deadline.cancel() }
        do {
            let channel = try await ClientBootstrap(group: loop)
                .connectTimeout(timeout)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(
                            AnswerReader(promise: promise, bodyLimit: bodyLimit))
                    }
                }
                .connect(host: host, port: port).get()
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path.isEmpty ? "/" : path)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            head.headers.add(name: "User-Agent", value: userAgent)
            head.headers.add(name: "Connection", value: "close")
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            defer { channel.close(promise: nil) }
            return try await promise.futureResult.get()
        } catch {
            promise.fail(error)
            throw error
        }
    }
}

/// Completes the promise with the answer's head, or, when a body is asked for, at the answer's end. (A promise
/// already completed ignores what follows: the connection's end after the answer, say.)
private final class AnswerReader: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<OneShotHTTP.Answer>
    private let bodyLimit: Int?
    private var status = HTTPResponseStatus.ok
    private var body: [UInt8]? = []

    init(promise: EventLoopPromise<OneShotHTTP.Answer>, bodyLimit: Int?) {
        self.promise = promise
        self.bodyLimit = bodyLimit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            if bodyLimit == nil { promise.succeed(.init(status: head.status, body: nil)) }
        case .body(let buffer):
            guard let limit = bodyLimit, let count = body?.count else { return }
            if count + buffer.readableBytes > limit {
                body = nil
            } else {
                body?.append(contentsOf: buffer.readableBytesView)
            }
        case .end:
            promise.succeed(.init(status: status, body: body))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
    }
}
