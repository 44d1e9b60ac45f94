import FluentKit
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceEvents
import ServiceKit

/// Placing one order, and cancelling the ones left pending: the steps of `POST /orders` in the order money demands.
///
/// 1. The user must exist for the caller (user-service answers 404 for another subject's), or the answer is 422
///    before any payment is asked for.
/// 2. The order is stored `pending` (with the caller's key, when it sent one).
/// 3. The payment is authorized with the order's id as its key, so asking again never charges again.
/// 4. `pending` → `confirmed` and `order.created` commit together; only the step whose conditional update took
///    effect publishes.
///
/// A failure between 3 and 4 leaves the order pending: a retry with the same key drives it on, and otherwise the
/// reconciler cancels it and voids the payment.
struct OrderPlacement {
    let runtime: ServiceRuntime
    let caller: Caller
    let logger: Logger
    let pendingTimeout: Duration

    /// `ORDER_PENDING_TIMEOUT`: how long an order may stay pending before the reconciler cancels it. Longer than any
    /// placement takes (the user and payment calls, each within `UPSTREAM_TIMEOUT`).
    static func pendingTimeout(_ environment: [String: String]) throws(ServiceKitError) -> Duration {
        guard let text = environment["ORDER_PENDING_TIMEOUT"] else { return .seconds(60) }
        guard let timeout = ServiceRuntime.parseDuration(text), timeout > .zero else {
            throw ServiceKitError.configuration(
                "ORDER_PENDING_TIMEOUT", "must be a positive duration such as 60s, not \"\(text)\"")
        }
        return timeout
    }

    func place(userID: UUID, items: [OrderItem], total: Int, key: String?) async throws -> Response {
        let db = try runtime.requireDatabase().database(logger: logger)
        let scopedKey = key.map { caller.subject + "\n" + $0 }
        let fingerprint = try Self.fingerprint(userID: userID, items: items)
        var order: OrderModel
        if let scopedKey,
            let existing = try await OrderModel.query(on: db).filter(\.$idempotencyKey == scopedKey)
                .first()
        {
            if let answer = try Self.settled(existing, fingerprint: fingerprint) { return answer }
            order = existing
        } else {
            try await requireUser(userID)
            order = OrderModel(
                id: UUID(), subject: caller.subject, userID: userID, items: items, total: total, currency: "USD",
                idempotencyKey: scopedKey, fingerprint: fingerprint)
            do {
                try await order.create(on: db)
            } catch {
                // The same key a moment ago.
                guard (error as? any DatabaseError)?.isConstraintFailure == true, let scopedKey,
                    let existing = try await OrderModel.query(on: db).filter(\.$idempotencyKey == scopedKey).first()
                else { throw error }
                if let answer = try Self.settled(existing, fingerprint: fingerprint) { return answer }
                order = existing
            }
        }
        let orderID = order.id!

        let payment: ServiceClient.Response
        do {
            payment = try await OrderService.call(stage: "the order is pending") {
                try await runtime.client.send(
                    .post, to: "payment-service", path: "/payments",
                    json: PaymentRequest(
                        orderId: orderID.uuidString.lowercased(), amount: order.total, currency: "USD"),
                    headers: [("Idempotency-Key", order.paymentKey)])
            }
        } catch {
            // With no key the client cannot drive it on: cancel it now (the reconciler will, if this fails).
            if key == nil { try? await Self.cancel(order, runtime: runtime, logger: logger) }
            throw error
        }
        if payment.status == 409 {
            var error = ServiceError(
                .conflict, code: "request-in-progress",
                message: "this order is being placed by another request with the same Idempotency-Key; retry shortly")
            error.headers[.retryAfter] = "1"
            throw error
        }
        guard payment.status == 201, let authorization = try? payment.decode(as: PaymentAnswer.self) else {
            throw ServiceError.unavailable(
                "payment-service answered \(payment.status); the order is pending", retryAfterSeconds: 1)
        }
        switch authorization.status {
        case "authorized": break
        case "declined":
            // No money moved: the order goes, so the same key gets the same decline from payment-service again.
            try await OrderModel.query(on: db).filter(\.$id == orderID).filter(\.$status == OrderModel.pending)
                .delete()
            throw ServiceError(
                .init(code: 402, reasonPhrase: "Payment Required"), code: "payment-declined",
                message: "the payment was declined: \(authorization.declineReason ?? "no reason given")")
        default:
            throw Self.cancelledError
        }

        let claim = UUID().uuidString
        let confirmed: Bool
        do {
            confirmed = try await OrderService.outbox.transaction(on: db) { transaction, events in
                try await OrderModel.query(on: transaction).filter(\.$id == orderID)
                    .filter(\.$status == OrderModel.pending).set(\.$status, to: OrderModel.confirmed)
                    .set(\.$paymentID, to: authorization.id).set(\.$claim, to: claim).update()
                guard let stored = try await OrderModel.find(orderID, on: transaction), stored.claim == claim else {
                    return false
                }
                try await events.publish("order.created", OrderCreated(stored), id: orderID)
                return true
            }
        } catch {
            // The commit failed after the money was authorized: void it now rather than leave it for the reconciler.
            logger.error("cannot confirm the order; voiding its payment", metadata: ["error": "\(error)"])
            try? await Self.cancel(order, runtime: runtime, logger: logger)
            throw ServiceError.unavailable(
                "the order could not be stored; its payment is voided and nothing was charged", retryAfterSeconds: 1)
        }
        guard let stored = try await OrderModel.find(orderID, on: db) else { throw Self.cancelledError }
        if confirmed {
            logger.info("order created", metadata: ["order_id": "\(orderID)", "total": "\(stored.total)"])
            return try Self.answer(stored, replayed: false)
        }
        // Another request with the same key confirmed it first, or the reconciler cancelled it.
        guard let answer = try Self.settled(stored, fingerprint: fingerprint) else { throw Self.cancelledError }
        return answer
    }

