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
/// the two arrive together. Keys belong to the caller: the same key from two subjects names two payments. A claim
/// left pending by a process that died is taken over by the next retry once it is older than
/// `PAYMENT_CLAIM_TIMEOUT` (30s), which drives it to a result.
///
/// A payment belongs to the subject that made it; another subject's is a 404 (an `admin` reads all).
/// `POST /payments/void` with the key cancels an authorization the order never kept, or, when the payment has not
/// arrived yet, leaves a voided claim so that it never will.
///
/// Failure injection for tests and demos: `PAYMENT_SIMULATE=approve|decline|error` (error: the processor is down,
/// 503, nothing charged), `PAYMENT_SIMULATE_DELAY=500ms`, `PAYMENT_APPROVAL_LIMIT` (minor units; larger amounts
/// are declined; default 100000000).
public enum PaymentService {
    /// Where its routes publish `payment.authorized`.
    static let outbox = Outbox(types: ["payment.authorized"])

    public static let definition = ServiceDefinition(
        name: "payment-service", defaultPort: 3003, requiresInternalToken: true,
        migrations: [CreatePayments(), AddOwnerToPayments()], components: [Events(outbox: outbox)])

    public static func routes(runtime: ServiceRuntime, router: Router<BasicRequestContext>) throws {
        let processor = try SimulatedProcessor(environment: runtime.environment)
        let claimTimeout = try claimTimeout(runtime.environment)
        let payments = router.group("payments")
        if let token = runtime.internalToken { payments.add(middleware: InternalAuthMiddleware(token: token)) }
        payments.post { request, context in
            let caller = try Caller.required()
            let input = try await request.decodeJSON(as: NewPayment.self, context: context)
            let (orderID, amount, currency) = try input.validated()
            let key = try idempotencyKey(request).map { PaymentModel.scoped($0, to: caller) }
            let fingerprint = "\(orderID)|\(amount)|\(currency)"
            let db = try runtime.requireDatabase().database(logger: context.logger)
            let payment: PaymentModel
            if let key, let existing = try await PaymentModel.query(on: db).filter(\.$idempotencyKey == key).first() {
                guard let claimed = try await replay(existing, fingerprint: fingerprint, on: db, stale: claimTimeout)
                else { return try view(existing, replayed: true) }
                payment = claimed
            } else {
                payment = PaymentModel(
                    orderID: orderID, amount: amount, currency: currency, idempotencyKey: key,
                    fingerprint: fingerprint, subject: caller.subject)
                do {
                    try await payment.create(on: db)
                } catch {
                    // Another request with the same key won the claim a moment ago.
                    guard (error as? any DatabaseError)?.isConstraintFailure == true, let key,
                        let existing = try await PaymentModel.query(on: db).filter(\.$idempotencyKey == key).first()
                    else { throw error }
                    _ = try await replay(existing, fingerprint: fingerprint, on: db, stale: nil)
                    return try view(existing, replayed: true)
                }
            }
            let decision: SimulatedProcessor.Decision
            do {
                decision = try await processor.authorize(amount: amount)
            } catch {
                // Nothing was charged: release the claim so a retry can succeed (unless it was voided meanwhile).
                try await PaymentModel.query(on: db).filter(\.$id == payment.id!).filter(\.$claim == payment.claim)
                    .filter(\.$status == PaymentModel.pending).delete()
                throw ServiceError.unavailable(
                    "the payment processor is unavailable; nothing was charged", retryAfterSeconds: 1,
                    code: "processor-unavailable")
            }
            // The decision and, when authorized, its event commit together (the outbox). Only a claim still pending
            // and still this request's is decided: a void or a takeover in the meantime wins.
            let decided = try await outbox.transaction(on: db) { transaction, events -> Bool in
                try await PaymentModel.query(on: transaction).filter(\.$id == payment.id!)
                    .filter(\.$claim == payment.claim).filter(\.$status == PaymentModel.pending)
                    .set(\.$status, to: decision.status).set(\.$declineReason, to: decision.reason).update()
                guard let stored = try await PaymentModel.find(payment.id, on: transaction),
                    stored.status == decision.status, stored.claim == payment.claim
                else { return false }
                if decision.status == "authorized" {
                    try await events.publish("payment.authorized", PaymentAuthorized(stored))
                }
                return true
            }
            let final = try await PaymentModel.find(payment.id, on: db) ?? payment
            context.logger.info(
                "payment \(final.status)",
                metadata: ["payment_id": "\(payment.id!)", "order_id": "\(orderID)", "decided_here": "\(decided)"])
            return try view(final, replayed: false)
        }
        payments.post("void") { request, context in
            let caller = try Caller.required()
            let input = try await request.decodeJSON(as: VoidRequest.self, context: context)
            guard (1...255).contains(input.idempotencyKey.utf8.count) else {
                throw ServiceError.validation([.init(field: "idempotencyKey", message: "must be 1 to 255 characters")])
            }
            let key = PaymentModel.scoped(input.idempotencyKey, to: caller)
            let db = try runtime.requireDatabase().database(logger: context.logger)
            if try await PaymentModel.query(on: db).filter(\.$idempotencyKey == key).first() == nil {
                // Not arrived yet: a voided claim, so that the payment never will be charged.
                let tombstone = PaymentModel(
                    orderID: input.orderId ?? "", amount: 0, currency: "XXX", idempotencyKey: key,
                    fingerprint: PaymentModel.voidedBeforeArrival, subject: caller.subject)
                tombstone.status = PaymentModel.voided
                do {
                    try await tombstone.create(on: db)
                } catch let error as any DatabaseError where error.isConstraintFailure {
                    // It arrived a moment ago: void it below.
                }
            }
            try await PaymentModel.query(on: db).filter(\.$idempotencyKey == key)
                .filter(\.$status ~~ [PaymentModel.pending, "authorized"]).set(\.$status, to: PaymentModel.voided)
                .update()
            guard let payment = try await PaymentModel.query(on: db).filter(\.$idempotencyKey == key).first() else {
                throw ServiceError(.notFound, code: "not-found", message: "there is no payment with that key")
            }
            context.logger.info(
                "payment voided", metadata: ["payment_id": "\(payment.id!)", "status": "\(payment.status)"])
            return try jsonResponse(PaymentView(payment))
        }
        payments.get(":id") { _, context in
            let caller = try Caller.required()
            let db = try runtime.requireDatabase().database(logger: context.logger)
            let payment = try await PaymentModel.find(parameter: context.parameters.get("id"), on: db, what: "payment")
            guard caller.mayAccess(ownedBy: payment.subject) else {
                throw ServiceError.notFound("no payment \(context.parameters.get("id") ?? "")")
            }
            return try jsonResponse(PaymentView(payment))
        }
    }

