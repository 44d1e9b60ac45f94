import FluentKit
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import OrchestrateContract
import OrchestrateTestSupport
import ServiceKit
import Testing

@testable import PaymentServiceCore

@Suite(.timeLimit(.minutes(5)), .serialized) struct PaymentServiceTests {
    func withPayments(
        _ database: TestDatabase = .sqlite, environment: [String: String] = [:],
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        try await withService(
            PaymentService.definition, database: database, environment: environment, routes: PaymentService.routes
        ) { client, _ in try await body(client) }
    }

    func pay(_ client: any TestClientProtocol, order: String, amount: Int, key: String?) async throws -> TestResponse {
        var headers = internalHeaders
        if let key { headers[HTTPField.Name("Idempotency-Key")!] = key }
        return try await client.execute(
            uri: "/payments", method: .post, headers: headers,
            body: body(#"{"orderId":"\#(order)","amount":\#(amount),"currency":"EUR"}"#))
    }

    @Test(
        .requires("PostgreSQL (ORCHESTRATE_TEST_POSTGRES)", TestDatabase.postgresIsAvailable),
        arguments: TestDatabase.allCases) func aRetryWithTheSameKeyReturnsTheFirstResult(database: TestDatabase)
        async throws
    {
        try await withPayments(database) { client in
            let order = "order-\(unique())"
            let key = "key-\(unique())"
            let first = try await pay(client, order: order, amount: 1999, key: key)
            #expect(first.status == .created)
            #expect(first.json["status"] as? String == "authorized")
            #expect(first.json["processor"] as? String == "simulated")
            #expect(first.json["amount"] as? Int == 1999)
            let again = try await pay(client, order: order, amount: 1999, key: key)
            #expect(again.status == .created)
            #expect(again.json["id"] as? String == first.json["id"] as? String)
            #expect(again.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            let fetched = try await client.execute(
                uri: "/payments/\(try #require(first.json["id"] as? String))", method: .get, headers: internalHeaders)
            #expect(fetched.json["status"] as? String == "authorized")
        }
    }

    @Test(
        .requires("PostgreSQL (ORCHESTRATE_TEST_POSTGRES)", TestDatabase.postgresIsAvailable),
        arguments: TestDatabase.allCases) func concurrentRetriesChargeOnce(database: TestDatabase) async throws
    {
        // A processor slow enough that every retry arrives while the first is in flight, even on a loaded CI machine
        // (500 ms once let all eight finish one after another there).
        try await withService(
            PaymentService.definition, database: database, environment: ["PAYMENT_SIMULATE_DELAY": "3s"],
            routes: PaymentService.routes
        ) { client, runtime in
            let order = "order-\(unique())"
            let key = "key-\(unique())"
            let responses = try await withThrowingTaskGroup(of: TestResponse.self) { group in
                for _ in 0..<8 { group.addTask { try await pay(client, order: order, amount: 500, key: key) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = responses.filter { $0.status == .created }
            // The others met the first one in flight (409 with Retry-After) or, on a loaded machine, arrived after it
            // finished and were told its result (201 with Idempotent-Replayed): never a second charge.
            let replayed = HTTPField.Name("Idempotent-Replayed")!
            #expect(
                responses.allSatisfy {
                    $0.status == .created || ($0.status == .conflict && $0.headers[.retryAfter] == "1")
                })
            #expect(created.filter { $0.headers[replayed] == nil }.count == 1, "exactly one request was charged")
            #expect(Set(created.compactMap { $0.json["id"] as? String }).count == 1, "one payment")
            #expect(
                responses.contains { $0.status == .conflict }, "no retry met the first in flight: the race never ran")
            // One payment row, so the processor was asked once.
            let db = try runtime.requireDatabase().database(logger: runtime.logger)
            #expect(try await PaymentModel.query(on: db).filter(\.$orderID == order).count() == 1)
            let replay = try await pay(client, order: order, amount: 500, key: key)
            #expect(replay.json["id"] as? String == created.first?.json["id"] as? String)
            #expect(replay.headers[replayed] == "true")
        }
    }

    @Test func aKeyReusedForAnotherPaymentIsRefused() async throws {
        try await withPayments { client in
            let key = "key-\(unique())"
            #expect(try await pay(client, order: "o1", amount: 100, key: key).status == .created)
            let reused = try await pay(client, order: "o1", amount: 200, key: key)
            #expect(reused.status == .unprocessableContent)
            #expect(reused.errorCode == "idempotency-key-reused")
        }
    }

    @Test func injectedFailures() async throws {
        try await withPayments(environment: ["PAYMENT_SIMULATE": "decline"]) { client in
            let declined = try await pay(client, order: "o2", amount: 100, key: "k-\(unique())")
            #expect(declined.status == .created)
            #expect(declined.json["status"] as? String == "declined")
        }
        let key = "k-\(unique())"
        try await withPayments(environment: ["PAYMENT_SIMULATE": "error"]) { client in
            let down = try await pay(client, order: "o3", amount: 100, key: key)
            #expect(down.status == .serviceUnavailable)
            #expect(down.errorCode == "processor-unavailable")
            #expect(down.headers[.retryAfter] == "1")
            // Nothing was charged, so the key is free again: the retry is a real attempt (and fails the same way).
            #expect(try await pay(client, order: "o3", amount: 100, key: key).errorCode == "processor-unavailable")
        }
        try await withPayments(environment: ["PAYMENT_APPROVAL_LIMIT": "1000"]) { client in
            let over = try await pay(client, order: "o4", amount: 1001, key: nil)
            #expect(over.json["status"] as? String == "declined")
            #expect(over.json["declineReason"] as? String == "amount over the approval limit")
        }
    }

    @Test func validation() async throws {
        try await withPayments { client in
            let response = try await client.execute(
                uri: "/payments", method: .post, headers: internalHeaders,
                body: body(#"{"orderId":"","amount":-5,"currency":"usd"}"#))
            #expect(response.status == .badRequest)
            #expect(response.errorFields == ["orderId", "amount", "currency"])
            let fractional = try await client.execute(
                uri: "/payments", method: .post, headers: internalHeaders, body: body(#"{"orderId":"o","amount":12.5}"#)
            )
            #expect(fractional.status == .badRequest)
            #expect(fractional.errorFields == ["amount"])
        }
    }

    @Test func badConfigurationNamesTheVariable() throws {
        #expect(throws: ServiceKitError.self) { try SimulatedProcessor(environment: ["PAYMENT_SIMULATE": "maybe"]) }
        do {
            _ = try SimulatedProcessor(environment: ["PAYMENT_SIMULATE_DELAY": "soon"])
            Issue.record("accepted a bad delay")
        } catch {
            #expect(error.subject == "PAYMENT_SIMULATE_DELAY")
        }
    }
}
