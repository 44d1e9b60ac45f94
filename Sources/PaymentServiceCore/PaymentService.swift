import FluentKit
import Foundation
import HTTPTypes
public import Hummingbird
import ServiceEvents
public import ServiceKit

/// payment-service: authorizes an amount for an order with a payment processor. The processor here is simulated
/// and every response says so (`"processor": "simulated"`).
///
/// Retries are safe: a request with an `Idempotency-Key` claims that key in the database before the processor is
/// called, so a repeat returns the first result (`Idempotent-Replayed: true`) and never charges twice, even when
/// the two arrive together.
///
/// Failure injection for tests and demos: `PAYMENT_SIMULATE=approve|decline|error` (error: the processor is down,
/// 503, nothing charged), `PAYMENT_SIMULATE_DELAY=500ms`, `PAYMENT_APPROVAL_LIMIT` (minor units; larger amounts
/// are declined; default 100000000).
public enum PaymentService {
    /// Where its routes publish `payment.authorized`.
    static let outbox = Outbox(types: ["payment.authorized"])

    public static let definition = ServiceDefinition(
        name: "payment-service", defaultPort: 3003, requiresInternalToken: true, migrations: [CreatePayments()],
        components: [Events(outbox: outbox)])

    public static func routes(runtime: ServiceRuntime, router: Router<BasicRequestContext>) throws {
        let processor = try SimulatedProcessor(environment: runtime.environment)
        let payments = router.group("payments")
        if let token = runtime.internalToken { payments.add(middleware: InternalAuthMiddleware(token: token)) }
        payments.post { request, context in
            let input = try await request.decodeJSON(as: NewPayment.self, context: context)
            let (orderID, amount, currency) = try input.validated()
            let key = try request.headers[HTTPField.Name("Idempotency-Key")!].map { key in
                guard (1...255).contains(key.utf8.count) else {
                    throw ServiceError.validation([
                        .init(field: "Idempotency-Key", message: "must be 1 to 255 characters")
                    ])
                }
                return key
            }
            let fingerprint = "\(orderID)|\(amount)|\(currency)"
            let db = try runtime.requireDatabase().database(logger: context.logger)
            if let key, let existing = try await PaymentModel.query(on: db).filter(\.$idempotencyKey == key).first() {
                return try replay(existing, fingerprint: fingerprint)
            }
            let payment = PaymentModel(
                orderID: orderID, amount: amount, currency: currency, idempotencyKey: key, fingerprint: fingerprint)
            do {
                try await payment.create(on: db)
            } catch {
                // Another request with the same key won the claim a moment ago.
                guard (error as? any DatabaseError)?.isConstraintFailure == true, let key,
                    let existing = try await PaymentModel.query(on: db).filter(\.$idempotencyKey == key).first()
                else { throw error }
                return try replay(existing, fingerprint: fingerprint)
            }
            let decision: SimulatedProcessor.Decision
            do {
                decision = try await processor.authorize(amount: amount)
            } catch {
                try await payment.delete(on: db)  // nothing was charged: release the key so a retry can succeed
                throw ServiceError.unavailable(
                    "the payment processor is unavailable; nothing was charged", retryAfterSeconds: 1,
                    code: "processor-unavailable")
            }
            payment.status = decision.status
            payment.declineReason = decision.reason
            // The decision and, when authorized, its event commit together (the outbox).
            let decided = payment
            try await outbox.transaction(on: db) { transaction, events in
                try await decided.update(on: transaction)
                if decided.status == "authorized" {
                    try await events.publish("payment.authorized", PaymentAuthorized(decided))
                }
            }
            context.logger.info(
                "payment \(payment.status)", metadata: ["payment_id": "\(payment.id!)", "order_id": "\(orderID)"])
            return try jsonResponse(
                PaymentView(payment), status: .created,
                headers: [.location: "/payments/\(payment.id!.uuidString.lowercased())"])
        }
        payments.get(":id") { _, context in
            let db = try runtime.requireDatabase().database(logger: context.logger)
            let payment = try await PaymentModel.find(parameter: context.parameters.get("id"), on: db, what: "payment")
            return try jsonResponse(PaymentView(payment))
        }
    }

    /// The first result for a repeated key; a key reused for a different request is refused.
    static func replay(_ existing: PaymentModel, fingerprint: String) throws -> Response {
        guard existing.fingerprint == fingerprint else {
            throw ServiceError(
                .unprocessableContent, code: "idempotency-key-reused",
                message: "this Idempotency-Key was used for a different payment; use a new key for a new payment")
        }
        guard existing.status != PaymentModel.pending else {
            var headers = HTTPFields()
            headers[.retryAfter] = "1"
            throw ServiceError(
                .conflict, code: "request-in-progress",
                message: "a request with this Idempotency-Key is being processed; retry shortly", headers: headers)
        }
        return try jsonResponse(
            PaymentView(existing), status: .created,
            headers: [
                .location: "/payments/\(existing.id!.uuidString.lowercased())",
                HTTPField.Name("Idempotent-Replayed")!: "true",
            ])
    }
}