    /// `PAYMENT_CLAIM_TIMEOUT`: how old a pending claim must be before a retry takes it over. Longer than the
    /// processor ever takes, or two requests could both call it.
    static func claimTimeout(_ environment: [String: String]) throws(ServiceKitError) -> Duration {
        guard let text = environment["PAYMENT_CLAIM_TIMEOUT"] else { return .seconds(30) }
        guard let timeout = ServiceRuntime.parseDuration(text), timeout > .zero else {
            throw ServiceKitError.configuration(
                "PAYMENT_CLAIM_TIMEOUT", "must be a positive duration such as 30s, not \"\(text)\"")
        }
        return timeout
    }

    /// The `Idempotency-Key` header, 1–255 characters, or nil.
    static func idempotencyKey(_ request: Request) throws -> String? {
        try request.headers[HTTPField.Name("Idempotency-Key")!].map { key in
            guard (1...255).contains(key.utf8.count) else {
                throw ServiceError.validation([.init(field: "Idempotency-Key", message: "must be 1 to 255 characters")])
            }
            return key
        }
    }

    /// A repeated key: nil when the first result (or a void) stands and is to be returned; a claim this request has
    /// taken over, to drive to a result, when the first died and left it pending past `stale`. A key reused for a
    /// different request is refused; a claim in flight is a 409.
    static func replay(_ existing: PaymentModel, fingerprint: String, on db: any Database, stale: Duration?)
        async throws -> PaymentModel?
    {
        if existing.status == PaymentModel.voided { return nil }
        guard existing.fingerprint == fingerprint else {
            throw ServiceError(
                .unprocessableContent, code: "idempotency-key-reused",
                message: "this Idempotency-Key was used for a different payment; use a new key for a new payment")
        }
        guard existing.status == PaymentModel.pending else { return nil }
        if let stale, let claimedAt = existing.claimedAt ?? existing.createdAt,
            Date().timeIntervalSince(claimedAt) > Double(stale.components.seconds)
                + Double(stale.components.attoseconds) / 1e18
        {
            let claim = UUID().uuidString
            try await PaymentModel.query(on: db).filter(\.$id == existing.id!).filter(\.$claim == existing.claim)
                .filter(\.$status == PaymentModel.pending).set(\.$claim, to: claim).set(\.$claimedAt, to: Date())
                .update()
            if let taken = try await PaymentModel.find(existing.id, on: db), taken.claim == claim { return taken }
        }
        var headers = HTTPFields()
        headers[.retryAfter] = "1"
        throw ServiceError(
            .conflict, code: "request-in-progress",
            message: "a request with this Idempotency-Key is being processed; retry shortly", headers: headers)
    }

