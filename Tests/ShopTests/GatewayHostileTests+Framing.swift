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

extension GatewayHostileTrafficTests {
    /// A chunked body reaches the upstream chunked whatever the method: a `GET` or `DELETE` body sent bare would be
    /// read by the upstream as the next request, one the gateway never checked. A transfer coding other than chunked
    /// is refused with 501, as nginx refuses it.
    @Test func aChunkedBodyIsFramedForTheUpstreamWhateverTheMethod() async throws {
        try await withGatewayProcess(routes: route("/api/echo", rewrite: "/echo")) { gateway, _ in
            let smuggled = "GET /echo/smuggled HTTP/1.1\r\nHost: shop.test\r\n\r\n"
            let chunk = String(smuggled.utf8.count, radix: 16) + "\r\n" + smuggled + "\r\n0\r\n\r\n"
            let (answers, coded) = try await offThePool {
                let connection = try RawConnection(port: gateway.port)
                var answers: [String] = []
                for method in ["GET", "DELETE", "POST"] {
                    connection.send(
                        "\(method) /api/echo/\(method) HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + chunk)
                    answers.append(connection.readAnswer(timeout: .seconds(30)).bytes)
                }
                connection.send("GET /api/echo/after HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                answers.append(connection.readAnswer(timeout: .seconds(30)).bytes)
                let gzip = try RawConnection(port: gateway.port)
                gzip.send(
                    "POST /api/echo/gz HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                        + chunk)
                return (answers, gzip.readUntilClosed(timeout: .seconds(30)))
            }
            let echoes = answers.map { answer in
                (try? JSONSerialization.jsonObject(
                    with: Data((answer.components(separatedBy: "\r\n\r\n").last ?? "").utf8)))
                    as? [String: String]
            }
            #expect(answers.allSatisfy { statusCode($0) == 200 }, "\(answers)")
            #expect(echoes.map { $0?["path"] } == ["/echo/GET", "/echo/DELETE", "/echo/POST", "/echo/after"])
            for echo in echoes.prefix(3) {
                #expect(echo?["bodyBytes"] == String(smuggled.utf8.count), "\(String(describing: echo))")
                #expect(echo?["h:transfer-encoding"] == "chunked", "\(String(describing: echo))")
            }
            #expect(statusCode(coded.bytes) == 501 && coded.closed, "\(coded.bytes)")
            #expect(coded.bytes.contains(#""code":"unsupported-transfer-encoding""#), "\(coded.bytes)")
        }
    }

    /// An answer larger than the socket buffers and the write watermarks between them reaches a client that reads
    /// it at once and one that reads it slowly, whole, and the connection then carries the next request. (The
    /// gateway once paused the upstream after a flush that had already made the client writable again: it stopped
    /// after ~128 KiB for good.)
    @Test func aLargeAnswerReachesFastAndSlowClientsWhole() async throws {
        let routes = [route("/api/echo", rewrite: "/echo"), route("/api/large", rewrite: "/large")]
            .joined(separator: ",")
        try await withGatewayProcess(routes: routes) { gateway, _ in
            let results = try await offThePool {
                try [(65536, Duration.zero), (16384, .milliseconds(1))].map { chunk, pause in
                    let connection = try RawConnection(port: gateway.port)
                    connection.send("GET /api/large HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                    let large = connection.readLargeAnswer(timeout: .seconds(20), chunk: chunk, pause: pause)
                    connection.send("GET /api/echo/after HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                    return (large, connection.readAnswer(timeout: .seconds(10)).bytes)
                }
            }
            for (large, next) in results {
                #expect(statusCode(large.head) == 200, "\(large.head)")
                #expect(large.length == largeAnswerBytes && large.received == largeAnswerBytes, "\(large)")
                #expect(statusCode(next) == 200 && next.contains("/echo/after"), "\(next)")
            }
        }
    }

    /// A client that asks for a large answer and then reads none of it is disconnected after `HTTP_SEND_TIMEOUT`
    /// (1 s here): it cannot hold the upstream connection behind the answer, and others are still served.
    @Test func aClientThatStopsReadingIsDisconnectedAfterTheSendTimeout() async throws {
        let routes = [route("/api/echo", rewrite: "/echo"), route("/api/large", rewrite: "/large")]
            .joined(separator: ",")
        try await withGatewayProcess(routes: routes, environment: ["HTTP_SEND_TIMEOUT": "1s"]) { gateway, _ in
            let (large, next) = try await offThePool {
                let stalled = try RawConnection(port: gateway.port)
                stalled.send("GET /api/large HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                // Reads nothing for three send timeouts; 8 MiB is more than the two sockets' buffers hold.
                Thread.sleep(forTimeInterval: 3)
                let large = stalled.readLargeAnswer(timeout: .seconds(20))
                let other = try RawConnection(port: gateway.port)
                other.send("GET /api/echo/after HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                return (large, other.readAnswer(timeout: .seconds(10)).bytes)
            }
            #expect(statusCode(large.head) == 200, "\(large.head)")
            // Cut off: what the buffers held arrived, the rest was never sent.
            #expect(large.received < largeAnswerBytes, "\(large)")
            #expect(statusCode(next) == 200 && next.contains("/echo/after"), "\(next)")
        }
    }

    /// Headers that two of leave open which one counts are refused as nginx refuses them, and so is an HTTP/1.1
    /// request without exactly one Host (RFC 9112 §3.2); an HTTP/1.0 one may leave Host out.
    @Test func duplicateCredentialsAndAMissingHostAreRefused() async throws {
        try await withGatewayProcess(routes: route("/api/echo", rewrite: "/echo")) { gateway, _ in
            let requests = [
                "GET /api/echo/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n",
                "GET /api/echo/b HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"1\"\r\nIf-None-Match: \"2\"\r\n",
                "GET /api/echo/c HTTP/1.1\r\n", "GET /api/echo/d HTTP/1.1\r\nHost: x\r\nHOST: y\r\n",
                "GET /api/echo/e HTTP/1.0\r\n", "GET /api/echo/f HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n",
            ]
            let answers = try await offThePool {
                try requests.map { request in
                    let connection = try RawConnection(port: gateway.port)
                    connection.send(request + "Connection: close\r\n\r\n")
                    return connection.readUntilClosed(timeout: .seconds(30)).bytes
                }
            }
            #expect(answers.map(statusCode) == [400, 400, 400, 400, 200, 200], "\(answers)")
            #expect(answers[0].contains(#""code":"duplicate-header""#), "\(answers[0])")
            #expect(answers[1].contains(#""code":"duplicate-header""#), "\(answers[1])")
            #expect(answers[2].contains(#""code":"bad-host""#) && answers[3].contains(#""code":"bad-host""#))
        }
    }

    /// `scripts/fuzz-gateway`'s hostile traffic (a fixed seed, 3,000 requests) through the gateway to nginx: the
    /// gateway stays up and fails none of it with a 5xx of its own, and nginx sees only the gateway's own requests
    /// (its rewritten paths and its X-Forwarded-For): nothing reached the upstream that the gateway did not parse,
    /// route and check, and nothing it sent is read two ways.
    @Test(.requires("nginx", ExternalTool.find("nginx") != nil))
    func hostileTrafficReachesTheUpstreamOnlyAsTheGatewaysOwnRequests() async throws {
        let nginx = try #require(ExternalTool.find("nginx"))
        let python = try #require(ExternalTool.find("python3"))
        let directory = try ExternalTool.temporaryDirectory("fuzz-gateway")
        defer { try? FileManager.default.removeItem(at: directory) }
        let nginxPort = try ChildProcess.freePort()
        let log = directory.appendingPathComponent("access.log")
        try """
        worker_processes 1; pid \(directory.path)/nginx.pid; error_log \(directory.path)/error.log;
        events { worker_connections 256; }
        http {
          log_format ids '$http_x_forwarded_for|$status|$request';
          access_log \(log.path) ids;
          client_body_temp_path \(directory.path); proxy_temp_path \(directory.path);
          server { listen 127.0.0.1:\(nginxPort); location / { return 200 "ok $request_uri\\n"; } }
        }
        """.write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
        let upstream = try ChildProcess(
            nginx.path,
            ["-c", directory.appendingPathComponent("nginx.conf").path, "-p", directory.path, "-g", "daemon off;"],
            environment: [:], logPath: directory.appendingPathComponent("nginx.log").path)
        defer { _ = upstream.stopNow() }
        // The routes name nginx itself, so withGatewayProcess's echo upstream is left unused.
        let routes = [
            route("/api/open", rewrite: "/o", service: "up", maxBody: 1000),
            route("/api/open/priv", rewrite: "/p", service: "up", auth: true, methods: ["GET", "POST"]),
            route("/api/rl", service: "up", rateLimit: (1000, 1000), maxBody: 100),
        ].joined(separator: ",").replacingOccurrences(of: "UPSTREAM", with: "http://127.0.0.1:\(nginxPort)")
        #expect(
            await eventually(.seconds(30)) { (try? RawConnection(port: nginxPort)) != nil },
            "nginx did not start: \(upstream.log)")
        try await withGatewayProcess(routes: routes) { gateway, _ in
            let script = ExternalTool.packageRoot.appendingPathComponent("scripts/fuzz-gateway")
            let (status, output, errors) = try await ExternalTool.runCapturingErrors(
                python,
                [script.path, "--port", String(gateway.port), "--requests", "3000", "--seconds", "120", "--seed", "7"])
            #expect(status == 0, "\(errors)")
            let summary = try #require(
                try JSONSerialization.jsonObject(with: output) as? [String: Any],
                "\(String(decoding: output, as: UTF8.self)) \(errors)")
            let statuses = summary["statuses"] as? [String: Int] ?? [:]
            #expect(summary["alive"] as? Bool == true, "\(summary)")
            #expect((summary["sent"] as? Int ?? 0) >= 3000, "\(summary)")
            #expect((statuses["200"] ?? 0) > 100, "\(statuses)")
            // 501 is a transfer coding the gateway refuses; no other 5xx is the gateway's to give here.
            let failures = statuses.filter { $0.key.hasPrefix("5") && $0.key != "501" }
            #expect(failures.isEmpty, "\(statuses)")
            let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
            #expect(lines.count > 100)
            // The gateway rewrites /api/open to /o and /api/open/priv to /p, and sets X-Forwarded-For from the
            // connection: a request line without its paths was never the gateway's (a body read as a request,
            // say), and every request nginx accepted carries the gateway's X-Forwarded-For. (nginx refuses some the
            // gateway sends, a URI over its 8 KiB buffer with 414, before it reads their headers.)
            let foreign = lines.filter { line in
                let fields = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
                guard fields.count == 3, fields[2].wholeMatch(of: /[A-Z]+ \/(o|p|api\/rl)([\/?;].*)?/) != nil else {
                    return true
                }
                return fields[1] != "414" && fields[0] != "127.0.0.1"
            }
            #expect(foreign.isEmpty, "requests the gateway did not send: \(foreign.prefix(5))")
        }
    }
}
