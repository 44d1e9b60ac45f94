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
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ChildProcess.SpawnError(description: "socket: \(errno)") }
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

@Suite(.timeLimit(.minutes(10)))
struct RequestPathTests {
    @Test(arguments: [
        ("/a//b", "/a/b"), ("/a/./b", "/a/b"), ("/a/b/../c", "/a/c"), ("/a/%2e%2e/b", "/b"), ("/a/.%2E/b", "/b"),
        ("/a%2Fb", "/a/b"), ("/a%2f%2fb", "/a/b"), ("/a/b/.", "/a/b/"), ("/a/b/..", "/a/"), ("/", "/"),
        ("//", "/"), ("/a/", "/a/"), ("/caf%C3%A9", "/café"), ("/%41", "/A"), ("a", "/a"),
    ])
    func normalizes(raw: String, normalized: String) {
        #expect(RequestPath.normalize(raw) == .success(normalized))
    }

    @Test func refuses() {
        #expect(RequestPath.normalize("/..") == .failure(.aboveRoot))
        #expect(RequestPath.normalize("/a/../../b") == .failure(.aboveRoot))
        #expect(RequestPath.normalize("/%2e%2e/x") == .failure(.aboveRoot))
        #expect(RequestPath.normalize("/a%zz") == .failure(.badEscape))
        #expect(RequestPath.normalize("/a%2") == .failure(.badEscape))
        #expect(RequestPath.normalize("/a%00b") == .failure(.nul))
        #expect(RequestPath.normalize("/a%FF") == .failure(.notUTF8))
    }

    @Test func escapesAsNginxDoes() {
        #expect(RequestPath.escape("/a b?c#d%e") == "/a%20b%3Fc%23d%25e")
        #expect(RequestPath.escape("/café") == "/caf%C3%A9")
        #expect(RequestPath.escape("/!$&'()*+,;=:@[]~-._") == "/!$&'()*+,;=:@[]~-._")
        #expect(RequestPath.escape("/\"<>\\^`{|}") == "/%22%3C%3E%5C%5E%60%7B%7C%7D")
    }
}

