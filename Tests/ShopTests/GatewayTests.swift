import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JWTKit
import NIOCore
import NIOHTTP1
import OrchestrateContract
import OrchestrateTestSupport
import ServiceKit
import Synchronization
import Testing

@testable import APIGatewayCore

let jwtSecret = "0123456789abcdef0123456789abcdef-test"

struct TestClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var iss: IssuerClaim?
    var roles: [String]?
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A token signed with `secret` (HS256), expiring `expiresIn` seconds from now.
func token(
    secret: String = jwtSecret, subject: String = "alice", issuer: String? = "shop", expiresIn: Double = 600,
    roles: [String]? = nil
) async throws -> String {
    let keys = JWTKeyCollection()
    await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
    return try await keys.sign(
        TestClaims(
            sub: .init(value: subject), exp: .init(value: Date().addingTimeInterval(expiresIn)),
            iss: issuer.map { .init(value: $0) }, roles: roles))
}

/// The size of the upstream's `/large` answer: far more than the socket buffers and NIO's write watermarks hold.
let largeAnswerBytes = 8 << 20

/// An upstream that answers what it was sent: `/echo…` returns method, path and headers as JSON; `/slow` answers
/// after 2 s and `/slower` after 8 s; `/fail` answers 500; `/large` answers `largeAnswerBytes` bytes.
func withUpstream(_ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    let router = Router()
    router.get("/slow") { _, _ in
        try await Task.sleep(for: .seconds(2))
        return "late"
    }
    router.get("/slower") { _, _ in
        try await Task.sleep(for: .seconds(8))
        return "later"
    }
    router.get("/fail") { _, _ -> Response in Response(status: .internalServerError) }
    router.get("/large") { _, _ -> Response in
        Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: 0x6C, count: largeAnswerBytes)))
    }
    let echo: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let size = try await request.body.collect(upTo: 16 << 20).readableBytes
        return try jsonResponse(
            ["method": request.method.rawValue, "path": request.uri.description, "bodyBytes": String(size)]
                .merging(headers.mapKeys { "h:" + $0 }) { a, _ in a })
    }
    for path in ["/echo", "/echo/**"] {
        router.on(RouterPath(path), method: .get, use: echo)
        router.on(RouterPath(path), method: .post, use: echo)
        router.on(RouterPath(path), method: .delete, use: echo)
    }
    try await Application(router: router).test(.live) { client in try await body(client.port!) }
}

