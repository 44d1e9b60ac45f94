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

@Suite(.timeLimit(.minutes(10)))
struct RequestPathTests {
    @Test(arguments: [
        ("/a//b", "/a/b"), ("/a/./b", "/a/b"), ("/a/b/../c", "/a/c"), ("/a/%2e%2e/b", "/b"), ("/a/.%2E/b", "/b"),
        ("/a%2Fb", "/a/b"), ("/a%2f%2fb", "/a/b"), ("/a/b/.", "/a/b/"), ("/a/b/..", "/a/"), ("/", "/"),
        ("//", "/"), ("/a/", "/a/"), ("/caf%C3%A9", "/café"), ("/%41", "/A"), ("a", "/a"),
        // Already normal, returned as they are; and dots that are not segments of their own.
        ("/api/users/7", "/api/users/7"), ("/a.b/c.", "/a.b/c."), ("/a/.b", "/a/.b"),
        ("/.well-known/x", "/.well-known/x"), ("/a/b/", "/a/b/"), ("/café", "/café"), ("/a/b/./", "/a/b/"),
        ("/a/..", "/"),
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
        #expect(RequestPath.normalize("/a\u{0}b") == .failure(.nul))
        #expect(RequestPath.normalize("/a/b\u{0}") == .failure(.nul))
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
}