@Suite(.timeLimit(.minutes(10)), .serialized)
struct GatewayHostileTrafficTests {
    /// One table of hostile paths through the generated nginx.conf and through the gateway, both generated from the
    /// same spec and in front of the same upstream: each path reaches the same route with the same upstream path,
    /// or is refused by both.
    @Test(.requires("nginx", ExternalTool.find("nginx") != nil))
    func pathsReachTheSameRouteAndPathThroughNginxAndTheGateway() async throws {
        let nginx = try #require(ExternalTool.find("nginx"))
        let directory = try ExternalTool.temporaryDirectory("paths")
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
        version: 1
        name: paths
        gateway:
          service: edge
        services:
          edge: { builtin: gateway, port: 8000, public: true }
          catalog:
            product: Catalog
            port: 8081
            routes:
              - { prefix: /api/catalog, rewrite: /catalog }
              - { prefix: /api/catalog/admin, rewrite: /admin }
              - { prefix: /files }
        """.write(to: directory.appendingPathComponent("services.yaml"), atomically: true, encoding: .utf8)
        let orchestrate = binaries.appendingPathComponent("orchestrate")
        let (status, _, errors) = try await ExternalTool.runCapturingErrors(
            orchestrate,
            [
                "generate", "gateway", "-f", directory.appendingPathComponent("services.yaml").path,
                "-o", directory.path,
            ])
        #expect(status == 0, "\(errors)")
        let table = [
            "/api/catalog/items", "/api/catalog//admin/x", "/api/catalog/./admin/x", "/api/catalog/x/../admin/y",
            "/api/catalog/%2e%2e/catalog/admin/z", "/api/catalog%2Fadmin%2Fq", "/api/catalog/.%2e/catalog/admin",
            "/api//catalog/a", "/files/a%20b", "/files/caf%C3%A9", "/files/a%3Fb?q=%2e%2e/x", "/files/x/.",
            "/files/x/..", "/files/%5c", "/files/a%23b", "/api/%63atalog/admin/t", "/files/../../etc/passwd",
            "/%2e%2e/files", "/files/%zz", "/files/a%00b",
        ]
        let router = Router()
        router.get("/**") { request, _ in try jsonResponse(["path": request.uri.description]) }
        try await Application(router: router).test(.live) { upstream in
            let upstreamPort = try #require(upstream.port)
            // The generated nginx.conf, pointed at loopback: the upstream, a port, and its pid and temp paths.
            var conf = try String(contentsOf: directory.appendingPathComponent("gateway/nginx.conf"), encoding: .utf8)
            let nginxPort = try ChildProcess.freePort()
            conf = conf.replacingOccurrences(of: "http://catalog:8081", with: "http://127.0.0.1:\(upstreamPort)")
                .replacingOccurrences(of: "listen 8000;", with: "listen 127.0.0.1:\(nginxPort);")
                .replacingOccurrences(of: "/tmp/", with: directory.path + "/")
                .replacingOccurrences(of: "access_log /dev/stdout;", with: "access_log off;")
            let confFile = directory.appendingPathComponent("nginx-local.conf")
            try conf.write(to: confFile, atomically: true, encoding: .utf8)
            let nginxProcess = try ChildProcess(
                nginx.path, ["-c", confFile.path, "-p", directory.path, "-g", "daemon off;"],
                environment: [:], logPath: directory.appendingPathComponent("nginx.log").path)
            // SIGTERM, so that the master takes its workers with it (after SIGKILL they would live on).
            defer { _ = nginxProcess.stopNow() }
            let gateway = try await RunningService(
                "APIGateway", port: try ChildProcess.freePort(),
                environment: [
                    "ROUTES_FILE": directory.appendingPathComponent("gateway/routes.json").path,
                    "CATALOG_URL": "http://127.0.0.1:\(upstreamPort)", "LOG_LEVEL": "warning",
                ], directory: directory)
            defer { gateway.process.signal(SIGKILL) }
            #expect(
                await eventually(.seconds(30)) {
                    (try? RawConnection(port: nginxPort)) != nil
                }, "nginx did not start: \(nginxProcess.log)")
            func through(_ port: Int, _ path: String) async -> (Int?, String?) {
                await
                    (try? offThePool {
                        let connection = try RawConnection(port: port)
                        connection.send("GET \(path) HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
                        let answer = connection.readUntilClosed(timeout: .seconds(10)).bytes
                        let status = statusCode(answer)
                        guard status == 200, let body = answer.range(of: "\r\n\r\n").map({ answer[$0.upperBound...] }),
                            let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
                        else { return (status, nil) }
                        return (status, object["path"] as? String)
                    }) ?? (nil, nil)
            }
            var refusedByBoth = 0
            for path in table {
                let byNginx = await through(nginxPort, path)
                let byGateway = await through(gateway.port, path)
                if byNginx.0 == 200 || byGateway.0 == 200 {
                    #expect(
                        byNginx.0 == byGateway.0 && byNginx.1 == byGateway.1,
                        "\(path): nginx \(byNginx), gateway \(byGateway)")
                } else {
                    // Refused by both: 400 for what is not a path, 404 for what matches no route.
                    #expect(byNginx.0 == byGateway.0, "\(path): nginx \(byNginx.0 ?? 0), gateway \(byGateway.0 ?? 0)")
                    refusedByBoth += 1
                }
            }
            #expect(await through(gateway.port, "/api/catalog//admin/x").1 == "/admin/x")
            #expect(await through(gateway.port, "/api/catalog/%2e%2e/catalog/admin/z").1 == "/admin/z")
            #expect(refusedByBoth >= 3)
        }
    }

    /// A `jwt` route nested under a public prefix of the same service cannot be reached without a token by a path
    /// that only the upstream would collapse onto it.
    @Test func aNestedJWTRouteCannotBeReachedThroughThePublicPrefix() async throws {
        let routes = [
            route("/api/catalog", rewrite: "/echo"), route("/api/catalog/admin", rewrite: "/echo/admin", auth: true),
        ].joined(separator: ",")
        try await withGatewayProcess(routes: routes) { gateway, _ in
            for path in [
                "/api/catalog//admin/x", "/api/catalog/./admin/x", "/api/catalog/%2e/admin", "/api/catalog%2fadmin",
            ] {
                let answer = try await call(.GET, gateway.url + path)
                #expect(answer.status == 401, "\(path) reached \(echoed(answer).path ?? "?")")
            }
            let publicAnswer = try await call(.GET, gateway.url + "/api/catalog//items/./7")
            #expect(echoed(publicAnswer).path == "/echo/items/7")
            // Over a raw socket: an HTTP client library resolves the dots itself.
            let bad = try await offThePool {
                let connection = try RawConnection(port: gateway.port)
                connection.send("GET /api/catalog/../../../x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return connection.readUntilClosed(timeout: .seconds(10)).bytes
            }
            #expect(statusCode(bad) == 400 && bad.contains(#""code":"bad-path""#), "\(bad)")
        }
    }

    /// 2,000 connections that are idle or have sent half a request head do not stop a normal request, and are
    /// closed once the idle timeout passes; an oversized head is a 431, a stalled body a 408.
    @Test func slowClientsCannotExhaustTheGateway() async throws {
        try await withGatewayProcess(routes: route("/api/echo", rewrite: "/echo")) { gateway, _ in
            let held: [RawConnection] = try await offThePool {
                var connections: [RawConnection] = []
                for index in 0..<2000 {
                    let connection = try RawConnection(port: gateway.port)
                    if index % 2 == 1 { connection.send("GET /api/echo HTTP/1.1\r\nHost: x\r\nX-Slow: ") }
                    connections.append(connection)
                }
                return connections
            }
            let normal = try await call(.GET, gateway.url + "/api/echo/ok")
            #expect(normal.status == 200)
            #expect(echoed(normal).path == "/echo/ok")
            #expect(
                await eventually(.seconds(60), every: .milliseconds(200)) {
                    held.allSatisfy(\.isClosedByServer)
                }, "\(held.filter { !$0.isClosedByServer }.count) of 2000 still open")
            let (oversized, stalled) = try await offThePool {
                let big = try RawConnection(port: gateway.port)
                big.send("GET /api/echo HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 40_000))\r\n\r\n")
                let slow = try RawConnection(port: gateway.port)
                slow.send("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
                return (big.readUntilClosed(timeout: .seconds(30)), slow.readUntilClosed(timeout: .seconds(30)))
            }
            #expect(statusCode(oversized.bytes) == 431 && oversized.bytes.contains(#""code":"headers-too-large""#))
            #expect(oversized.closed)
            #expect(stalled.closed, "a stalled body was never given up on")
            #expect(statusCode(stalled.bytes).map { [408, 504].contains($0) } ?? true, "\(stalled.bytes)")
            #expect(try await call(.GET, gateway.url + "/api/echo/still").status == 200)
        }
    }

    /// Every ServiceKit server has the same limits: user-service closes idle and half-sent connections and answers
    /// an oversized head with 431.
    @Test func everyServiceKitServerHasTheLimits() async throws {
        let directory = try ExternalTool.temporaryDirectory("limits")
        defer { try? FileManager.default.removeItem(at: directory) }
        let users = try await RunningService(
            "UserService", port: try ChildProcess.freePort(),
            environment: [
                "INTERNAL_TOKEN": "t", "HTTP_IDLE_TIMEOUT": "2s", "HTTP_BODY_READ_TIMEOUT": "2s",
                "DATABASE_URL": "sqlite://" + directory.appendingPathComponent("u.sqlite").path,
            ], directory: directory)
        defer { users.process.signal(SIGKILL) }
        let (idle, half, big, malformed) = try await offThePool {
            let idle = try RawConnection(port: users.port)
            let half = try RawConnection(port: users.port)
            half.send("GET /health HTTP/1.1\r\nHost: x\r\n")
            let big = try RawConnection(port: users.port)
            big.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 40_000))\r\n\r\n")
            let malformed = try RawConnection(port: users.port)
            malformed.send("GET /health HTTP/1.1\r\nHo\u{1}st: x\r\n\r\n")
            return (
                idle.readUntilClosed(timeout: .seconds(30)), half.readUntilClosed(timeout: .seconds(30)),
                big.readUntilClosed(timeout: .seconds(30)), malformed.readUntilClosed(timeout: .seconds(30))
            )
        }
        #expect(idle.closed && idle.bytes.isEmpty)
        #expect(half.closed && half.bytes.isEmpty)
        #expect(statusCode(big.bytes) == 431 && big.closed)
        #expect(statusCode(malformed.bytes) == 400 && malformed.bytes.contains(#""code":"bad-request""#))
        #expect(try await call(.GET, users.url + "/health").status == 200)
    }

    /// Aborted and stalled uploads and unsendable headers are the client's doing: many of them in a row do not open
    /// the upstream's breaker, and the next client is served.
    @Test func whatAClientCausesNeverOpensTheBreaker() async throws {
        try await withGatewayProcess(routes: route("/api/echo", rewrite: "/echo", timeout: 1000)) { gateway, _ in
            try await offThePool {
                for index in 0..<12 {
                    let connection = try RawConnection(port: gateway.port)
                    connection.send("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
                    if index % 2 == 0 {
                        // Aborted mid-body.
                        usleep(50_000)
                    } else {
                        // Stalled until the route's timeout passes.
                        _ = connection.readUntilClosed(timeout: .seconds(5))
                    }
                }
                for _ in 0..<12 {
                    let connection = try RawConnection(port: gateway.port)
                    connection.send("GET /api/echo HTTP/1.1\r\nHost: x\r\nX-Odd: a\u{7F}b\r\nConnection: close\r\n\r\n")
                    _ = connection.readUntilClosed(timeout: .seconds(5))
                }
            }
            let after = try await call(.GET, gateway.url + "/api/echo/next")
            #expect(after.status == 200, "\(after.json)\n\(gateway.process.log.suffix(3000))")
            #expect(!gateway.process.log.contains("circuit breaker opened"))
        }
    }

    /// The other side of the same rule: an upstream that refuses connections is the upstream's fault for requests
    /// with a body too, and opens its breaker (the body was never asked for).
    @Test func anUnreachableUpstreamOpensTheBreakerForUploadsToo() async throws {
        let closed = try ChildProcess.freePort()
        let directory = try ExternalTool.temporaryDirectory("gateway-closed")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("routes.json")
        try Data(
            """
            {"gateway":"api-gateway","jwt":null,"routes":[\(route("/api/gone", rewrite: "/echo"))]}
            """.replacingOccurrences(of: "UPSTREAM", with: "http://127.0.0.1:\(closed)").utf8
        ).write(to: file)
        let gateway = try await RunningService(
            "APIGateway", port: try ChildProcess.freePort(),
            environment: ["ROUTES_FILE": file.path, "LOG_LEVEL": "warning"], directory: directory)
        defer { gateway.process.signal(SIGKILL) }
        var codes: [String] = []
        for _ in 0..<14 {
            codes.append(try await call(.POST, gateway.url + "/api/gone", json: #"{"a":1}"#).errorCode ?? "?")
        }
        #expect(codes.first == "upstream-unreachable")
        #expect(codes.last == "circuit-open", "\(codes)")
    }

    /// Headers named in `Connection` are dropped; forwarding headers are the gateway's own unless the peer is a
    /// trusted proxy; a 401 does not say which issuer or audience is expected.
    @Test func forwardingAndHopByHopHeaders() async throws {
        let routes = [route("/api/echo", rewrite: "/echo"), route("/api/private", rewrite: "/echo", auth: true)]
            .joined(separator: ",")
        try await withGatewayProcess(routes: routes) { gateway, _ in
            let answer = try await call(
                .GET, gateway.url + "/api/echo/h",
                headers: [
                    ("Connection", "keep-alive, X-Secret-Hop"), ("X-Secret-Hop", "1"), ("X-Forwarded-For", "6.6.6.6"),
                    ("Forwarded", "for=6.6.6.6"), ("X-Forwarded-Host", "evil.test"), ("X-Real-IP", "6.6.6.6"),
                ])
            let headers = echoed(answer).headers
            #expect(headers["x-secret-hop"] == nil)
            #expect(headers["x-forwarded-for"] == "127.0.0.1")
            #expect(headers["forwarded"]?.hasPrefix("for=127.0.0.1;proto=http") == true)
            #expect(headers["x-forwarded-host"] != "evil.test")
            #expect(headers["x-real-ip"] == nil)
            for bad in [try await token(issuer: "someone-else"), try await token()] {
                let refused = try await call(
                    .GET, gateway.url + "/api/private", headers: [("Authorization", "Bearer " + bad)])
                #expect(refused.status == 401)
                let text = "\(refused.json) \(refused.headers["WWW-Authenticate"])"
                #expect(
                    !text.contains("shop-api") && !text.contains("\"shop\"") && !text.contains("issued by"), "\(text)")
            }
        }
        try await withGatewayProcess(
            routes: route("/api/echo", rewrite: "/echo"), environment: ["TRUSTED_PROXIES": "127.0.0.1"]
        ) {
            gateway, _ in
            let answer = try await call(
                .GET, gateway.url + "/api/echo/h", headers: [("X-Forwarded-For", "203.0.113.9")])
            #expect(echoed(answer).headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1")
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
        try await withGatewayProcess(routes: route("/api/echo", rewrite: "/echo")) { gateway, _ in
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
                    // Well within HTTP_IDLE_TIMEOUT (2 s): only the gateway honouring the request closes it this soon.
                    return connection.readUntilClosed(timeout: .milliseconds(1500))
                }
                #expect(answer.closed, "\(request): \(answer.bytes)")
                #expect(answer.bytes.lowercased().contains("connection: close"), "\(answer.bytes)")
                #expect(statusCode(answer.bytes) != nil)
            }
            let kept = try await offThePool {
                let connection = try RawConnection(port: gateway.port)
                connection.send("GET /api/echo/a HTTP/1.0\r\nHost: shop.test\r\nConnection: keep-alive\r\n\r\n")
                let first = connection.readUntilClosed(timeout: .milliseconds(500))
                connection.send("GET /api/echo/b HTTP/1.0\r\nHost: shop.test\r\n\r\n")
                let second = connection.readUntilClosed(timeout: .seconds(5))
                return (first, second)
            }
            #expect(!kept.0.closed && statusCode(kept.0.bytes) == 200, "\(kept.0.bytes)")
            #expect(kept.0.bytes.lowercased().contains("connection: keep-alive"), "\(kept.0.bytes)")
            #expect(kept.1.closed && kept.1.bytes.contains("/echo/b"), "\(kept.1.bytes)")
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