extension Dictionary {
    func mapKeys(_ transform: (Key) -> String) -> [String: Value] {
        Dictionary<String, Value>(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}

/// The gateway in front of `upstreamPort`, with the routes of `routesJSON` (`UPSTREAM` stands for the URL): its own
/// server on a port of its own, since the gateway answers on its event loops rather than through a router.
func withGateway(
    upstreamPort: Int, routes routesJSON: String, environment: [String: String] = [:],
    _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    let directory = try ExternalTool.temporaryDirectory("gateway")
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("routes.json")
    let table = """
        {"gateway":"api-gateway","jwt":{"algorithm":"HS256","issuer":"shop","audience":null},"routes":[\(routesJSON)]}
        """.replacingOccurrences(of: "UPSTREAM", with: "http://127.0.0.1:\(upstreamPort)")
    try Data(table.utf8).write(to: file)
    var environment = environment
    environment["ROUTES_FILE"] = file.path
    environment["JWT_SECRET"] = environment["JWT_SECRET"] ?? jwtSecret
    _ = observability
    environment["INTERNAL_TOKEN"] = environment["INTERNAL_TOKEN"] ?? testToken
    let runtime = try ServiceRuntime(definition: APIGateway.definition, environment: environment)
    do {
        let router = try await ServiceMain.makeRouter(
            runtime: runtime, context: BasicRequestContext.self, routes: APIGateway.routes)
        let server = try await APIGateway.server(runtime: runtime)
        try await Application(router: router, server: server).test(.live) { client in try await body(client) }
    } catch {
        try? await runtime.httpClient.shutdown()
        throw error
    }
    try await runtime.httpClient.shutdown()
}

func route(
    _ prefix: String, rewrite: String? = nil, service: String = "echo", auth: Bool = false, methods: [String] = [],
    rateLimit: (Double, Int)? = nil, timeout: Int = 5000, maxBody: Int = 1 << 20
) -> String {
    let rewriteJSON = rewrite.map { "\"\($0)\"" } ?? "null"
    let limit = rateLimit.map { #","rateLimit":{"rps":\#($0.0),"burst":\#($0.1)}"# } ?? ""
    let methodsJSON = methods.map { "\"\($0)\"" }.joined(separator: ",")
    return
        #"{"prefix":"\#(prefix)","rewrite":\#(rewriteJSON),"methods":[\#(methodsJSON)],"upstream":{"service":"\#(service)","port":1,"url":"UPSTREAM"},"auth":\#(auth ? "\"jwt\"" : "null"),"timeoutMilliseconds":\#(timeout),"maxBodyBytes":\#(maxBody)\#(limit)}"#
}

@Suite(.timeLimit(.minutes(5)), .serialized) struct GatewayTests {
    @Test func proxiesWithRewriteAndForwardsWhatUpstreamsNeed() async throws {
        try await withUpstream { port in
            try await withGateway(upstreamPort: port, routes: route("/api/things", rewrite: "/echo")) { client in
                let response = try await client.execute(
                    uri: "/api/things/7?x=1", method: .get,
                    headers: [
                        HTTPField.Name("traceparent")!: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                        HTTPField.Name("X-Service-Token")!: "forged",
                        HTTPField.Name("X-Authenticated-Subject")!: "root",
                    ])
                #expect(response.status == .ok)
                let echoed = response.json as? [String: String] ?? [:]
                #expect(echoed["path"] == "/echo/7?x=1")
                #expect(echoed["h:x-service-token"] == testToken)  // the gateway's, never the client's
                #expect(echoed["h:x-authenticated-subject"] == nil)
                // The trace continues: same trace id, the gateway's span as parent.
                #expect(echoed["h:traceparent"]?.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") == true)
                #expect(echoed["h:traceparent"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                let id = try #require(response.headers[HTTPField.Name("X-Request-ID")!])
                #expect(echoed["h:x-request-id"] == id)
            }
        }
    }

    /// A client's malformed `traceparent` is not passed on: the upstream gets a trace the gateway started.
    @Test func aMalformedTraceparentIsReplacedNotForwarded() async throws {
        try await withUpstream { port in
            try await withGateway(upstreamPort: port, routes: route("/api/things", rewrite: "/echo")) { client in
                for hostile in [
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                    "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736",
                ] {
                    let response = try await client.execute(
                        uri: "/api/things/7", method: .get,
                        headers: [HTTPField.Name("traceparent")!: hostile, HTTPField.Name("tracestate")!: "a=b"])
                    #expect(response.status == .ok)
                    let echoed = response.json as? [String: String] ?? [:]
                    let sent = try #require(echoed["h:traceparent"])
                    #expect(sent.utf8.count == 55 && sent.hasPrefix("00-") && sent.hasSuffix("-00"), "\(sent)")
                    #expect(!sent.contains("4bf92f3577b34da6a3ce929d0e0e4736"))
                    #expect(echoed["h:tracestate"] == nil)
                }
            }
        }
    }

    @Test func jwtRoutesNeedAValidToken() async throws {
        try await withUpstream { port in
            try await withGateway(upstreamPort: port, routes: route("/api/private", rewrite: "/echo", auth: true)) {
                client in
                let missing = try await client.execute(uri: "/api/private", method: .get)
                #expect(missing.status == .unauthorized)
                #expect(missing.headers[.wwwAuthenticate] == "Bearer realm=\"api\"")
                let cases: [(String, String)] = [
                    ("Bearer " + (try await token(expiresIn: -60)), "expired"),
                    ("Bearer " + (try await token(secret: "another-secret-another-secret-xx")), "wrong key"),
                    ("Bearer " + (try await token(issuer: "evil")), "wrong issuer"),
                    ("Bearer " + (try await token(issuer: nil)), "no issuer"),
                    (
                        "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OSwiaXNzIjoic2hvcCJ9.",
                        "alg none"
                    ),
                    ("Basic YWxpY2U6cHc=", "not bearer"),
                    ("Bearer not.a.token", "garbage"),
                ]
                for (header, why) in cases {
                    let response = try await client.execute(
                        uri: "/api/private", method: .get, headers: [.authorization: header])
                    #expect(response.status == .unauthorized, "\(why)")
                    #expect(response.headers[.wwwAuthenticate]?.contains("error=") == true, "\(why)")
                    #expect(response.errorCode == "unauthorized", "\(why)")
                }
                let good = try await client.execute(
                    uri: "/api/private", method: .get,
                    headers: [.authorization: "Bearer " + (try await token(subject: "bob"))])
                #expect(good.status == .ok)
                #expect((good.json as? [String: String])?["h:x-authenticated-subject"] == "bob")
            }
        }
    }

    /// RS256 with a public key in PEM: a key pair from openssl, tokens signed with the private half.
    @Test(.requires("openssl", ExternalTool.find("openssl") != nil))
    func rs256TokensVerifyWithThePublicKey() async throws {
        let openssl = try #require(ExternalTool.find("openssl"), "openssl is missing: scripts/test installs it")
        let directory = try ExternalTool.temporaryDirectory("rsa")
        defer { try? FileManager.default.removeItem(at: directory) }
        let privatePath = directory.appendingPathComponent("private.pem").path
        let publicPath = directory.appendingPathComponent("public.pem").path
        #expect(
            try await ExternalTool.run(
                openssl, ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privatePath]
            ).0 == 0)
        #expect(
            try await ExternalTool.run(openssl, ["pkey", "-in", privatePath, "-pubout", "-out", publicPath]).0 == 0)
        let signer = JWTKeyCollection()
        await signer.add(
            rsa: try Insecure.RSA.PrivateKey(pem: try String(contentsOfFile: privatePath, encoding: .utf8)),
            digestAlgorithm: .sha256)
        let good = try await signer.sign(
            TestClaims(sub: "carol", exp: .init(value: Date().addingTimeInterval(600)), iss: "shop"))
        try await withUpstream { port in
            try await withGateway(
                upstreamPort: port, routes: route("/api/private", rewrite: "/echo", auth: true),
                environment: ["JWT_ALGORITHM": "RS256", "JWT_PUBLIC_KEY_FILE": publicPath]
            ) { client in
                let accepted = try await client.execute(
                    uri: "/api/private", method: .get, headers: [.authorization: "Bearer " + good])
                #expect(accepted.status == .ok)
                #expect((accepted.json as? [String: String])?["h:x-authenticated-subject"] == "carol")
                // An HS256 token, even one signed with the public key's text as secret, is refused.
                let hmac = try await token(secret: try String(contentsOfFile: publicPath, encoding: .utf8))
                let refused = try await client.execute(
                    uri: "/api/private", method: .get, headers: [.authorization: "Bearer " + hmac])
                #expect(refused.status == .unauthorized)
            }
        }
    }

