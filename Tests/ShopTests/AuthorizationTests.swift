import AsyncHTTPClient
import FluentKit
import Foundation
import Logging
import NIOHTTP1
import OrchestrateTestSupport
import ServiceKit
import Testing

/// The shop as processes on loopback sockets: user, payment and order services and the gateway, each with its own
/// SQLite file in `directory`.
final class Shop: @unchecked Sendable {
    let directory: URL
    let users: RunningService
    let payments: RunningService
    let orders: RunningService
    let gateway: RunningService
    var all: [RunningService] { [gateway, orders, payments, users] }
    var api: String { gateway.url + "/api" }

    init(_ name: String, payment: [String: String] = [:], order: [String: String] = [:]) async throws {
        directory = try ExternalTool.temporaryDirectory(name)
        let common = ["INTERNAL_TOKEN": "shop-token", "LOG_LEVEL": "info", "SHUTDOWN_GRACE_PERIOD": "3s"]
        let directory = directory
        func database(_ name: String) -> [String: String] {
            ["DATABASE_URL": "sqlite://" + directory.appendingPathComponent("\(name).sqlite").path]
        }
        users = try await RunningService(
            "UserService", port: try ChildProcess.freePort(),
            environment: common.merging(database("users")) { a, _ in a },
            directory: directory)
        payments = try await RunningService(
            "PaymentService", port: try ChildProcess.freePort(),
            environment: common.merging(database("payments")) { a, _ in a }.merging(payment) { _, new in new },
            directory: directory)
        orders = try await RunningService(
            "OrderService", port: try ChildProcess.freePort(),
            environment: common.merging(database("orders")) { a, _ in a }.merging([
                "USER_SERVICE_URL": users.url, "PAYMENT_SERVICE_URL": payments.url,
            ]) { a, _ in a }.merging(order) { _, new in new },
            directory: directory)
        gateway = try await RunningService(
            "APIGateway", port: try ChildProcess.freePort(),
            environment: common.merging([
                "ROUTES_FILE": ExternalTool.packageRoot.appendingPathComponent("gateway/routes.json").path,
                "JWT_SECRET": jwtSecret, "USER_SERVICE_URL": users.url, "ORDER_SERVICE_URL": orders.url,
            ]) { a, _ in a },
            directory: directory)
    }

