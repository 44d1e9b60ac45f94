import NIOCore
import NIOEmbedded
import NIOHTTP1

/// What a forwarded connection has carried, read as HTTP/1 for as long as it parses as HTTP/1: enough to know when
/// every request sent on it has had its whole answer, the one moment its replica can be swapped for another without
/// a request being lost.
///
/// The bytes are copied through untouched; NIOHTTP1's decoders read copies of them, each in a channel of its own
/// (the decoders need a pipeline to run in), and what they find is counted. Anything that is not plain HTTP/1 (a
/// parse error, HTTP/2, an `Upgrade` or `CONNECT`, a `101`, an answer before any request) makes the connection
/// opaque: it is a byte stream from then on, and never swapped. Used on one thread only, the connection's event
/// loop (the decoders' embedded channels check it).
final class HTTPExchanges {
    private var requests: EmbeddedChannel?
    private var answers: EmbeddedChannel?
    private var requestsEnded = 0
    private var answersEnded = 0
    /// Bytes of a request arrived that have not yet made a whole request.
    private var requestUnderway = false
    /// The answer being read is informational (`1xx` but not `101`): the request still waits for its real one.
    private var answerIsInformational = false

    init() {
        requests = EmbeddedChannel(
            handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        answers = EmbeddedChannel(
            handler: ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)))
    }

    /// Not HTTP/1, or no longer: a byte stream.
    var isOpaque: Bool { requests == nil }

    /// Nothing is underway: every request has ended and has had its whole answer.
    var isBetweenExchanges: Bool {
        !isOpaque && !requestUnderway && answersEnded >= requestsEnded
    }

    /// The client sent `chunk`.
    func clientSent(_ chunk: ByteBuffer) {
        guard let requests, let answers else { return }
        requestUnderway = true
        do {
            try requests.writeInbound(chunk)
            while let part = try requests.readInbound(as: HTTPServerRequestPart.self) {
                switch part {
                case .head(let head):
                    guard head.version.major == 1, head.method != .CONNECT, !head.headers.contains(name: "upgrade")
                    else { return becomeOpaque() }
                    requestUnderway = true
                    // The answer decoder learns the method, so an answer to HEAD is read without a body.
                    try answers.writeOutbound(
                        HTTPClientRequestPart.head(
                            HTTPRequestHead(version: head.version, method: head.method, uri: "/")))
                    _ = try answers.readOutbound(as: HTTPClientRequestPart.self)
                case .body:
                    break
                case .end:
                    requestsEnded += 1
                    requestUnderway = false
                }
            }
            // Bytes after a request's end, in the same chunk (a pipelined request begun but not whole) are not seen
            // here; clients do not pipeline, and the decoder would report the request once it is whole.
        } catch {
            becomeOpaque()
        }
    }

    /// The replica answered with `chunk`.
    func replicaSent(_ chunk: ByteBuffer) {
        guard let answers else { return }
        do {
            try answers.writeInbound(chunk)
            while let part = try answers.readInbound(as: HTTPClientResponsePart.self) {
                switch part {
                case .head(let head):
                    if head.status == .switchingProtocols { return becomeOpaque() }
                    answerIsInformational = head.status.code >= 100 && head.status.code < 200
                case .body:
                    break
                case .end:
                    if !answerIsInformational { answersEnded += 1 }
                    answerIsInformational = false
                }
            }
        } catch {
            becomeOpaque()
        }
    }

    private func becomeOpaque() {
        _ = try? requests?.finish()
        _ = try? answers?.finish()
        requests = nil
        answers = nil
    }
}
