import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import OrchestrateTestSupport
import PaymentServiceCore
import ServiceKit
import Testing
import UserServiceCore

@testable import OrderServiceCore

@Suite(.timeLimit(.minutes(5)), .serialized) struct OrderServiceTests {
    /// order-service at router level, in front of real user- and payment-services on loopback.
    func withOrders(
        _ database: TestDatabase, payment: [String: String] = [:],
        _ body: @escaping @Sendable (any TestClientProtocol, _ users: any TestClientProtocol) async throws -> Void
    ) async throws {
        try await withService(UserService.definition, database: database, setup: .live, routes: UserService.routes) {
            users, _ in
            try await withService(
                PaymentService.definition, database: database, environment: payment, setup: .live,
                routes: PaymentService.routes
            ) { payments, _ in
                try await withService(
                    OrderService.definition, database: database,
                    environment: [
                        "USER_SERVICE_URL": "http://127.0.0.1:\(users.port!)",
                        // Generous: these tests are about what is stored, and CI runs them beside the whole suite on two
                        // cores (a 5 s limit once answered 503 there). Timeouts have their own test below.
                        "PAYMENT_SERVICE_URL": "http://127.0.0.1:\(payments.port!)", "UPSTREAM_TIMEOUT": "30s",
                    ],
                    routes: OrderService.routes
                ) { orders, _ in try await body(orders, users) }
            }
        }
    }

    func newUser(_ users: any TestClientProtocol) async throws -> String {
        let response = try await users.execute(
            uri: "/users", method: .post, headers: newSubjectHeaders,
            body: body(#"{"name":"Buyer","email":"buyer-\#(unique())@example.com"}"#))
        return try #require(response.json["id"] as? String)
    }

    @Test(
        .requires("PostgreSQL (ORCHESTRATE_TEST_POSTGRES)", TestDatabase.postgresIsAvailable),
        arguments: TestDatabase.allCases) func anOrderForARealUserIsPaidAndStored(database: TestDatabase) async throws
    {
        try await withOrders(database) { orders, users in
            let userID = try await newUser(users)
            let created = try await orders.execute(
                uri: "/orders", method: .post, headers: internalHeaders,
                body: body(
                    #"{"userId":"\#(userID)","items":[{"sku":"a","quantity":3,"unitPrice":333},{"sku":"b","quantity":1,"unitPrice":1}]}"#
                ))
            #expect(created.status == .created, "\(created.json)")
            #expect(created.json["total"] as? Int == 1000)
            let id = try #require(created.json["id"] as? String)
            let fetched = try await orders.execute(uri: "/orders/\(id)", method: .get, headers: internalHeaders)
            #expect(fetched.json["paymentId"] as? String == created.json["paymentId"] as? String)
            #expect((fetched.json["items"] as? [[String: Any]])?.count == 2)
            let listed = try await orders.execute(
                uri: "/orders?userId=\(userID)", method: .get, headers: internalHeaders)
            #expect((listed.json["items"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
        }
    }

    @Test func anUnknownUserIs422AndADeclineIs402() async throws {
        try await withOrders(.sqlite, payment: ["PAYMENT_SIMULATE": "decline"]) { orders, users in
            let unknown = try await orders.execute(
                uri: "/orders", method: .post, headers: internalHeaders,
                body: body(#"{"userId":"\#(UUID().uuidString)","items":[{"sku":"a","quantity":1,"unitPrice":100}]}"#))
            #expect(unknown.status == .unprocessableContent)
            #expect(unknown.errorCode == "unknown-user")
            let userID = try await newUser(users)
            let declined = try await orders.execute(
                uri: "/orders", method: .post, headers: internalHeaders,
                body: body(#"{"userId":"\#(userID)","items":[{"sku":"a","quantity":1,"unitPrice":100}]}"#))
            #expect(declined.status.code == 402)
            #expect(declined.errorCode == "payment-declined")
            let listed = try await orders.execute(
                uri: "/orders?userId=\(userID)", method: .get, headers: internalHeaders)
            #expect((listed.json["items"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func validationAndMoney() async throws {
        try await withOrders(.sqlite) { orders, _ in
            let response = try await orders.execute(
                uri: "/orders", method: .post, headers: internalHeaders,
                body: body(#"{"userId":"nope","items":[{"sku":"","quantity":0,"unitPrice":-1}]}"#))
            #expect(response.status == .badRequest)
            #expect(response.errorFields == ["userId", "items[0].sku", "items[0].quantity", "items[0].unitPrice"])
            let floating = try await orders.execute(
                uri: "/orders", method: .post, headers: internalHeaders,
                body: body(#"{"userId":"\#(UUID().uuidString)","items":[{"sku":"a","quantity":1,"unitPrice":19.99}]}"#))
            #expect(floating.errorFields == ["items[0].unitPrice"])
            let overflow = try await orders.execute(
                uri: "/orders", method: .post, headers: internalHeaders,
                body: body(
                    #"{"userId":"\#(UUID().uuidString)","items":[{"sku":"a","quantity":10000,"unitPrice":\#(Int.max / 2)}]}"#
                ))
            #expect(overflow.errorFields == ["items"])
            let noUser = try await orders.execute(uri: "/orders", method: .get, headers: internalHeaders)
            #expect(noUser.errorFields == ["userId"])
        }
    }

    @Test func aDownUpstreamIs503FastAndStoresNothing() async throws {
        let closed = try ChildProcess.freePort()
        try await withService(
            OrderService.definition,
            environment: [
                "USER_SERVICE_URL": "http://127.0.0.1:\(closed)", "PAYMENT_SERVICE_URL": "http://127.0.0.1:\(closed)",
                "UPSTREAM_TIMEOUT": "1s",
            ],
            routes: OrderService.routes
        ) { orders, _ in
            let userID = UUID().uuidString
            let response = try await orders.execute(
                uri: "/orders", method: .post, headers: internalHeaders,
                body: body(#"{"userId":"\#(userID)","items":[{"sku":"a","quantity":1,"unitPrice":100}]}"#))
            #expect(response.status == .serviceUnavailable)
            #expect(response.errorCode == "upstream-unavailable")
            #expect(response.headers[.retryAfter] != nil)
            let listed = try await orders.execute(
                uri: "/orders?userId=\(userID)", method: .get, headers: internalHeaders)
            #expect((listed.json["items"] as? [Any])?.isEmpty == true)
        }
    }
}