    /// The user must be the caller's (or the caller an admin): user-service, asked for the caller, says 404
    /// otherwise.
    private func requireUser(_ userID: UUID) async throws {
        let user = try await OrderService.call(stage: "no order was stored") {
            try await runtime.client.send(.get, to: "user-service", path: "/users/\(userID)")
        }
        switch user.status {
        case 200: return
        case 404:
            throw ServiceError(
                .unprocessableContent, code: "unknown-user", message: "there is no user \(userID)",
                fields: [.init(field: "userId", message: "does not name a user")])
        default:
            throw ServiceError.unavailable("user-service answered \(user.status)", retryAfterSeconds: 1)
        }
    }

    static let cancelledError = ServiceError(
        .conflict, code: "order-cancelled",
        message: "the order with this Idempotency-Key was cancelled and its payment voided; use a new key")

    /// What a stored order with the same key answers: itself when confirmed, 409 when cancelled, nil when it is still
    /// pending (to be driven on). A key reused for a different order is 422.
    static func settled(_ existing: OrderModel, fingerprint: String) throws -> Response? {
        guard existing.fingerprint == fingerprint else {
            throw ServiceError(
                .unprocessableContent, code: "idempotency-key-reused",
                message: "this Idempotency-Key was used for a different order; use a new key for a new order")
        }
        switch existing.status {
        case OrderModel.pending: return nil
        case OrderModel.confirmed: return try answer(existing, replayed: true)
        default: throw cancelledError
        }
    }