    @Test func rateLimitIs429WithRetryAfter() async throws {
        try await withUpstream { port in
            try await withGateway(
                upstreamPort: port, routes: route("/api/limited", rewrite: "/echo", rateLimit: (0.01, 3))
            ) { client in
                var statuses: [Int] = []
                var last: TestResponse?
                for _ in 0..<5 {
                    let response = try await client.execute(uri: "/api/limited", method: .get)
                    statuses.append(response.status.code)
                    last = response
                }
                #expect(statuses == [200, 200, 200, 429, 429])
                #expect(last?.errorCode == "rate-limited")
                #expect(last?.headers[.retryAfter].flatMap(Int.init).map { (1...100).contains($0) } == true)
            }
        }
    }

    @Test func bodyLimitIs413EvenWhenChunked() async throws {
        try await withUpstream { port in
            let routes = route("/api/small", rewrite: "/echo", maxBody: 1000)
            try await withGateway(upstreamPort: port, routes: routes) { client in
                let fits = try await client.execute(
                    uri: "/api/small", method: .post, body: ByteBuffer(repeating: 0x61, count: 1000))
                #expect(fits.status == .ok)
                #expect((fits.json as? [String: String])?["bodyBytes"] == "1000")
                let tooBig = try await client.execute(
                    uri: "/api/small", method: .post, body: ByteBuffer(repeating: 0x61, count: 1001))
                #expect(tooBig.status == .contentTooLarge)
                #expect(tooBig.errorCode == "payload-too-large")
                // Chunked, over a real socket: no Content-Length to refuse early, so the gateway must count.
                let gatewayPort = try #require(client.port)
                for (size, expected) in [(1000, 200), (1001, 413)] {
                    var request = HTTPClientRequest(url: "http://127.0.0.1:\(gatewayPort)/api/small")
                    request.method = .POST
                    let (chunks, more) = AsyncStream<ByteBuffer>.makeStream()
                    for _ in 0..<(size / 100) { more.yield(ByteBuffer(repeating: 0x61, count: 100)) }
                    if size % 100 > 0 { more.yield(ByteBuffer(repeating: 0x61, count: size % 100)) }
                    more.finish()
                    request.body = .stream(chunks, length: .unknown)
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                    #expect(response.status.code == UInt(expected), "a chunked body of \(size) bytes")
                }
            }
        }
    }

