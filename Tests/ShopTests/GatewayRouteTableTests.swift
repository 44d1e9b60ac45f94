import Foundation
import NIOHTTP1
import OrchestrateContract
import OrchestrateTestSupport
import Testing

@testable import APIGatewayCore

@Suite(.timeLimit(.minutes(5)))
struct RouteTableTests {
    let table = RouteTable(
        routes: [
            .init(
                prefix: "/api/users", rewrite: "/users", methods: [],
                upstream: .init(service: "u", port: 1, url: "http://u:1"), auth: nil, rateLimit: nil,
                timeoutMilliseconds: 1, maxBodyBytes: 1),
            .init(
                prefix: "/api/users/admin", rewrite: "/", methods: [],
                upstream: .init(service: "a", port: 1, url: "http://a:1"), auth: nil, rateLimit: nil,
                timeoutMilliseconds: 1, maxBodyBytes: 1),
            .init(
                prefix: "/", rewrite: nil, methods: [], upstream: .init(service: "root", port: 1, url: "http://r:1"),
                auth: nil, rateLimit: nil, timeoutMilliseconds: 1, maxBodyBytes: 1),
        ], jwt: nil)

    @Test func longestWholeSegmentPrefixWins() {
        #expect(table.route(for: "/api/users")?.upstream.service == "u")
        #expect(table.route(for: "/api/users/7")?.upstream.service == "u")
        #expect(table.route(for: "/api/users/admin")?.upstream.service == "a")
        #expect(table.route(for: "/api/users/admin/x")?.upstream.service == "a")
        #expect(table.route(for: "/api/users/administrator")?.upstream.service == "u")
        #expect(table.route(for: "/api/usersX")?.upstream.service == "root")
    }

    @Test func rewriteReplacesThePrefixAndKeepsTheQuery() {
        let users = table.routes.first { $0.prefix == "/api/users" }!
        let admin = table.routes.first { $0.prefix == "/api/users/admin" }!
        #expect(RouteTable.rewrite(path: "/api/users", query: nil, route: users) == "/users")
        #expect(RouteTable.rewrite(path: "/api/users/7", query: "a=1&b=2", route: users) == "/users/7?a=1&b=2")
        #expect(RouteTable.rewrite(path: "/api/users/admin", query: nil, route: admin) == "/")
        #expect(RouteTable.rewrite(path: "/api/users/admin/x", query: nil, route: admin) == "/x")
    }

    @Test func theGeneratedTableLoads() throws {
        let data = try Data(contentsOf: ExternalTool.packageRoot.appendingPathComponent("gateway/routes.json"))
        let table = try RouteTable(json: data, source: "gateway/routes.json")
        #expect(table.routes.map(\.prefix).contains("/api/orders"))
        #expect(table.jwt?.issuer == "shop")
        #expect(throws: GatewayError.self) { try RouteTable(json: Data("{}".utf8), source: "x") }
    }

    @Test func tokenBucketRefillsAndSaysWhenToRetry() {
        let clock = ClockBox()
        let limiter = RateLimiter(now: { clock.now })
        for _ in 0..<3 { #expect(limiter.take(key: "k", rps: 1, burst: 3).allowed) }
        let refused = limiter.take(key: "k", rps: 1, burst: 3)
        #expect(!refused.allowed)
        #expect(refused.retryAfterSeconds == 1)
        #expect(limiter.take(key: "other", rps: 1, burst: 3).allowed)  // per client
        clock.advance(.milliseconds(1100))
        #expect(limiter.take(key: "k", rps: 1, burst: 3).allowed)
        #expect(!limiter.take(key: "k", rps: 1, burst: 3).allowed)
    }

    @Test func rateLimiterMemoryIsBounded() {
        let limiter = RateLimiter(maxClients: 100)
        #expect(limiter.take(key: "first", rps: 0.01, burst: 1).allowed)
        for client in 0..<10_000 { _ = limiter.take(key: "c\(client)", rps: 1, burst: 1) }
        #expect(limiter.count <= 101, "100 clients and the bucket the rest share")
        #expect(!limiter.take(key: "first", rps: 0.01, burst: 1).allowed, "the flood gave an empty bucket a refill")
    }
}

final class ClockBox: @unchecked Sendable {
    var now = ContinuousClock.now
    func advance(_ duration: Duration) { now += duration }
}

struct HeaderNamesTests {
    let names = HeaderNames(["x-request-id", "te", "connection"])

    @Test func namesMatchWithoutRegardToASCIICase() {
        for name in ["X-Request-ID", "x-request-id", "X-REQUEST-ID", "TE", "Connection"] {
            #expect(names.contains(name), "\(name)")
        }
        // The same length one byte off, or one byte longer.
        for name in ["x-request-ie", "tf", "Connectiom", "", "x-request-id ", "connection\0", "t\u{00C9}"] {
            #expect(!names.contains(name), "\(name)")
        }
    }

    @Test func connectionOptionsAreTheNamesListedBesidesCloseAndKeepAlive() {
        let headers = HTTPHeaders([
            ("Connection", "keep-alive, X-Secret-Hop"), ("connection", " \tUpgrade ,, close,\tKeep-Alive "),
            ("X-Other", "a, b"),
        ])
        #expect(HeaderNames.connectionOptions(headers) == ["x-secret-hop", "upgrade"])
        #expect(HeaderNames.connectionOptions(HTTPHeaders([("Connection", "close")])).isEmpty)
        let near = HTTPHeaders([("Connection", "CLOSE, keep-alives, clos")])
        #expect(HeaderNames.connectionOptions(near) == ["keep-alives", "clos"])
        #expect(HeaderNames.connectionOptions(HTTPHeaders()).isEmpty)
    }
}
