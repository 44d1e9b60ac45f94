import AsyncHTTPClient
import FluentKit
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import OrchestrateTestSupport
import ServiceKit
import Testing

/// The built service binaries: beside the test bundle (`.build/debug`).
let binaries: URL = {
    let executable = URL(
        fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
    let beside = executable.deletingLastPathComponent()
    if FileManager.default.isExecutableFile(atPath: beside.appendingPathComponent("UserService").path) { return beside }
    return ExternalTool.packageRoot.appendingPathComponent(".build/debug")
}()

/// A shop service running as its own process on a fixed loopback port.
final class RunningService: @unchecked Sendable {
    let product: String
    let port: Int
    let environment: [String: String]
    let logPath: String
    var process: ChildProcess

    init(_ product: String, port: Int, environment: [String: String], directory: URL) async throws {
        self.product = product
        self.port = port
        self.environment = environment.merging(["HOST": "127.0.0.1", "PORT": String(port)]) { _, new in new }
        logPath = directory.appendingPathComponent("\(product).log").path
        process = try ChildProcess(
            binaries.appendingPathComponent(product).path, environment: self.environment, logPath: logPath)
        try await waitUntilReady()
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Polls `/ready` with the binary's own healthcheck logic (an HTTP GET); bounded: 30 s.
    func waitUntilReady() async throws {
        for _ in 0..<300 {
            if let response = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: url + "/ready"), timeout: .seconds(1)),
                response.status == .ok
            {
                return
            }
            if let status = await process.wait(timeout: .milliseconds(100)) {
                throw ChildProcess.SpawnError(
                    description: "\(product) exited with \(status):\n\(process.log.suffix(2000))")
            }
        }
        throw ChildProcess.SpawnError(description: "\(product) not ready after 30 s:\n\(process.log.suffix(2000))")
    }

    func restart() async throws {
        process = try ChildProcess(
            binaries.appendingPathComponent(product).path, environment: environment, logPath: logPath)
        try await waitUntilReady()
    }
}