    @Test func methodsTimeoutsAndUpstreamFailures() async throws {
        try await withUpstream { port in
            let routes = [
                route("/api/read", rewrite: "/echo", methods: ["GET"]),
                route("/api/slow", rewrite: "/slow", timeout: 300),
                route("/api/fail", rewrite: "/fail", service: "failing"),
            ].joined(separator: ",")
            try await withGateway(upstreamPort: port, routes: routes, environment: ["BREAKER_RESET_TIMEOUT": "30s"]) {
                client in
                let wrongMethod = try await client.execute(uri: "/api/read", method: .delete)
                #expect(wrongMethod.status == .methodNotAllowed)
                #expect(wrongMethod.headers[.allow] == "GET")
                // The route's 300 ms deadline answers, not the upstream (which sleeps longer).
                let slow = try await client.execute(uri: "/api/slow", method: .get)
                #expect(slow.status == .gatewayTimeout)
                #expect(slow.errorCode == "upstream-timeout")
                // 5xx answers pass through, and count against the upstream until its breaker opens.
                var statuses: [Int] = []
                for _ in 0..<12 {
                    statuses.append(try await client.execute(uri: "/api/fail", method: .get).status.code)
                }
                #expect(statuses.prefix(10).allSatisfy { $0 == 500 })
                #expect(statuses.suffix(2) == [503, 503])
                let open = try await client.execute(uri: "/api/fail", method: .get)
                #expect(open.errorCode == "circuit-open")
                #expect(open.headers[.retryAfter] != nil)
                // Other upstreams are not affected.
                #expect(try await client.execute(uri: "/api/read", method: .get).status == .ok)
            }
        }
    }

    /// A token check that outlasts the route's timeout is answered at the deadline with `gateway-timeout`, never
    /// with `upstream-timeout`, and does not count against the upstream, which was never asked. The gateway runs in
    /// this process, so its check runs on this process's cooperative pool: every pool thread is held in `sleep`
    /// while the request arrives, and the check can start only after the route's 20 ms are long gone. A plain thread
    /// sends the request; the gateway's event loops are NIO's threads, not the pool's.
    @Test func aTokenCheckThatOutlastsTheDeadlineIsNotTheUpstreamsFailure() async throws {
        try await withUpstream { port in
            let routes = [
                route("/api/private", rewrite: "/echo", auth: true, timeout: 20),
                route("/api/patient", rewrite: "/echo", auth: true, timeout: 10000),
            ].joined(separator: ",")
            try await withGateway(upstreamPort: port, routes: routes) { client in
                let gatewayPort = try #require(client.port)
                let authorization = "Bearer " + (try await token())
                let width = ProcessInfo.processInfo.activeProcessorCount
                var answers: [String] = []
                // Ten: the breaker's minimum number of calls, so that counting them would open it.
                for _ in 0..<10 {
                    answers.append(
                        try await offThePool {
                            let holding = HeldThreads()
                            for _ in 0..<width {
                                Task.detached {
                                    holding.count.withLock { $0 += 1 }
                                    usleep(300_000)
                                }
                            }
                            while holding.count.withLock({ $0 }) < width { usleep(1000) }
                            let connection = try RawConnection(port: gatewayPort)
                            connection.send(
                                "GET /api/private HTTP/1.1\r\nHost: x\r\nAuthorization: \(authorization)\r\n"
                                    + "Connection: close\r\n\r\n")
                            return connection.readUntilClosed(timeout: .seconds(10)).bytes
                        })
                }
                for answer in answers {
                    #expect(statusCode(answer) == 504, "\(answer)")
                    #expect(answer.contains(#""code":"gateway-timeout""#), "\(answer)")
                }
                // The same upstream, through a route with time for the check: its breaker did not open.
                let served = try await client.execute(
                    uri: "/api/patient", method: .get, headers: [.authorization: authorization])
                #expect(served.status == .ok, "\(served.json)")
            }
        }
    }