    /// 201 with the payment, its `Location`, and `Idempotent-Replayed: true` when it is an earlier result.
    static func view(_ existing: PaymentModel, replayed: Bool) throws -> Response {
        var headers: HTTPFields = [.location: "/payments/\(existing.id!.uuidString.lowercased())"]
        if replayed { headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return try jsonResponse(PaymentView(existing), status: .created, headers: headers)
    }
}

struct VoidRequest: Decodable {
    var idempotencyKey: String
    var orderId: String?
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
    static let voided = "voided"
    /// The fingerprint of a void that came before its payment.
    static let voidedBeforeArrival = "voided-before-arrival"

    /// The stored key: the caller's subject and its key, so two subjects' keys never meet. A subject holds no
    /// newline (`CallerHeaders.isValidSubject`), so the pair cannot be forged from another.
    static func scoped(_ key: String, to caller: Caller) -> String { caller.subject + "\n" + key }

    @ID(key: .id) var id: UUID?
    @Field(key: "order_id") var orderID: String
    @Field(key: "amount") var amount: Int
    @Field(key: "currency") var currency: String
    @Field(key: "status") var status: String
    @OptionalField(key: "decline_reason") var declineReason: String?
    @OptionalField(key: "idempotency_key") var idempotencyKey: String?
    @Field(key: "fingerprint") var fingerprint: String
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    /// Who made it; nil only for payments made before payments had owners (admins see those).
    @OptionalField(key: "subject") var subject: String?
    /// Which request holds the pending claim, and since when: a retry takes over a claim left too long.
    @OptionalField(key: "claim") var claim: String?
    @OptionalField(key: "claimed_at") var claimedAt: Date?

    init() {}

    init(
        orderID: String, amount: Int, currency: String, idempotencyKey: String?, fingerprint: String, subject: String
    ) {
        self.orderID = orderID
        self.amount = amount
        self.currency = currency
        self.status = Self.pending
        self.idempotencyKey = idempotencyKey
        self.fingerprint = fingerprint
        self.subject = subject
        self.claim = UUID().uuidString
        self.claimedAt = Date()
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

/// Payments get owners and claims that can be taken over.
struct AddOwnerToPayments: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(PaymentModel.schema).field("subject", .string).update()
        try await database.schema(PaymentModel.schema).field("claim", .string).update()
        try await database.schema(PaymentModel.schema).field("claimed_at", .datetime).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(PaymentModel.schema).deleteField("claimed_at").update()
        try await database.schema(PaymentModel.schema).deleteField("claim").update()
        try await database.schema(PaymentModel.schema).deleteField("subject").update()
    }
}