struct HTTPAnswer {
    var status: Int
    var headers: HTTPHeaders
    var json: [String: Any]
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

func call(_ method: HTTPMethod, _ url: String, json: String? = nil, headers: [(String, String)] = []) async throws
    -> HTTPAnswer
{
    var request = HTTPClientRequest(url: url)
    request.method = method
    // A connection per call: these tests stop and restart the processes they call, and a pooled connection to one
    // that just went away fails as "I/O on closed channel" before any request is sent (seen in CI).
    request.headers.add(name: "Connection", value: "close")
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let json {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    let body = try await response.body.collect(upTo: 1 << 20)
    let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
    return HTTPAnswer(status: Int(response.status.code), headers: response.headers, json: object)
}

@Suite(.timeLimit(.minutes(10)), .serialized) struct FlowTests {
    /// User, payment and order services and the gateway as processes: a user and an order through the gateway with
    /// a JWT; without one, 401; user-service stopped → 503 fast and the breaker opens; started again → half-open →
    /// closed.
    @Test func theShopThroughTheGateway() async throws {
        let directory = try ExternalTool.temporaryDirectory("flow")
        defer { try? FileManager.default.removeItem(at: directory) }
        let common = [
            "INTERNAL_TOKEN": "flow-token", "LOG_LEVEL": "info", "BREAKER_RESET_TIMEOUT": "2s",
            "SHUTDOWN_GRACE_PERIOD": "3s",
        ]
        func database(_ name: String) -> [String: String] {
            ["DATABASE_URL": "sqlite://" + directory.appendingPathComponent("\(name).sqlite").path]
        }
        let users = try await RunningService(
            "UserService", port: try ChildProcess.freePort(),
            environment: common.merging(database("users")) { a, _ in a },
            directory: directory)
        let payments = try await RunningService(
            "PaymentService", port: try ChildProcess.freePort(),
            environment: common.merging(database("payments")) { a, _ in a }, directory: directory)
        let orders = try await RunningService(
            "OrderService", port: try ChildProcess.freePort(),
            environment: common.merging(database("orders")) { a, _ in a }.merging([
                "USER_SERVICE_URL": users.url, "PAYMENT_SERVICE_URL": payments.url, "UPSTREAM_TIMEOUT": "1s",
            ]) { a, _ in a },
            directory: directory)
        let gateway = try await RunningService(
            "APIGateway", port: try ChildProcess.freePort(),
            environment: common.merging([
                "ROUTES_FILE": ExternalTool.packageRoot.appendingPathComponent("gateway/routes.json").path,
                "JWT_SECRET": jwtSecret, "USER_SERVICE_URL": users.url, "ORDER_SERVICE_URL": orders.url,
            ]) { a, _ in a },
            directory: directory)
        let all = [gateway, orders, payments, users]
        defer { for service in all { service.process.signal(SIGKILL) } }

        let bearer = [("Authorization", "Bearer " + (try await token(subject: "flow")))]
        let api = gateway.url + "/api"

        // Without a JWT the gateway refuses; straight to a service without the internal token, too.
        let anonymous = try await call(.GET, api + "/users")
        #expect(anonymous.status == 401)
        #expect(anonymous.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
        #expect(try await call(.GET, users.url + "/users").status == 401)

        let user = try await call(
            .POST, api + "/users", json: #"{"name":"Flow","email":"flow@example.com"}"#, headers: bearer)
        #expect(user.status == 201)
        let userID = try #require(user.json["id"] as? String)
        let orderBody =
            #"{"userId":"\#(userID)","items":[{"sku":"book","quantity":2,"unitPrice":1999},{"sku":"pen","quantity":1,"unitPrice":250}]}"#
        let order = try await call(.POST, api + "/orders", json: orderBody, headers: bearer)
        #expect(order.status == 201)
        #expect(order.json["total"] as? Int == 4248)
        #expect(order.json["status"] as? String == "confirmed")
        let orderID = try #require(order.json["id"] as? String)
        #expect(try await call(.GET, api + "/orders/\(orderID)", headers: bearer).json["id"] as? String == orderID)
        let unknownUser = try await call(
            .POST, api + "/orders", json: orderBody.replacingOccurrences(of: userID, with: UUID().uuidString),
            headers: bearer)
        #expect(unknownUser.status == 422)
        #expect(unknownUser.errorCode == "unknown-user")

        // Stop user-service: graceful, exit 0.
        #expect(await users.process.stop() == 0)
        var failures: [(Int, Duration, String?)] = []
        var lastMessage = ""
        // Until the breaker opens: 10 failures within its 10 s window. On a loaded machine the calls can be slower than
        // that, so the loop is bounded by count (60), not by the 12 calls an idle machine needs.
        for _ in 0..<60 {
            let start = ContinuousClock.now
            let answer = try await call(.POST, api + "/orders", json: orderBody, headers: bearer)
            failures.append((answer.status, ContinuousClock.now - start, answer.headers.first(name: "Retry-After")))
            lastMessage = (answer.json["error"] as? [String: Any])?["message"] as? String ?? ""
            if lastMessage.hasPrefix("user-service is failing; its circuit breaker is open") { break }
        }
        // order-service's breaker for user-service is open now; the gateway does not hold order-service's 503s (a
        // dependency is down) against order-service, whose other endpoints still work.
        #expect(lastMessage.hasPrefix("user-service is failing; its circuit breaker is open"), "\(lastMessage)")
        #expect(failures.allSatisfy { $0.0 == 503 && $0.2 != nil }, "\(failures)")
        let metrics = try await metricsText(orders.url)
        #expect(metrics.contains(#"circuit_breaker_state{upstream="user-service"} 1.0"#))
        // Once at least, and never closed: calls slowed by a loaded machine can outlast the reset timeout, so a trial
        // call (half-open) may fail and open it again.
        let opened = Self.counter(#"circuit_breaker_transitions_total{upstream="user-service",to="open"}"#, in: metrics)
        #expect((opened ?? 0) >= 1, "\(metrics)")
        #expect(metrics.contains(#"circuit_breaker_transitions_total{upstream="user-service",to="closed"} 0"#))
        let listed = try await call(.GET, api + "/orders?userId=\(userID)", headers: bearer)
        #expect((listed.json["items"] as? [Any])?.count == 1, "an order was stored while user-service was down")

        // Start it again: after the reset timeout the breaker lets trial calls through, and closes.
        try await users.restart()
        try await Task.sleep(for: .milliseconds(2100))
        for _ in 0..<3 {
            #expect(try await call(.POST, api + "/orders", json: orderBody, headers: bearer).status == 201)
        }
        let after = try await metricsText(orders.url)
        #expect(after.contains(#"circuit_breaker_state{upstream="user-service"} 0.0"#))
        // Closed once, through half-open: as often half-open as opened (each opening ends in one trial).
        let halfOpened = Self.counter(
            #"circuit_breaker_transitions_total{upstream="user-service",to="half-open"}"#, in: after)
        let openedInAll = Self.counter(
            #"circuit_breaker_transitions_total{upstream="user-service",to="open"}"#, in: after)
        #expect(halfOpened != nil && halfOpened == openedInAll, "\(after)")
        #expect(after.contains(#"circuit_breaker_transitions_total{upstream="user-service",to="closed"} 1"#))

        // Every line each service logged is JSON; request lines carry request and trace ids.
        for service in all {
            let lines = service.process.log.split(separator: "\n")
            #expect(!lines.isEmpty)
            for line in lines {
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object != nil, "\(service.product): not JSON: \(line.prefix(200))")
                if object?["message"] as? String == "Request" {
                    #expect(object?["request_id"] != nil && object?["trace_id"] != nil, "\(line.prefix(300))")
                }
            }
        }
        for service in all { #expect(await service.process.stop() == 0, "\(service.product)") }
    }

    /// SIGTERM: readiness turns false at once, the request in flight finishes, then the process exits 0.
    @Test func gracefulShutdown() async throws {
        let directory = try ExternalTool.temporaryDirectory("shutdown")
        defer { try? FileManager.default.removeItem(at: directory) }
        let payments = try await RunningService(
            "PaymentService", port: try ChildProcess.freePort(),
            environment: [
                "INTERNAL_TOKEN": "t", "PAYMENT_SIMULATE_DELAY": "1500ms", "SHUTDOWN_GRACE_PERIOD": "8s",
                "DATABASE_URL": "sqlite://" + directory.appendingPathComponent("p.sqlite").path,
            ],
            directory: directory)
        defer { payments.process.signal(SIGKILL) }
        let headers = [("X-Service-Token", "t"), ("X-Authenticated-Subject", "ada"), ("Idempotency-Key", "in-flight")]
        async let inFlight = call(
            .POST, payments.url + "/payments", json: #"{"orderId":"o","amount":100}"#, headers: headers)
        // In flight once its key is claimed: the payment's row exists, pending, while the processor takes 1.5 s. The
        // stored key is the caller's subject and its key.
        // Read from the service's own SQLite file, so the test waits on that event rather than a guess.
        let database = try ServiceDatabase(
            url: "sqlite://" + directory.appendingPathComponent("p.sqlite").path, password: nil, defaultFile: "",
            migrations: [], logger: Logger(label: "flow-tests"))
        var claimed = false
        for _ in 0..<500 where !claimed {
            let db = database.database(logger: Logger(label: "flow-tests"))
            claimed = (try? await ClaimedKey.query(on: db).filter(\.$key == "ada\nin-flight").count()) == 1
            if !claimed { try await Task.sleep(for: .milliseconds(10)) }
        }
        await database.shutdown()
        #expect(claimed, "the first request never claimed its key")
        payments.process.signal(SIGTERM)
        var ready = try await call(.GET, payments.url + "/ready")
        for _ in 0..<200 where ready.status != 503 {
            try await Task.sleep(for: .milliseconds(10))
            ready = try await call(.GET, payments.url + "/ready")
        }
        #expect(ready.status == 503)
        #expect(ready.json["reason"] as? String == "shutting down")
        let finished = try await inFlight
        #expect(finished.status == 201)
        #expect(finished.json["status"] as? String == "authorized")
        #expect(await payments.process.wait(timeout: .seconds(10)) == 0)
    }

    /// A required variable missing: the service stops at once and names it.
    @Test func aMissingVariableIsNamedAtStart() async throws {
        let directory = try ExternalTool.temporaryDirectory("config")
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = directory.appendingPathComponent("order.log").path
        let process = try ChildProcess(
            binaries.appendingPathComponent("OrderService").path,
            environment: ["INTERNAL_TOKEN": "t", "PORT": String(try ChildProcess.freePort())], logPath: log)
        #expect(await process.wait(timeout: .seconds(20)) == 78)
        #expect(process.log.contains("USER_SERVICE_URL is not set"))
    }

    /// `BINARY healthcheck URL`: exit 0 on 2xx, 1 otherwise, 64 on a bad argument.
    @Test func healthcheckSubcommand() async throws {
        let directory = try ExternalTool.temporaryDirectory("healthcheck")
        defer { try? FileManager.default.removeItem(at: directory) }
        let users = try await RunningService(
            "UserService", port: try ChildProcess.freePort(),
            environment: [
                "INTERNAL_TOKEN": "t", "DATABASE_URL": "sqlite://" + directory.appendingPathComponent("u.sqlite").path,
            ],
            directory: directory)
        defer { users.process.signal(SIGKILL) }
        func healthcheck(_ arguments: [String]) async throws -> Int32? {
            let process = try ChildProcess(
                binaries.appendingPathComponent("UserService").path, ["healthcheck"] + arguments, environment: [:],
                logPath: directory.appendingPathComponent("hc.log").path)
            return await process.wait(timeout: .seconds(20))
        }
        #expect(try await healthcheck([users.url + "/ready"]) == 0)
        #expect(try await healthcheck([users.url + "/missing"]) == 1)
        #expect(try await healthcheck(["http://127.0.0.1:\(try ChildProcess.freePort())/ready"]) == 1)
        #expect(try await healthcheck(["not-a-url"]) == 64)
    }

    /// user-service exporting to a loopback OTLP receiver that records what arrives, with `environment` added.
    func withTracedUsers(
        _ environment: [String: String], _ body: @escaping @Sendable (RunningService, Received) async throws -> Void
    ) async throws {
        let directory = try ExternalTool.temporaryDirectory("otlp")
        defer { try? FileManager.default.removeItem(at: directory) }
        let received = Received()
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 4 << 20)
            received.add(contentType: request.headers[.contentType] ?? "", body: Array(body.readableBytesView))
            return Response(status: .ok)
        }
        try await Application(router: router).test(.live) { collector in
            let users = try await RunningService(
                "UserService", port: try ChildProcess.freePort(),
                environment: [
                    "INTERNAL_TOKEN": "t",
                    "DATABASE_URL": "sqlite://" + directory.appendingPathComponent("u.sqlite").path,
                    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(collector.port!)",
                    "OTEL_BSP_SCHEDULE_DELAY": "100",
                ].merging(environment) { _, new in new },
                directory: directory)
            defer { users.process.signal(SIGKILL) }
            try await body(users, received)
        }
    }

    /// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans leave the process as OTLP/HTTP protobuf posts to
    /// `/v1/traces` (here a loopback receiver that records what arrives); without it, nothing is sent.
    @Test func spansAreExportedOverOTLPWhenAnEndpointIsSet() async throws {
        try await withTracedUsers([:]) { users, received in
            _ = try await call(.GET, users.url + "/users", headers: [("X-Service-Token", "t")])
            // Bounded wait for the batch processor: 600 × 100 ms.
            for _ in 0..<600 where received.posts.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
            #expect(!received.posts.isEmpty, "no OTLP export arrived:\n\(users.process.log.suffix(1500))")
            #expect(received.posts.allSatisfy { $0.contentType == "application/x-protobuf" && $0.bytes > 0 })
            #expect(await users.process.stop() == 0)
        }
    }

    /// Head sampling is parent-based: with a ratio of 0 a request without a `traceparent` exports nothing, and one
    /// whose caller sampled it is exported.
    @Test func samplingFollowsTheParentAndTheRatio() async throws {
        try await withTracedUsers(["OTEL_TRACES_SAMPLER_ARG": "0"]) { users, received in
            // Over a raw socket: the test process's own HTTP client may carry a sampled traceparent of its own (when
            // another suite has bootstrapped tracing in this process), which would make these children, not roots.
            try await offThePool {
                for _ in 0..<5 {
                    let connection = try RawConnection(port: users.port)
                    connection.send("GET /users HTTP/1.1\r\nHost: x\r\nX-Service-Token: t\r\nConnection: close\r\n\r\n")
                    _ = connection.readUntilClosed(timeout: .seconds(10))
                }
            }
            // The batch processor exports every 100 ms: 2 s is twenty chances for an unsampled span to leave.
            try await Task.sleep(for: .seconds(2))
            // Only spans of `/users` count: the harness's readiness probes (`/ready`) go out with the test process's
            // HTTP client, which carries a sampled traceparent once another suite has bootstrapped tracing here.
            #expect(!received.mention("/users"), "a root span was exported at ratio 0")
            // Also over a raw socket: the test process's HTTP client injects its own context's traceparent in place
            // of this one, and that context is unsampled when tracing was bootstrapped here without an exporter.
            let parent = "00-" + String(repeating: "ab", count: 16) + "-" + String(repeating: "cd", count: 8) + "-01"
            try await offThePool {
                let connection = try RawConnection(port: users.port)
                connection.send(
                    "GET /users HTTP/1.1\r\nHost: x\r\nX-Service-Token: t\r\ntraceparent: \(parent)\r\n"
                        + "Connection: close\r\n\r\n")
                _ = connection.readUntilClosed(timeout: .seconds(10))
            }
            for _ in 0..<600 where !received.mention("/users") { try await Task.sleep(for: .milliseconds(100)) }
            #expect(received.mention("/users"), "a span whose parent was sampled was not exported")
        }
    }

    final class Received: @unchecked Sendable {
        private let lock = NSLock()
        private var _posts: [(contentType: String, body: [UInt8])] = []
        var posts: [(contentType: String, bytes: Int)] {
            lock.withLock { _posts.map { ($0.contentType, $0.body.count) } }
        }
        func add(contentType: String, body: [UInt8]) { lock.withLock { _posts.append((contentType, body)) } }
        /// Whether any export holds `text` (a span's name or route, as UTF-8 inside the protobuf).
        func mention(_ text: String) -> Bool {
            let needle = Array(text.utf8)
            return lock.withLock {
                _posts.contains { post in
                    post.body.indices.contains { post.body[$0...].starts(with: needle) }
                }
            }
        }
    }

    /// The value of the Prometheus sample `name` (with its labels) in `text`.
    static func counter(_ name: String, in text: String) -> Int? {
        text.split(separator: "\n").lazy.compactMap { line -> Int? in
            guard line.hasPrefix(name + " ") else { return nil }
            return Double(line.dropFirst(name.count + 1)).map { Int($0) }
        }.first
    }

    func metricsText(_ base: String) async throws -> String {
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: base + "/metrics"), timeout: .seconds(5))
        return String(buffer: try await response.body.collect(upTo: 4 << 20))
    }
}

/// A payment's idempotency claim, as payment-service stores it: what `gracefulShutdown` waits for.
final class ClaimedKey: Model, @unchecked Sendable {
    static let schema = "payments"
    @ID(key: .id) var id: UUID?
    @OptionalField(key: "idempotency_key") var key: String?
}