    static func answer(_ order: OrderModel, replayed: Bool) throws -> Response {
        var headers: HTTPFields = [.location: "/orders/\(order.id!.uuidString.lowercased())"]
        if replayed { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return try jsonResponse(OrderView(order), status: .created, headers: headers)
    }

    /// The user and items, as canonical JSON: what a repeated key must ask again.
    static func fingerprint(userID: UUID, items: [OrderItem]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return userID.uuidString.lowercased() + "|" + String(decoding: try encoder.encode(items), as: UTF8.self)
    }

    /// `pending` → `cancelling` (so no placement can confirm it any more), the payment voided at payment-service
    /// (acting for the order's subject, whose key it is), then `cancelled`. A void that fails leaves it
    /// `cancelling`, and the next round tries again.
    static func cancel(_ order: OrderModel, runtime: ServiceRuntime, logger: Logger) async throws {
        let db = try runtime.requireDatabase().database(logger: logger)
        let orderID = order.id!
        let claim = UUID().uuidString
        try await OrderModel.query(on: db).filter(\.$id == orderID).filter(\.$status == OrderModel.pending)
            .set(\.$status, to: OrderModel.cancelling).set(\.$claim, to: claim).update()
        guard let stored = try await OrderModel.find(orderID, on: db), stored.status == OrderModel.cancelling else {
            return  // confirmed (or cancelled) by someone else first
        }
        let void = try await Caller.$current.withValue(Caller(subject: stored.subject ?? "")) {
            try await runtime.client.send(
                .post, to: "payment-service", path: "/payments/void",
                json: VoidPayment(idempotencyKey: stored.paymentKey, orderId: orderID.uuidString.lowercased()))
        }
        guard void.status == 200 else {
            throw ServiceError.unavailable("payment-service answered \(void.status) to the void", retryAfterSeconds: 1)
        }
        try await OrderModel.query(on: db).filter(\.$id == orderID).filter(\.$status == OrderModel.cancelling)
            .set(\.$status, to: OrderModel.cancelled).update()
        logger.warning(
            "order cancelled and its payment voided", metadata: ["order_id": "\(orderID)", "was": "\(order.status)"])
    }

    /// One reconciler round: every order pending (or cancelling) for longer than `ORDER_PENDING_TIMEOUT` is
    /// cancelled, a hundred at a time.
    static func reconcile(runtime: ServiceRuntime) async throws {
        let timeout = try pendingTimeout(runtime.environment)
        let db = try runtime.requireDatabase().database(logger: runtime.logger)
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let stale = try await OrderModel.query(on: db)
            .filter(\.$status ~~ [OrderModel.pending, OrderModel.cancelling])
            .filter(\.$createdAt < Date().addingTimeInterval(-seconds)).sort(\.$createdAt).limit(100).all()
        for order in stale {
            if order.status == OrderModel.cancelling {
                // A void that failed last round: put it back so `cancel` claims it again.
                try await OrderModel.query(on: db).filter(\.$id == order.id!)
                    .filter(\.$status == OrderModel.cancelling).set(\.$status, to: OrderModel.pending).update()
            }
            do {
                try await cancel(order, runtime: runtime, logger: runtime.logger)
            } catch {
                runtime.logger.warning(
                    "cannot cancel a stale pending order yet",
                    metadata: ["order_id": "\(order.id!)", "error": "\(error)"])
            }
        }
    }
}

struct VoidPayment: Codable, Sendable {
    var idempotencyKey: String
    var orderId: String
}

extension OrderService {
    /// Runs an upstream call; what makes the order impossible now becomes 503 with `Retry-After`, saying where the
    /// order stands (`stage`).
    static func call(stage: String, _ operation: () async throws -> ServiceClient.Response) async throws
        -> ServiceClient.Response
    {
        do {
            return try await operation()
        } catch let error as ServiceKitError {
            let message =
                switch error.code {
                case .circuitOpen, .trialsBusy: "\(error.subject) is failing; its circuit breaker is open"
                case .timeout: "\(error.subject) did not answer in time"
                case .serverError: "\(error.subject) failed"
                default: "\(error.subject) is unreachable"
                }
            throw ServiceError.unavailable(message + "; " + stage, retryAfterSeconds: error.retryAfterSeconds)
        }
    }
}