    /// An HTTP/1.0 upstream: a connection whose answer said `Connection: keep-alive` carries the next request, one
    /// whose answer did not is never used again (the upstream here leaves it open, so reusing it would hang), and a
    /// body that ends with the connection reaches the client whole. The upstream (Python, raw sockets) answers each
    /// request with its number and the number of the connection it came on. A request sent on a connection that
    /// should not have been used again would show as a gap in the request numbers (the gateway sends a failed idempotent
    /// request again on a new connection, so the connection numbers alone would not tell).
    @Test func anHTTP10UpstreamIsKeptAliveOnlyWhenItSaysSo() async throws {
        let python = try #require(ExternalTool.find("python3"))
        let directory = try ExternalTool.temporaryDirectory("http10")
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = directory.appendingPathComponent("upstream.py")
        try Data(
            #"""
            import socket, sys, threading
            server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
            count = 0
            requests = 0
            def serve(connection, number):
                buffered = b""
                with connection:
                    while True:
                        data = connection.recv(65536)
                        if not data:
                            return
                        buffered += data
                        while b"\r\n\r\n" in buffered:
                            global requests
                            requests += 1
                            head, buffered = buffered.split(b"\r\n\r\n", 1)
                            body = b"request %d, connection %d" % (requests, number)
                            length = b"Content-Length: %d\r\n\r\n" % len(body)
                            if b" /keep" in head:
                                connection.sendall(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n" + length + body)
                            elif b" /once" in head:
                                connection.sendall(b"HTTP/1.0 200 OK\r\n" + length + body)
                            else:
                                connection.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + body)
                                return
            while True:
                connection, _ = server.accept()
                count += 1
                threading.Thread(target=serve, args=(connection, count), daemon=True).start()
            """#.utf8
        ).write(to: script)
        let port = try ChildProcess.freePort()
        let upstream = try ChildProcess(
            python.path, [script.path, String(port)], environment: ["PATH": "/usr/bin:/bin"],
            logPath: directory.appendingPathComponent("upstream.log").path)
        defer { upstream.signal(SIGKILL) }
        // Bounded wait for the upstream: 100 × 50 ms.
        for _ in 0..<100 {
            if (try? RawConnection(port: port)) != nil { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let routes = [
            route("/api/keep", rewrite: "/keep"), route("/api/once", rewrite: "/once"),
            route("/api/eof", rewrite: "/eof"),
        ].joined(separator: ",")
        try await withGateway(upstreamPort: port, routes: routes) { client in
            let gatewayPort = try #require(client.port)
            let (answers, untilClosed) = try await offThePool {
                // One client connection, so one event loop and its one pool of upstream connections.
                let connection = try RawConnection(port: gatewayPort)
                var answers: [String] = []
                for path in ["/api/keep", "/api/keep", "/api/keep", "/api/once", "/api/once", "/api/keep"] {
                    connection.send("GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n")
                    answers.append(connection.readAnswer(timeout: .seconds(10)).bytes)
                }
                let once = try RawConnection(port: gatewayPort)
                once.send("GET /api/eof HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return (answers, once.readUntilClosed(timeout: .seconds(10)).bytes)
            }
            #expect(answers.allSatisfy { statusCode($0) == 200 }, "\(answers)")
            let numbers = answers.map { answer in answer.firstMatch(of: /connection (\d+)$/).flatMap { Int($0.1) } }
            let first = try #require(numbers[0], "\(answers)")
            let requests = answers.map { answer in answer.firstMatch(of: /request (\d+),/).flatMap { Int($0.1) } }
            #expect(requests == Array(1...6), "\(answers)")
            // keep, keep, keep, once (on the kept connection), once (a new one), keep (a new one again).
            #expect(numbers == [first, first, first, first, first + 1, first + 2], "\(answers)")
            #expect(statusCode(untilClosed) == 200, "\(untilClosed)")
            // The body, whose end only the upstream's close told, as one chunk and the last one.
            #expect(untilClosed.firstMatch(of: /\r\nrequest 7, connection \d+\r\n0\r\n\r\n$/) != nil, "\(untilClosed)")
        }
    }

    /// How many of the cooperative pool's threads a test holds.
    final class HeldThreads: Sendable {
        let count = Mutex(0)
    }

    @Test func anUnreachableUpstreamIs502AndUnknownPathsAre404() async throws {
        let closed = try ChildProcess.freePort()
        try await withGateway(upstreamPort: closed, routes: route("/api/gone", rewrite: "/echo")) { client in
            let response = try await client.execute(uri: "/api/gone", method: .get)
            #expect(response.status == .badGateway)
            #expect(response.errorCode == "upstream-unreachable")
            let unknown = try await client.execute(uri: "/elsewhere", method: .get)
            #expect(unknown.status == .notFound)
            #expect(unknown.errorCode == "not-found")
        }
    }

    @Test func aMissingSecretStopsTheGatewayNamingTheVariable() async throws {
        _ = observability
        let runtime = try ServiceRuntime(
            definition: APIGateway.definition,
            environment: [
                "ROUTES_FILE": ExternalTool.packageRoot.appendingPathComponent("gateway/routes.json").path
            ])
        defer { Task { try? await runtime.httpClient.shutdown() } }
        do {
            _ = try await APIGateway.server(runtime: runtime)
            Issue.record("started without JWT_SECRET")
        } catch let error as ServiceKitError {
            #expect(error.code == .configuration)
            #expect(error.subject == "JWT_SECRET")
        }
    }
}
