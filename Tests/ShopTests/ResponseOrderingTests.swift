import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import APIGatewayCore

/// `ResponseOrdering` on an `EmbeddedChannel`, between a counter of the reads it lets through (where the socket
/// would be) and a recorder of what it delivers (where `ProxyHandler` would be). The gateway's socket-level tests
/// cover the same behaviour end to end (`pipelinedRequestsAreAnsweredInOrder`,
/// `aStopAnswersTheRequestInFlightAndClosesIdleConnections`); these pin down when reads are held.
@Suite(.timeLimit(.minutes(1)))
struct ResponseOrderingTests {
    /// Counts the `read()` calls that reach the socket's side.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Never
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// Records what is delivered, in order.
    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var parts: [String] = []
        var readCompletes = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): parts.append("head \(head.uri)")
            case .body(let buffer): parts.append("body \(String(buffer: buffer))")
            case .end: parts.append("end")
            }
        }
        func channelReadComplete(context: ChannelHandlerContext) {
            readCompletes += 1
        }
    }

    let channel = EmbeddedChannel()
    let counter = ReadCounter()
    let recorder = Recorder()

    init() throws {
        try channel.pipeline.syncOperations.addHandlers([counter, ResponseOrdering(), recorder])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        #expect(channel.isActive)
    }

    func request(_ uri: String, body: String? = nil) throws {
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)))
        if let body { try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: body))) }
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
    }

    func answer(close: Bool = false) throws -> HTTPResponseHead {
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        guard case .head(let head) = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no answer head")
            return HTTPResponseHead(version: .http1_1, status: .internalServerError)
        }
        _ = try channel.readOutbound(as: HTTPServerResponsePart.self)
        return head
    }

    /// A client that waits for each answer: every read passes through, during an answer too, so the socket is never
    /// taken out of the poll set and put back.
    @Test func readsPassWhileAnAnswerIsOutstanding() throws {
        for index in 0..<3 {
            try request("/\(index)")
            let before = counter.reads
            channel.read()
            #expect(counter.reads == before + 1)
            _ = try answer()
        }
        #expect(recorder.parts == ["head /0", "end", "head /1", "end", "head /2", "end"])
    }

    /// A pipelined request waits, with reads held, until the answer before it ends, and is delivered on the loop's
    /// next turn, not inside that answer's write.
    @Test func aPipelinedRequestWaitsForTheAnswerBeforeIt() throws {
        try request("/first")
        try request("/second", body: "abc")
        #expect(recorder.parts == ["head /first", "end"])
        let before = counter.reads
        channel.read()
        #expect(counter.reads == before, "a read while a pipelined request is queued")
        _ = try answer()
        #expect(recorder.parts == ["head /first", "end"])
        channel.embeddedEventLoop.run()
        #expect(recorder.parts == ["head /first", "end", "head /second", "body abc", "end"])
        #expect(recorder.readCompletes >= 1)
        #expect(counter.reads == before + 1, "the held read is released once the queue is empty")
    }

    /// An answer that ends before its request (a refusal while the body still comes): the rest of the request and
    /// the next request are delivered as they arrive.
    @Test func anEarlyAnswerLetsTheRestOfItsRequestThrough() throws {
        try channel.writeInbound(
            HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/a")))
        _ = try answer()
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "late")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        try request("/b")
        #expect(recorder.parts == ["head /a", "body late", "end", "head /b", "end"])
    }

    /// Quiescing closes an idle connection at once.
    @Test func quiescingClosesAnIdleConnection() throws {
        try request("/a")
        _ = try answer()
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(!channel.isActive)
    }

    /// Quiescing during an answer: queued requests are dropped, the answer says `Connection: close`, and the
    /// connection closes after it.
    @Test func quiescingDuringAnAnswerClosesAfterIt() throws {
        try request("/a")
        try request("/queued")
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(channel.isActive)
        let head = try answer()
        #expect(head.headers["connection"] == ["close"])
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(recorder.parts == ["head /a", "end"])
    }

    /// Quiescing while a request is still arriving: it is delivered in full and answered, then the connection
    /// closes.
    @Test func quiescingWhileARequestArrivesWaitsForItsEnd() throws {
        try channel.writeInbound(
            HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/a")))
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        try channel.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "rest")))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        #expect(channel.isActive)
        let head = try answer()
        #expect(head.headers["connection"] == ["close"])
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(recorder.parts == ["head /a", "body rest", "end"])
    }

    /// A malformed request after one being answered is refused in its turn, after that answer.
    @Test func aParserErrorWaitsItsTurn() throws {
        final class ErrorRecorder: ChannelInboundHandler {
            typealias InboundIn = HTTPServerRequestPart
            var errors = 0
            func errorCaught(context: ChannelHandlerContext, error: any Error) { errors += 1 }
        }
        let errors = ErrorRecorder()
        try channel.pipeline.syncOperations.addHandler(errors)
        try request("/a")
        channel.pipeline.fireErrorCaught(HTTPParserError.invalidVersion)
        #expect(errors.errors == 0)
        _ = try answer()
        channel.embeddedEventLoop.run()
        #expect(errors.errors == 1)
    }
}
