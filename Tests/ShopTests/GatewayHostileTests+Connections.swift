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
    /// A `METRICS_PORT` that is not a port, or is the public port, stops the gateway at start with exit 78
    /// (EX_CONFIG) and a message that names the variable.
    @Test func aBadMetricsPortStopsTheGatewayNamingIt() async throws {
        let directory = try ExternalTool.temporaryDirectory("metrics-port")
        defer { try? FileManager.default.removeItem(at: directory) }
        let routes = directory.appendingPathComponent("routes.json")
        try Data(
            #"{"gateway":"api-gateway","jwt":{"algorithm":"HS256"},"routes":[]}"#.utf8
        ).write(to: routes)
        let port = try ChildProcess.freePort()
        for bad in ["metrics", "0", "70000", "-1", String(port)] {
            let gateway = try ChildProcess(
                binaries.appendingPathComponent("APIGateway").path,
                environment: [
                    "HOST": "127.0.0.1", "PORT": String(port), "ROUTES_FILE": routes.path, "JWT_SECRET": jwtSecret,
                    "METRICS_PORT": bad,
                ], logPath: directory.appendingPathComponent("gateway-\(bad).log").path)
            let status = await gateway.wait(timeout: .seconds(30))
            if status == nil { gateway.signal(SIGKILL) }
            #expect(status == 78, "METRICS_PORT=\(bad): \(gateway.log.suffix(500))")
            #expect(gateway.log.contains("METRICS_PORT"), "METRICS_PORT=\(bad): \(gateway.log.suffix(500))")
        }
    }

    /// `/metrics` is served on `METRICS_PORT` only: through the public port it is a 404 however it is spelled.
    @Test func metricsAreServedOnTheMetricsPortOnly() async throws {
        let metricsPort = try ChildProcess.freePort()
        try await withGatewayProcess(
            routes: route("/api/echo", rewrite: "/echo"), environment: ["METRICS_PORT": String(metricsPort)]
        ) { gateway, _ in
            #expect(try await call(.GET, gateway.url + "/api/echo/x").status == 200)
            for path in [
                "/metrics", "//metrics", "/./metrics", "/%6Detrics", "/api/echo/../../metrics", "/api/../metrics",
            ] {
                let answer = try await offThePool {
                    let connection = try RawConnection(port: gateway.port)
                    connection.send("GET \(path) HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
                    return connection.readUntilClosed(timeout: .seconds(10))
                }
                #expect(statusCode(answer.bytes) == 404, "\(path): \(answer.bytes)")
                #expect(!answer.bytes.contains("hb_requests"))
            }
            let metrics = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)/metrics"), timeout: .seconds(5))
            #expect(metrics.status == .ok)
            let text = String(buffer: try await metrics.body.collect(upTo: 1 << 20))
            #expect(text.contains(#"http_route="/api/echo""#), "\(text.prefix(2000))")
        }
    }

    /// A client's `Connection: close` closes the connection after the answer; an HTTP/1.0 client is answered with
    /// `Connection: keep-alive` when it asked to keep the connection, and otherwise the connection closes.
    @Test func connectionsCloseWhenTheClientAsks() async throws {
        // The idle limit (120 s) is far beyond the reads' 30 s: a connection that closes within them was closed
        // because the client asked, however slow the machine is.
        try await withGatewayProcess(
            routes: route("/api/echo", rewrite: "/echo"), environment: ["HTTP_IDLE_TIMEOUT": "120s"]
        ) { gateway, _ in
            let requests = [
                "GET /api/echo/a HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
                "GET /api/echo/a HTTP/1.0\r\nHost: shop.test\r\n\r\n",
                "GET /nowhere HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
                "GET /health HTTP/1.0\r\n\r\n",
            ]
            for request in requests {
                let answer = try await offThePool {
                    let connection = try RawConnection(port: gateway.port)
                    connection.send(request)
                    return connection.readUntilClosed(timeout: .seconds(30))
                }
                #expect(answer.closed, "\(request): \(answer.bytes)")
                #expect(answer.bytes.lowercased().contains("connection: close"), "\(answer.bytes)")
                #expect(statusCode(answer.bytes) != nil)
            }
            let kept = try await offThePool {
                let connection = try RawConnection(port: gateway.port)
                connection.send("GET /api/echo/a HTTP/1.0\r\nHost: shop.test\r\nConnection: keep-alive\r\n\r\n")
                let first = connection.readAnswer(timeout: .seconds(30))
                // Answered on the same connection: it was kept.
                connection.send("GET /api/echo/b HTTP/1.0\r\nHost: shop.test\r\n\r\n")
                let second = connection.readUntilClosed(timeout: .seconds(30))
                return (first, second)
            }
            #expect(!kept.0.closed && statusCode(kept.0.bytes) == 200, "\(kept.0.bytes)")
            #expect(kept.0.bytes.lowercased().contains("connection: keep-alive"), "\(kept.0.bytes)")
            #expect(kept.1.closed && kept.1.bytes.contains("/echo/b"), "\(kept.1.bytes)")
        }
    }

    /// Requests a client pipelines (all sent in one write, before any answer) are answered in order on the one
    /// connection, each with its own body, a refused one among them included.
    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withGatewayProcess(routes: route("/api/echo", rewrite: "/echo")) { gateway, _ in
            let answer = try await offThePool {
                let connection = try RawConnection(port: gateway.port)
                connection.send(
                    "GET /api/echo/1 HTTP/1.1\r\nHost: shop.test\r\n\r\n"
                        + "POST /api/echo/2 HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n\r\nhello"
                        + "GET /nowhere HTTP/1.1\r\nHost: shop.test\r\n\r\n"
                        + "POST /api/echo/3 HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + "3\r\nabc\r\n0\r\n\r\n"
                        + "GET /api/echo/4 HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
                return connection.readUntilClosed(timeout: .seconds(30))
            }
            #expect(answer.closed, "\(answer.bytes)")
            let answers = answer.bytes.components(separatedBy: "HTTP/1.1 ").dropFirst()
            #expect(answers.map { Int($0.prefix(3)) } == [200, 200, 404, 200, 200], "\(answer.bytes)")
            let bodies = answers.map { $0.components(separatedBy: "\r\n\r\n").last ?? "" }
            let echoed = bodies.map { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
            #expect(echoed.map { $0?["path"] } == ["/echo/1", "/echo/2", nil, "/echo/3", "/echo/4"], "\(bodies)")
            #expect(echoed.map { $0?["bodyBytes"] } == ["0", "5", nil, "3", "0"], "\(bodies)")
        }
    }

    /// CONNECT and TRACE are refused with 405, as nginx refuses them, and never reach the upstream. Forwarded to an
    /// upstream that answers CONNECT with a body (nginx: a 405 page), a CONNECT left that body unread on the
    /// kept-alive upstream connection (NIO's client codec reads any answer to CONNECT as bodiless), and the next
    /// request on it, another client's, failed with 502 and counted against the breaker: found by sending hostile
    /// requests at a gateway in front of nginx. (This echo upstream does not answer CONNECT with a body, so here
    /// the later requests pass either way.) A TRACE would echo the headers the gateway adds, the internal token
    /// among them.
    @Test func connectAndTraceAreRefused() async throws {
        try await withGatewayProcess(routes: route("/api/echo", rewrite: "/echo")) { gateway, _ in
            let (trace, connect, after) = try await offThePool {
                let traced = try RawConnection(port: gateway.port)
                traced.send("TRACE /api/echo/t HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
                let trace = traced.readUntilClosed(timeout: .seconds(30))
                let tunnel = try RawConnection(port: gateway.port)
                tunnel.send(
                    "CONNECT /api/echo/c HTTP/1.1\r\nHost: shop.test\r\n\r\n"
                        + "GET /api/echo/hidden HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                let connect = tunnel.readUntilClosed(timeout: .seconds(30))
                // New connections, spread over the event loops: some reach the loop whose upstream connection the
                // CONNECT would have used.
                var after: [String] = []
                for index in 0..<6 {
                    let next = try RawConnection(port: gateway.port)
                    next.send("GET /api/echo/\(index) HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
                    after.append(next.readUntilClosed(timeout: .seconds(30)).bytes)
                }
                return (trace, connect, after)
            }
            #expect(statusCode(trace.bytes) == 405, "\(trace.bytes)")
            #expect(trace.bytes.contains(#""code":"method-not-allowed""#), "\(trace.bytes)")
            // No body: NIO's encoder sends none in an answer to CONNECT. The connection closes, since what follows a
            // CONNECT is not parsed as requests.
            #expect(statusCode(connect.bytes) == 405 && connect.closed, "\(connect.bytes)")
            #expect(!connect.bytes.contains("/echo/hidden"), "\(connect.bytes)")
            #expect(after.allSatisfy { statusCode($0) == 200 }, "\(after)")
        }
    }

    /// A client that sends `Expect: 100-continue` gets `100 Continue` from the gateway once its request is admitted,
    /// then sends the body, which reaches the upstream without the expectation; a refused one gets its final status
    /// and no `100`.
    @Test func theGatewayAnswersExpectContinue() async throws {
        let routes = [route("/api/echo", rewrite: "/echo"), route("/api/private", rewrite: "/echo", auth: true)]
            .joined(separator: ",")
        try await withGatewayProcess(routes: routes) { gateway, _ in
            let (interim, final) = try await offThePool {
                let connection = try RawConnection(port: gateway.port)
                connection.send(
                    "POST /api/echo/up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
                )
                let interim = connection.readAnswer(timeout: .seconds(30))
                connection.send("hello")
                return (interim, connection.readAnswer(timeout: .seconds(30)))
            }
            #expect(interim.bytes.hasPrefix("HTTP/1.1 100 Continue\r\n"), "\(interim.bytes)")
            #expect(statusCode(final.bytes) == 200, "\(final.bytes)")
            let body = final.bytes.components(separatedBy: "\r\n\r\n").last ?? ""
            let echoed = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: String]
            #expect(echoed?["bodyBytes"] == "5", "\(body)")
            #expect(echoed?["h:expect"] == nil, "\(body)")

            let refused = try await offThePool {
                let connection = try RawConnection(port: gateway.port)
                connection.send(
                    "POST /api/private/up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n"
                        + "Expect: 100-continue\r\n\r\n")
                return connection.readAnswer(timeout: .seconds(30))
            }
            #expect(statusCode(refused.bytes) == 401, "\(refused.bytes)")
        }
    }

    /// On SIGTERM the gateway closes its idle kept-alive connections at once, answers the request in flight (with
    /// `Connection: close`, then closes that connection too), and exits with 0.
    @Test func aStopAnswersTheRequestInFlightAndClosesIdleConnections() async throws {
        let metricsPort = try ChildProcess.freePort()
        try await withGatewayProcess(
            routes: route("/api/slow", rewrite: "/slower", timeout: 30000),
            environment: ["HTTP_IDLE_TIMEOUT": "120s", "METRICS_PORT": String(metricsPort)]
        ) { gateway, _ in
            let (idle, busy) = try await offThePool { () throws -> (RawConnection, RawConnection) in
                let idle = try RawConnection(port: gateway.port)
                idle.send("GET /health HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                #expect(statusCode(idle.readAnswer(timeout: .seconds(30)).bytes) == 200)
                let busy = try RawConnection(port: gateway.port)
                busy.send("GET /api/slow HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                return (idle, busy)
            }
            // The upstream answers `/slower` after 8 s: the stop comes while the gateway waits for it. (The gauge also
            // counts the `/metrics` request that reads it.)
            let inFlight = try await eventually {
                let metrics = try? await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(metricsPort)/metrics"), timeout: .seconds(5))
                guard let metrics else { return false }
                let text = String(buffer: try await metrics.body.collect(upTo: 1 << 20))
                let gauge = text.split(separator: "\n").first {
                    $0.hasPrefix(#"http_server_active_requests{http_request_method="GET"} "#)
                }
                return (gauge?.split(separator: " ").last.flatMap { Double($0) } ?? 0) >= 2
            }
            #expect(inFlight)
            gateway.process.signal(SIGTERM)
            let (idleEnd, busyEnd) = try await offThePool {
                (idle.readUntilClosed(timeout: .seconds(5)), busy.readUntilClosed(timeout: .seconds(30)))
            }
            #expect(idleEnd.closed && idleEnd.bytes.isEmpty, "\(idleEnd.bytes)")
            #expect(busyEnd.closed && statusCode(busyEnd.bytes) == 200, "\(busyEnd.bytes)")
            #expect(busyEnd.bytes.lowercased().contains("connection: close"), "\(busyEnd.bytes)")
            #expect(busyEnd.bytes.hasSuffix("later"), "\(busyEnd.bytes)")
            #expect(await gateway.process.wait(timeout: .seconds(30)) == 0, "\(gateway.process.log.suffix(800))")
        }
    }

    /// The gateway's line for a request carries the trace it continued and the span it sent upstream, as a service's
    /// line does: the dashboard links a log line to its trace by `trace_id`.
    @Test func theRequestLineCarriesTheTrace() async throws {
        let logged = ["LOG_LEVEL": "info", "REQUEST_LOG_LEVEL": "info"]
        try await withGatewayProcess(routes: route("/api/echo", rewrite: "/echo"), environment: logged) { gateway, _ in
            let answer = try await offThePool {
                let connection = try RawConnection(port: gateway.port)
                connection.send(
                    "GET /api/echo/traced HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n"
                        + "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n")
                return connection.readUntilClosed(timeout: .seconds(30))
            }
            let body = answer.bytes.components(separatedBy: "\r\n\r\n").last ?? ""
            let sent = try #require(
                (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: String])?["h:traceparent"])
            func line() -> Substring? {
                gateway.process.log.split(separator: "\n").first { $0.contains("/api/echo/traced") }
            }
            #expect(await eventually { line() != nil })
            let text = String(try #require(line()))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            #expect(object["trace_id"] as? String == "4bf92f3577b34da6a3ce929d0e0e4736", "\(text)")
            #expect(object["trace_flags"] as? String == "1", "\(text)")
            #expect(sent.split(separator: "-").dropFirst(2).first.map(String.init) == object["span_id"] as? String)
        }
    }

    /// Each request on a kept-alive connection has its own route's deadline, though the connection keeps one timer:
    /// a short deadline after a long one, and a second short one after a first that was answered in time, both end
    /// in a 504 (the upstream's `/slower` answers after 8 s). Each connection first reaches the upstream through the
    /// long route, so the short route's first answer is not a cold start. The margins are 4 s both ways: with 1 s
    /// routes and a 2 s upstream, an echo answered in time took over 1 s once, with every suite running at once.
    @Test func eachRequestOnAConnectionHasItsRoutesDeadline() async throws {
        let routes = [
            route("/api/echo", rewrite: "/echo", timeout: 30000), route("/api/quick", rewrite: "/echo", timeout: 4000),
            route("/api/slow", rewrite: "/slower", timeout: 4000),
        ].joined(separator: ",")
        try await withGatewayProcess(routes: routes, environment: ["HTTP_IDLE_TIMEOUT": "120s"]) { gateway, _ in
            for (paths, expected) in [
                (["/api/echo/a", "/api/slow", "/api/echo/b"], [200, 504, 200]),
                (["/api/echo/a", "/api/quick/a", "/api/slow", "/api/echo/b"], [200, 200, 504, 200]),
            ] {
                let answers = try await offThePool {
                    let connection = try RawConnection(port: gateway.port)
                    var answers: [(bytes: String, closed: Bool)] = []
                    for path in paths {
                        connection.send("GET \(path) HTTP/1.1\r\nHost: shop.test\r\n\r\n")
                        answers.append(connection.readAnswer(timeout: .seconds(30)))
                    }
                    return answers
                }
                #expect(answers.map { statusCode($0.bytes) } == expected, "\(paths): \(answers)")
                #expect(answers.contains { $0.bytes.contains(#""code":"upstream-timeout""#) }, "\(answers)")
                #expect(!answers.contains { $0.closed }, "\(answers)")
            }
        }
    }

    /// `nbf` and `iat` in the future are refused; a token that became valid a moment ago is accepted.
    @Test func notBeforeAndIssuedAt() async throws {
        struct TimedClaims: JWTPayload {
            var sub: SubjectClaim
            var exp: ExpirationClaim
            var iss: IssuerClaim?
            var aud: AudienceClaim?
            var nbf: NotBeforeClaim?
            var iat: IssuedAtClaim?
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: jwtSecret), digestAlgorithm: .sha256)
        func signed(nbf: Double? = nil, iat: Double? = nil) async throws -> String {
            let now = Date()
            return try await keys.sign(
                TimedClaims(
                    sub: "alice", exp: .init(value: now.addingTimeInterval(600)), iss: "shop", aud: "shop-api",
                    nbf: nbf.map { .init(value: now.addingTimeInterval($0)) },
                    iat: iat.map { .init(value: now.addingTimeInterval($0)) }))
        }
        let valid = try await signed(nbf: -5, iat: -5)
        let notYet = try await signed(nbf: 3600)
        let fromTheFuture = try await signed(iat: 3600)
        try await withGatewayProcess(routes: route("/api/private", rewrite: "/echo", auth: true)) { gateway, _ in
            var statuses: [Int] = []
            for token in [valid, notYet, fromTheFuture] {
                let answer = try await call(
                    .GET, gateway.url + "/api/private", headers: [("Authorization", "Bearer " + token)])
                statuses.append(answer.status)
            }
            #expect(statuses == [200, 401, 401])
        }
    }

    /// A flood of new client keys does not reset a limited client's bucket; IPv6 clients in one /64 share a bucket.
    /// Clients are named by `X-Forwarded-For` from a trusted proxy (loopback), over real sockets.
    @Test func theRateLimiterHoldsAgainstAFloodAndGroupsIPv6By64() async throws {
        try await withGatewayProcess(
            routes: route("/api/limited", rewrite: "/echo", rateLimit: (0.01, 2)),
            environment: ["TRUSTED_PROXIES": "127.0.0.1", "RATE_LIMIT_MAX_CLIENTS": "50"]
        ) { gateway, _ in
            func status(_ client: String) async throws -> Int {
                try await call(.GET, gateway.url + "/api/limited", headers: [("X-Forwarded-For", client)]).status
            }
            #expect(try await status("198.51.100.1") == 200)
            #expect(try await status("198.51.100.1") == 200)
            #expect(try await status("198.51.100.1") == 429)
            for index in 0..<200 { _ = try await status("10.0.\(index / 250).\(index % 250)") }
            #expect(try await status("198.51.100.1") == 429, "the flood reset the bucket")
        }
        try await withGatewayProcess(
            routes: route("/api/limited", rewrite: "/echo", rateLimit: (0.01, 2)),
            environment: ["TRUSTED_PROXIES": "127.0.0.1"]
        ) { gateway, _ in
            func status(_ client: String) async throws -> Int {
                try await call(.GET, gateway.url + "/api/limited", headers: [("X-Forwarded-For", client)]).status
            }
            var statuses: [Int] = []
            for client in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2:abcd::1", "2001:db8:1:3::1"] {
                statuses.append(try await status(client))
            }
            // The third shares the first two's /64; the fourth is another /64.
            #expect(statuses == [200, 200, 429, 200])
        }
    }
}

@Suite(.timeLimit(.minutes(5)))
struct RateLimiterKeyTests {
    @Test func clientKeys() {
        #expect(RateLimiter.clientKey("192.0.2.7") == "192.0.2.7")
        #expect(RateLimiter.clientKey("2001:db8:1:2::1") == RateLimiter.clientKey("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        #expect(RateLimiter.clientKey("2001:db8:1:2::1") != RateLimiter.clientKey("2001:db8:1:3::1"))
        #expect(RateLimiter.clientKey("::ffff:192.0.2.7") == "192.0.2.7")
        #expect(RateLimiter.clientKey(nil) == "?")
        #expect(RateLimiter.clientKey("::1") == "0:0:0:0::/64")
        #expect(
            RateLimiter.ipv6Hextets("2001:db8::8:800:200c:417a") == [0x2001, 0xdb8, 0, 0, 8, 0x800, 0x200c, 0x417a])
        #expect(RateLimiter.ipv6Hextets("::ffff:1.2.3.4") == [0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304])
        #expect(RateLimiter.ipv6Hextets("1:2:3:4:5:6:7:8") == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(RateLimiter.ipv6Hextets("1::2::3") == nil)
        #expect(RateLimiter.ipv6Hextets("12345::") == nil)
        #expect(RateLimiter.ipv6Hextets("1.2.3.4") == nil)
    }
}
