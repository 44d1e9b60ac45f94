import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import JWTKit
import NIOCore
import NIOHTTP1
import OrchestrateContract
import OrchestrateTestSupport
import ServiceKit
import Testing

@testable import APIGatewayCore

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP connection to 127.0.0.1 with blocking reads bounded by `poll`: for what an HTTP client library will not
/// send (half a head, a stalled body, an oversized head) and for holding thousands of idle connections.
final class RawConnection: @unchecked Sendable {
    let descriptor: Int32

    init(port: Int) throws {
        // Close-on-exec: the thousands held by one test are not handed to the processes other tests start.
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw ChildProcess.SpawnError(description: "socket: \(errno)") }
        // Bounds connect and send: a server that stops reading (or accepting) fails the test instead of holding
        // its thread.
        var limit = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            close(descriptor)
            throw ChildProcess.SpawnError(description: "connect: \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(descriptor) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent <= 0 { return }
            offset += sent
        }
    }

    /// Everything the server sends until it closes the connection, or until `timeout` passes.
    func readUntilClosed(timeout: Duration) -> (bytes: String, closed: Bool) {
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let left = deadline - ContinuousClock.now
            let milliseconds = Int32(
                max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            guard poll(&entry, 1, milliseconds) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += buffer[0..<count]
        }
        return (String(decoding: received, as: UTF8.self), false)
    }

    /// One whole answer (its head and `Content-Length` bytes of body), or what came before the server closed or
    /// `timeout` passed; `closed` says whether the server closed the connection.
    func readAnswer(timeout: Duration) -> (bytes: String, closed: Bool) {
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let length = Self.contentLength(ofHead: text[..<end.lowerBound])
                if text.utf8.count - text[..<end.upperBound].utf8.count >= length { return (text, false) }
            }
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 100) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += buffer[0..<count]
        }
        return (String(decoding: received, as: UTF8.self), false)
    }

    /// The head of one answer and how many bytes of its `Content-Length` body arrived, read at most `chunk` bytes at a
    /// time with `pause` after each read (a slow client), until the body is whole, the server closes, or `timeout`
    /// passes. The body is counted, not kept.
    func readLargeAnswer(timeout: Duration, chunk: Int = 65536, pause: Duration = .zero) -> (
        head: String, length: Int?, received: Int
    ) {
        var head: [UInt8] = []
        var length: Int?
        var received = 0
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: chunk)
        while ContinuousClock.now < deadline, length.map({ received < $0 }) ?? true {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 100) > 0 else { continue }
            // Never past this answer's end, so that the next one is left for the next read.
            let wanted = length.map { min(chunk, $0 - received) } ?? 1
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, wanted, 0) }
            if count <= 0 { break }
            if length == nil {
                head.append(buffer[0])
                if head.count >= 4, head.suffix(4).elementsEqual("\r\n\r\n".utf8) {
                    length = Self.contentLength(ofHead: String(decoding: head, as: UTF8.self))
                }
            } else {
                received += count
                if pause > .zero {
                    Thread.sleep(
                        forTimeInterval: Double(pause.components.seconds) + Double(pause.components.attoseconds) / 1e18)
                }
            }
        }
        return (String(decoding: head, as: UTF8.self), length, received)
    }

    /// The `Content-Length` of an answer's head (0 when it has none).
    private static func contentLength(ofHead head: some StringProtocol) -> Int {
        head.lowercased().split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
    }

    /// Whether the server has closed this connection (without waiting).
    var isClosedByServer: Bool {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) <= 0
    }
}

/// The status code of a raw HTTP/1.1 answer.
func statusCode(_ answer: String) -> Int? {
    let parts = answer.split(separator: " ", maxSplits: 2)
    return parts.count >= 2 ? Int(parts[1]) : nil
}

/// The gateway as its own process in front of the in-process echo upstream, with short client timeouts.
func withGatewayProcess(
    routes routesJSON: String, environment: [String: String] = [:],
    _ body: @escaping @Sendable (RunningService, Int) async throws -> Void
) async throws {
    try await withUpstream { upstreamPort in
        let directory = try ExternalTool.temporaryDirectory("gateway-hostile")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("routes.json")
        let table = """
            {"gateway":"api-gateway","jwt":{"algorithm":"HS256","issuer":"shop","audience":"shop-api"},"routes":[\(routesJSON)]}
            """.replacingOccurrences(of: "UPSTREAM", with: "http://127.0.0.1:\(upstreamPort)")
        try Data(table.utf8).write(to: file)
        let gateway = try await RunningService(
            "APIGateway", port: try ChildProcess.freePort(),
            environment: [
                "ROUTES_FILE": file.path, "JWT_SECRET": jwtSecret, "HTTP_IDLE_TIMEOUT": "2s",
                "HTTP_BODY_READ_TIMEOUT": "2s", "LOG_LEVEL": "warning", "REQUEST_LOG_LEVEL": "debug",
            ].merging(environment) { _, new in new }, directory: directory)
        defer { gateway.process.signal(SIGKILL) }
        try await body(gateway, upstreamPort)
    }
}

/// What the echo upstream reports: the path it was sent and its headers (`h:<name>`).
func echoed(_ answer: HTTPAnswer) -> (path: String?, headers: [String: String]) {
    var headers: [String: String] = [:]
    for (key, value) in answer.json where key.hasPrefix("h:") { headers[String(key.dropFirst(2))] = value as? String }
    return (answer.json["path"] as? String, headers)
}