    func stop() {
        for service in all { service.process.signal(SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// payment-service's rows, read from its own SQLite file.
    func storedPayments() async throws -> [StoredPayment] {
        let database = try ServiceDatabase(
            url: "sqlite://" + directory.appendingPathComponent("payments.sqlite").path, password: nil,
            defaultFile: "", migrations: [], logger: Logger(label: "shop-tests"))
        defer { Task { await database.shutdown() } }
        return try await StoredPayment.query(on: database.database(logger: Logger(label: "shop-tests"))).all()
    }
}

/// A payment as payment-service stores it.
final class StoredPayment: Model, @unchecked Sendable {
    static let schema = "payments"
    @ID(key: .id) var id: UUID?
    @OptionalField(key: "idempotency_key") var key: String?
    @Field(key: "order_id") var orderID: String
    @Field(key: "status") var status: String
}

func bearer(_ subject: String, roles: [String]? = nil) async throws -> [(String, String)] {
    [("Authorization", "Bearer " + (try await token(subject: subject, roles: roles)))]
}

@Suite(.timeLimit(.minutes(5)), .serialized) struct AuthorizationTests {
    /// Two valid tokens, alice and bob, through the gateway: each reads and spends only what is theirs; another's is
    /// a 404; an order on another's account is refused before any payment; an admin reads everything; headers a
    /// client forges never reach a service.
    @Test func aSubjectReadsAndSpendsOnlyItsOwn() async throws {
        let shop = try await Shop("authz")
        defer { shop.stop() }
        let alice = try await bearer("alice")
        let bob = try await bearer("bob")
        let admin = try await bearer("root", roles: ["admin"])

        let aliceUser = try await call(
            .POST, shop.api + "/users", json: #"{"name":"Alice","email":"alice@example.com"}"#, headers: alice)
        #expect(aliceUser.status == 201)
        let aliceID = try #require(aliceUser.json["id"] as? String)
        let second = try await call(
            .POST, shop.api + "/users", json: #"{"name":"Alice 2","email":"alice2@example.com"}"#, headers: alice)
        #expect(second.status == 409)
        #expect(second.errorCode == "profile-exists")
        #expect(second.headers.first(name: "Location") == "/users/\(aliceID)")
        let bobUser = try await call(
            .POST, shop.api + "/users", json: #"{"name":"Bob","email":"bob@example.com"}"#, headers: bob)
        let bobID = try #require(bobUser.json["id"] as? String)

        // Reading: one's own, never another's (404, as for an id that does not exist).
        #expect(try await call(.GET, shop.api + "/users/\(aliceID)", headers: alice).status == 200)
        let peek = try await call(.GET, shop.api + "/users/\(aliceID)", headers: bob)
        #expect(peek.status == 404)
        #expect(peek.json["email"] == nil)
        let missing = try await call(.GET, shop.api + "/users/\(UUID().uuidString.lowercased())", headers: bob)
        #expect(peek.errorCode == missing.errorCode)
        let bobsList = try await call(.GET, shop.api + "/users", headers: bob)
        #expect((bobsList.json["items"] as? [[String: Any]])?.map { $0["id"] as? String } == [bobID])
        #expect(try await call(.GET, shop.api + "/users/me", headers: bob).json["id"] as? String == bobID)

        // Forged caller headers are dropped by the gateway: bob stays bob.
        let forged = try await call(
            .GET, shop.api + "/users/\(aliceID)",
            headers: bob + [("X-Authenticated-Subject", "alice"), ("X-Authenticated-Roles", "admin")])
        #expect(forged.status == 404)
        // Straight to the service without the service token, a claimed subject gets nothing.
        let direct = try await call(
            .GET, shop.users.url + "/users/\(aliceID)", headers: [("X-Authenticated-Subject", "alice")])
        #expect(direct.status == 401)
        // Roles that are not plain words are not passed on, so none of them makes an admin.
        let hostile = try await bearer("mallory", roles: ["admin,x", "admin\r\nX-Evil: 1", " admin", "ad min"])
        #expect(try await call(.GET, shop.api + "/users/\(aliceID)", headers: hostile).status == 404)

        // Spending: an order on alice's account by bob is refused before any payment.
        let orderFor: (String) -> String = { user in
            #"{"userId":"\#(user)","items":[{"sku":"book","quantity":1,"unitPrice":1999}]}"#
        }
        let theft = try await call(.POST, shop.api + "/orders", json: orderFor(aliceID), headers: bob)
        #expect(theft.status == 422)
        #expect(theft.errorCode == "unknown-user")
        #expect(try await shop.storedPayments().isEmpty, "a payment was authorized for bob's order on alice's account")

        let order = try await call(.POST, shop.api + "/orders", json: orderFor(aliceID), headers: alice)
        #expect(order.status == 201)
        let orderID = try #require(order.json["id"] as? String)
        #expect(try await call(.GET, shop.api + "/orders/\(orderID)", headers: alice).status == 200)
        #expect(try await call(.GET, shop.api + "/orders/\(orderID)", headers: bob).status == 404)
        let bobLists = try await call(.GET, shop.api + "/orders?userId=\(aliceID)", headers: bob)
        #expect((bobLists.json["items"] as? [Any])?.count == 0)
        // The payment is alice's: bob cannot read it even knowing its id (payment-service directly, as a service
        // acting for bob would).
        let paymentID = try #require(order.json["paymentId"] as? String)
        let asBob = try await call(
            .GET, shop.payments.url + "/payments/\(paymentID)",
            headers: [("X-Service-Token", "shop-token"), ("X-Authenticated-Subject", "bob")])
        #expect(asBob.status == 404)
        let asAlice = try await call(
            .GET, shop.payments.url + "/payments/\(paymentID)",
            headers: [("X-Service-Token", "shop-token"), ("X-Authenticated-Subject", "alice")])
        #expect(asAlice.status == 200)

        // An admin reads and lists everything.
        #expect(try await call(.GET, shop.api + "/users/\(aliceID)", headers: admin).status == 200)
        let everyone = try await call(.GET, shop.api + "/users", headers: admin)
        #expect((everyone.json["items"] as? [Any])?.count == 2)
        let adminLists = try await call(.GET, shop.api + "/orders?userId=\(aliceID)", headers: admin)
        #expect((adminLists.json["items"] as? [Any])?.count == 1)
        for service in shop.all { #expect(await service.process.stop() == 0, "\(service.product)") }
    }

    /// `Idempotency-Key` on `POST /orders`: a retry returns the same order and never authorizes a second payment;
    /// the key belongs to its subject; a key reused for another order is refused.
    @Test func aRetriedOrderIsTheSameOrderAndOnePayment() async throws {
        let shop = try await Shop("order-key")
        defer { shop.stop() }
        let alice = try await bearer("alice")
        let user = try await call(
            .POST, shop.api + "/users", json: #"{"name":"Alice","email":"alice@example.com"}"#, headers: alice)
        let userID = try #require(user.json["id"] as? String)
        let body = #"{"userId":"\#(userID)","items":[{"sku":"book","quantity":2,"unitPrice":500}]}"#
        let key = [("Idempotency-Key", "cart-42")]
        let first = try await call(.POST, shop.api + "/orders", json: body, headers: alice + key)
        #expect(first.status == 201)
        let again = try await call(.POST, shop.api + "/orders", json: body, headers: alice + key)
        #expect(again.status == 201)
        #expect(again.json["id"] as? String == first.json["id"] as? String)
        #expect(again.headers.first(name: "Idempotent-Replayed") == "true")
        #expect(try await shop.storedPayments().count == 1)
        let other = body.replacingOccurrences(of: #""quantity":2"#, with: #""quantity":3"#)
        let reused = try await call(.POST, shop.api + "/orders", json: other, headers: alice + key)
        #expect(reused.status == 422)
        #expect(reused.errorCode == "idempotency-key-reused")
        let listed = try await call(.GET, shop.api + "/orders?userId=\(userID)", headers: alice)
        #expect((listed.json["items"] as? [Any])?.count == 1)
    }

    /// order-service times out on the payment (the processor is slower than `UPSTREAM_TIMEOUT`), and payment-service
    /// authorizes after it gave up. With no key the order is cancelled at once; with a key it stays pending until
    /// the reconciler cancels it. Either way the money ends voided and no order is confirmed.
    @Test func aPaymentForAnOrderThatTimedOutIsVoided() async throws {
        let shop = try await Shop(
            "order-timeout", payment: ["PAYMENT_SIMULATE_DELAY": "1500ms"],
            order: ["UPSTREAM_TIMEOUT": "500ms", "ORDER_PENDING_TIMEOUT": "3s", "ORDER_RECONCILE_INTERVAL": "200ms"])
        defer { shop.stop() }
        let alice = try await bearer("alice")
        let user = try await call(
            .POST, shop.api + "/users", json: #"{"name":"Alice","email":"alice@example.com"}"#, headers: alice)
        let userID = try #require(user.json["id"] as? String)
        let body = #"{"userId":"\#(userID)","items":[{"sku":"book","quantity":1,"unitPrice":700}]}"#
        let unkeyed = try await call(.POST, shop.api + "/orders", json: body, headers: alice)
        #expect(unkeyed.status == 503)
        let keyed = try await call(.POST, shop.api + "/orders", json: body, headers: alice + [("Idempotency-Key", "k")])
        #expect(keyed.status == 503)
        // Bounded: 600 × 100 ms for the processor to finish and the reconciler to cancel.
        var payments: [StoredPayment] = []
        var statuses: [String] = []
        for _ in 0..<600 {
            payments = try await shop.storedPayments()
            let listed = try await call(.GET, shop.api + "/orders?userId=\(userID)", headers: alice)
            statuses = (listed.json["items"] as? [[String: Any]] ?? []).compactMap { $0["status"] as? String }
            if payments.count == 2, payments.allSatisfy({ $0.status == "voided" }),
                statuses == ["cancelled", "cancelled"]
            {
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(payments.map(\.status) == ["voided", "voided"], "\(shop.orders.process.log.suffix(2000))")
        #expect(statuses == ["cancelled", "cancelled"])
        // The key's order is cancelled for good: a retry says so rather than charge again.
        let retry = try await call(.POST, shop.api + "/orders", json: body, headers: alice + [("Idempotency-Key", "k")])
        #expect(retry.status == 409)
        #expect(retry.errorCode == "order-cancelled")
        #expect(try await shop.storedPayments().count == 2)
    }

    /// order-service killed while the payment is being authorized: the payment completes for an order that was never
    /// confirmed; the restarted order-service's reconciler voids it.
    @Test func aPaymentLeftByAKilledOrderServiceIsVoided() async throws {
        let shop = try await Shop(
            "order-killed", payment: ["PAYMENT_SIMULATE_DELAY": "1s"],
            order: ["ORDER_PENDING_TIMEOUT": "2s", "ORDER_RECONCILE_INTERVAL": "200ms"])
        defer { shop.stop() }
        let alice = try await bearer("alice")
        let user = try await call(
            .POST, shop.api + "/users", json: #"{"name":"Alice","email":"alice@example.com"}"#, headers: alice)
        let userID = try #require(user.json["id"] as? String)
        let body = #"{"userId":"\#(userID)","items":[{"sku":"book","quantity":1,"unitPrice":900}]}"#
        async let placing = try? call(.POST, shop.api + "/orders", json: body, headers: alice)
        // Kill it once payment-service holds the claim (the row exists, pending): bounded, 300 × 10 ms.
        var claimed = false
        for _ in 0..<3000 where !claimed {
            claimed = try await !shop.storedPayments().isEmpty
            if !claimed { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(claimed)
        shop.orders.process.signal(SIGKILL)
        _ = await shop.orders.process.wait(timeout: .seconds(10))
        _ = await placing
        // The processor finishes: authorized, for an order that is still pending.
        var status = ""
        for _ in 0..<600 where status != "authorized" {
            status = try await shop.storedPayments().first?.status ?? ""
            if status != "authorized" { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(status == "authorized")
        try await shop.orders.restart()
        for _ in 0..<600 where status != "voided" {
            status = try await shop.storedPayments().first?.status ?? ""
            if status != "voided" { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(status == "voided", "\(shop.orders.process.log.suffix(2000))")
        let listed = try await call(.GET, shop.api + "/orders?userId=\(userID)", headers: alice)
        #expect((listed.json["items"] as? [[String: Any]])?.compactMap { $0["status"] as? String } == ["cancelled"])
    }

    /// payment-service killed while its processor call is in flight leaves the key's claim pending. A retry within
    /// `PAYMENT_CLAIM_TIMEOUT` is told to wait (409); after it, the retry takes the claim over and drives it to a
    /// result, once.
    @Test func aClaimLeftByAKilledPaymentServiceIsDrivenToAResult() async throws {
        let shop = try await Shop(
            "claim-killed", payment: ["PAYMENT_SIMULATE_DELAY": "1s", "PAYMENT_CLAIM_TIMEOUT": "2s"])
        defer { shop.stop() }
        let headers = [
            ("X-Service-Token", "shop-token"), ("X-Authenticated-Subject", "ada"), ("Idempotency-Key", "pay-1"),
        ]
        let body = #"{"orderId":"o-1","amount":300}"#
        async let first = try? call(.POST, shop.payments.url + "/payments", json: body, headers: headers)
        var claimed = false
        for _ in 0..<3000 where !claimed {
            claimed = try await !shop.storedPayments().isEmpty
            if !claimed { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(claimed)
        shop.payments.process.signal(SIGKILL)
        _ = await shop.payments.process.wait(timeout: .seconds(10))
        _ = await first
        try await shop.payments.restart()
        #expect(try await shop.storedPayments().map(\.status) == ["pending"])
        let early = try await call(.POST, shop.payments.url + "/payments", json: body, headers: headers)
        #expect(early.status == 409)
        // Bounded: 600 × 100 ms past the 2 s claim timeout.
        var answer = early
        for _ in 0..<600 where answer.status == 409 {
            try await Task.sleep(for: .milliseconds(100))
            answer = try await call(.POST, shop.payments.url + "/payments", json: body, headers: headers)
        }
        #expect(answer.status == 201)
        #expect(answer.json["status"] as? String == "authorized")
        let replay = try await call(.POST, shop.payments.url + "/payments", json: body, headers: headers)
        #expect(replay.json["id"] as? String == answer.json["id"] as? String)
        #expect(try await shop.storedPayments().map(\.status) == ["authorized"])
    }
}