struct NewPayment: Decodable {
    var orderId: String
    var amount: Int
    var currency: String?

    enum CodingKeys: String, CodingKey { case orderId, amount, currency }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        orderId = try container.decode(String.self, forKey: .orderId)
        amount = try container.decodeInteger(forKey: .amount)
        currency = try container.decodeIfPresent(String.self, forKey: .currency)
    }

    func validated() throws -> (String, Int, String) {
        var problems: [ServiceError.FieldError] = []
        if orderId.isEmpty || orderId.utf8.count > 64 {
            problems.append(.init(field: "orderId", message: "must be 1 to 64 characters"))
        }
        if amount <= 0 {
            problems.append(.init(field: "amount", message: "must be a positive integer of minor units (cents)"))
        }
        let currency = currency ?? "USD"
        if currency.count != 3 || !currency.allSatisfy({ $0.isASCII && $0.isUppercase }) {
            problems.append(.init(field: "currency", message: "must be an ISO 4217 code such as USD"))
        }
        guard problems.isEmpty else { throw ServiceError.validation(problems) }
        return (orderId, amount, currency)
    }
}

/// The simulated card processor.
struct SimulatedProcessor: Sendable {
    struct Decision {
        var status: String
        var reason: String?
    }

    struct Unavailable: Error {}

    enum Mode: String { case approve, decline, error }

    let mode: Mode
    let delay: Duration
    let approvalLimit: Int

    init(environment: [String: String]) throws(ServiceKitError) {
        let text = environment["PAYMENT_SIMULATE"] ?? "approve"
        guard let mode = Mode(rawValue: text) else {
            throw ServiceKitError.configuration(
                "PAYMENT_SIMULATE", "must be approve, decline or error, not \"\(text)\"")
        }
        self.mode = mode
        if let text = environment["PAYMENT_SIMULATE_DELAY"] {
            guard let delay = ServiceRuntime.parseDuration(text) else {
                throw ServiceKitError.configuration(
                    "PAYMENT_SIMULATE_DELAY", "must be a duration such as 500ms, not \"\(text)\"")
            }
            self.delay = delay
        } else {
            delay = .zero
        }
        if let text = environment["PAYMENT_APPROVAL_LIMIT"] {
            guard let limit = Int(text), limit > 0 else {
                throw ServiceKitError.configuration(
                    "PAYMENT_APPROVAL_LIMIT", "must be a positive integer, not \"\(text)\"")
            }
            approvalLimit = limit
        } else {
            approvalLimit = 100_000_000
        }
    }

    func authorize(amount: Int) async throws -> Decision {
        if delay > .zero { try await Task.sleep(for: delay) }
        switch mode {
        case .error: throw Unavailable()
        case .decline: return Decision(status: "declined", reason: "declined by the simulated processor")
        case .approve:
            return amount > approvalLimit
                ? Decision(status: "declined", reason: "amount over the approval limit")
                : Decision(status: "authorized", reason: nil)
        }
    }
}

/// The `payment.authorized` event's payload.
struct PaymentAuthorized: Codable, Sendable {
    var paymentId: String
    var orderId: String
    var amount: Int
    var currency: String

    init(_ payment: PaymentModel) {
        paymentId = payment.id!.uuidString.lowercased()
        orderId = payment.orderID
        amount = payment.amount
        currency = payment.currency
    }
}

struct PaymentView: Codable {
    var id: String
    var orderId: String
    var amount: Int
    var currency: String
    var status: String
    var declineReason: String?
    var processor = "simulated"
    var createdAt: String?

    init(_ payment: PaymentModel) {
        id = payment.id!.uuidString.lowercased()
        orderId = payment.orderID
        amount = payment.amount
        currency = payment.currency
        status = payment.status
        declineReason = payment.declineReason
        createdAt = payment.createdAt.map { $0.formatted(.iso8601) }
    }
}

final class PaymentModel: Model, @unchecked Sendable {
    static let schema = "payments"
    static let pending = "pending"

    @ID(key: .id) var id: UUID?
    @Field(key: "order_id") var orderID: String
    @Field(key: "amount") var amount: Int
    @Field(key: "currency") var currency: String
    @Field(key: "status") var status: String
    @OptionalField(key: "decline_reason") var declineReason: String?
    @OptionalField(key: "idempotency_key") var idempotencyKey: String?
    @Field(key: "fingerprint") var fingerprint: String
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?

    init() {}

    init(orderID: String, amount: Int, currency: String, idempotencyKey: String?, fingerprint: String) {
        self.orderID = orderID
        self.amount = amount
        self.currency = currency
        self.status = Self.pending
        self.idempotencyKey = idempotencyKey
        self.fingerprint = fingerprint
    }
}

struct CreatePayments: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(PaymentModel.schema)
            .id()
            .field("order_id", .string, .required)
            .field("amount", .int64, .required)
            .field("currency", .string, .required)
            .field("status", .string, .required)
            .field("decline_reason", .string)
            .field("idempotency_key", .string)
            .field("fingerprint", .string, .required)
            .field("created_at", .datetime)
            .unique(on: "idempotency_key")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(PaymentModel.schema).delete()
    }
}
