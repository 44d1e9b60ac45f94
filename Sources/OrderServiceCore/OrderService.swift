import FluentKit
import Foundation
import HTTPTypes
public import Hummingbird
import SQLKit
import ServiceEvents
public import ServiceKit

/// order-service: takes an order only for a user that exists and belongs to the caller (asked of user-service, acting
/// for the caller) and a payment that was authorized (by payment-service), then confirms it. Money is integer minor
/// units throughout.
///
/// An order is stored `pending` before any money moves, and confirmed with its `order.created` event in one
/// transaction once the payment is authorized, so money is never taken for an order that does not exist:
/// - `Idempotency-Key` on `POST /orders`: a retry returns the same order, or drives a pending one on; the payment's
///   key is the order's id, so a retried order never authorizes a second payment;
/// - a pending order older than `ORDER_PENDING_TIMEOUT` (60s) is cancelled by the reconciler (every
///   `ORDER_RECONCILE_INTERVAL`, 10s), which voids its payment at payment-service first (or voids the key before the
///   payment arrives, so it never will).
///
/// When an upstream is down, too slow or behind an open circuit breaker, the answer is 503 with `Retry-After`
/// within the deadline (`UPSTREAM_TIMEOUT`); a user is never made up. A caller sees only its own orders (another's is a
/// 404); an `admin` sees all.
public enum OrderService {
    /// Where its routes publish `order.created`.
    static let outbox = Outbox(types: ["order.created"])

    public static let definition = ServiceDefinition(
        name: "order-service", defaultPort: 3002, dependencies: ["user-service", "payment-service"],
        requiresInternalToken: true, migrations: [CreateOrders(), AddOwnerToOrders()],
        components: [
            Events(outbox: outbox),
            Periodic(
                "pending-order reconciler", intervalVariable: "ORDER_RECONCILE_INTERVAL",
                defaultInterval: .seconds(10)
            ) { runtime in try await OrderPlacement.reconcile(runtime: runtime) },
        ])

    public static func routes(runtime: ServiceRuntime, router: Router<BasicRequestContext>) throws {
        let pendingTimeout = try OrderPlacement.pendingTimeout(runtime.environment)
        let orders = router.group("orders")
        if let token = runtime.internalToken { orders.add(middleware: InternalAuthMiddleware(token: token)) }
        orders.post { request, context in
            let caller = try Caller.required()
            let input = try await request.decodeJSON(as: NewOrder.self, context: context)
            let (userID, items, total) = try input.validated()
            let key = try request.headers[HTTPField.Name("Idempotency-Key")!].map { key in
                guard (1...255).contains(key.utf8.count) else {
                    throw ServiceError.validation([
                        .init(field: "Idempotency-Key", message: "must be 1 to 255 characters")
                    ])
                }
                return key
            }
            let placement = OrderPlacement(
                runtime: runtime, caller: caller, logger: context.logger, pendingTimeout: pendingTimeout)
            return try await placement.place(userID: userID, items: items, total: total, key: key)
        }
        orders.get(":id") { _, context in
            let caller = try Caller.required()
            let db = try runtime.requireDatabase().database(logger: context.logger)
            let order = try await OrderModel.find(parameter: context.parameters.get("id"), on: db, what: "order")
            guard caller.mayAccess(ownedBy: order.subject) else {
                throw ServiceError.notFound("no order \(context.parameters.get("id") ?? "")")
            }
            return try jsonResponse(OrderView(order))
        }
        orders.get { request, context in
            let caller = try Caller.required()
            guard let text = request.uri.queryParameters.get("userId") else {
                throw ServiceError.validation([.init(field: "userId", message: "is required (GET /orders?userId=…)")])
            }
            guard let userID = UUID(uuidString: text) else {
                throw ServiceError.validation([.init(field: "userId", message: "must be a user id")])
            }
            var query = OrderModel.query(on: try runtime.requireDatabase().database(logger: context.logger))
                .filter(\.$userID == userID)
            if !caller.isAdmin { query = query.filter(\.$subject == caller.subject) }
            let found = try await query.sort(\.$createdAt, .descending).limit(100).all()
            return try jsonResponse(OrderList(items: found.map(OrderView.init)))
        }
    }
}

struct NewOrder: Decodable {
    struct Item: Decodable {
        var sku: String
        var quantity: Int
        var unitPrice: Int

        enum CodingKeys: String, CodingKey { case sku, quantity, unitPrice }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            sku = try container.decode(String.self, forKey: .sku)
            quantity = try container.decodeInteger(forKey: .quantity)
            unitPrice = try container.decodeInteger(forKey: .unitPrice)
        }
    }

    var userId: String
    var items: [Item]

    /// The user, the items and the total in minor units, or every field's problem at once.
    func validated() throws -> (UUID, [OrderItem], Int) {
        var problems: [ServiceError.FieldError] = []
        let userID = UUID(uuidString: userId)
        if userID == nil { problems.append(.init(field: "userId", message: "must be a user id")) }
        if items.isEmpty { problems.append(.init(field: "items", message: "must list at least one item")) }
        if items.count > 100 { problems.append(.init(field: "items", message: "must list at most 100 items")) }
        var total = 0
        var overflow = false
        for (index, item) in items.enumerated() {
            if item.sku.isEmpty || item.sku.utf8.count > 64 {
                problems.append(.init(field: "items[\(index)].sku", message: "must be 1 to 64 characters"))
            }
            if !(1...10_000).contains(item.quantity) {
                problems.append(.init(field: "items[\(index)].quantity", message: "must be an integer from 1 to 10000"))
            }
            if item.unitPrice < 0 {
                problems.append(
                    .init(
                        field: "items[\(index)].unitPrice",
                        message: "must be a non-negative integer of minor units (cents)"))
            }
            let (line, lineOverflow) = item.unitPrice.multipliedReportingOverflow(by: item.quantity)
            let (sum, sumOverflow) = total.addingReportingOverflow(line)
            overflow = overflow || lineOverflow || sumOverflow
            total = sum
        }
        if overflow { problems.append(.init(field: "items", message: "the total is too large")) }
        if problems.isEmpty, total <= 0 {
            problems.append(.init(field: "items", message: "the total must be positive"))
        }
        guard problems.isEmpty, let userID else { throw ServiceError.validation(problems) }
        return (userID, items.map { OrderItem(sku: $0.sku, quantity: $0.quantity, unitPrice: $0.unitPrice) }, total)
    }
}

struct PaymentRequest: Codable, Sendable {
    var orderId: String
    var amount: Int
    var currency: String
}

struct PaymentAnswer: Codable {
    var id: String
    var status: String
    var declineReason: String?
}

public struct OrderItem: Codable, Sendable {
    public var sku: String
    public var quantity: Int
    public var unitPrice: Int
}

struct OrderLines: Codable, Sendable {
    var items: [OrderItem]
}

/// The `order.created` event's payload: what a consumer needs without calling back. `subject` is who placed it, so
/// a consumer acts for them (and no one else) when it calls back.
public struct OrderCreated: Codable, Sendable {
    public var orderId: String
    public var userId: String
    public var subject: String?
    public var items: [OrderItem]
    public var total: Int
    public var currency: String

    init(_ order: OrderModel) {
        orderId = order.id!.uuidString.lowercased()
        userId = order.userID.uuidString.lowercased()
        subject = order.subject
        items = order.items
        total = order.total
        currency = order.currency
    }
}

struct OrderView: Codable {
    var id: String
    var userId: String
    var items: [OrderItem]
    var total: Int
    var currency: String
    var status: String
    var paymentId: String
    var createdAt: String?

    init(_ order: OrderModel) {
        id = order.id!.uuidString.lowercased()
        userId = order.userID.uuidString.lowercased()
        items = order.items
        total = order.total
        currency = order.currency
        status = order.status
        paymentId = order.paymentID
        createdAt = order.createdAt.map { $0.formatted(.iso8601) }
    }
}

struct OrderList: Codable {
    var items: [OrderView]
}

final class OrderModel: Model, @unchecked Sendable {
    static let schema = "orders"

    @ID(key: .id) var id: UUID?
    @Field(key: "user_id") var userID: UUID
    /// One JSON document (jsonb in PostgreSQL): a bare Swift array would be bound as `jsonb[]`.
    @Field(key: "items") var lines: OrderLines

    var items: [OrderItem] { lines.items }
    @Field(key: "total") var total: Int
    @Field(key: "currency") var currency: String
    @Field(key: "status") var status: String
    /// Empty while the order is pending.
    @Field(key: "payment_id") var paymentID: String
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    /// Who placed it; nil only for orders placed before orders had owners (admins see those).
    @OptionalField(key: "subject") var subject: String?
    /// The caller's subject and `Idempotency-Key` (unique), and what the request asked, to refuse a key reused.
    @OptionalField(key: "idempotency_key") var idempotencyKey: String?
    @OptionalField(key: "fingerprint") var fingerprint: String?
    /// Which step moved it out of `pending` (a placement confirming it, the reconciler cancelling it): the one whose
    /// conditional update took effect.
    @OptionalField(key: "claim") var claim: String?

    static let pending = "pending"
    static let confirmed = "confirmed"
    static let cancelling = "cancelling"
    static let cancelled = "cancelled"

    init() {}

    init(
        id: UUID, subject: String, userID: UUID, items: [OrderItem], total: Int, currency: String,
        idempotencyKey: String?, fingerprint: String
    ) {
        self.id = id
        self.subject = subject
        self.userID = userID
        self.lines = OrderLines(items: items)
        self.total = total
        self.currency = currency
        self.status = Self.pending
        self.paymentID = ""
        self.idempotencyKey = idempotencyKey
        self.fingerprint = fingerprint
    }

    /// The key a placement sends payment-service: the order's id, so every retry of the order asks for the same
    /// payment.
    var paymentKey: String { "order-\(id!.uuidString.lowercased())" }
}

struct CreateOrders: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(OrderModel.schema)
            .id()
            .field("user_id", .uuid, .required)
            .field("items", .json, .required)
            .field("total", .int64, .required)
            .field("currency", .string, .required)
            .field("status", .string, .required)
            .field("payment_id", .string, .required)
            .field("created_at", .datetime)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(OrderModel.schema).delete()
    }
}

/// Orders get owners, idempotency keys and claims.
struct AddOwnerToOrders: AsyncMigration {
    func prepare(on database: any Database) async throws {
        for field in ["subject", "idempotency_key", "fingerprint", "claim"] {
            try await database.schema(OrderModel.schema).field(.string(field), .string).update()
        }
        if let sql = database as? any SQLDatabase {
            try await sql.raw("CREATE UNIQUE INDEX orders_idempotency_key ON orders (idempotency_key)").run()
            try await sql.raw("CREATE INDEX orders_pending ON orders (status, created_at)").run()
        }
    }

    func revert(on database: any Database) async throws {
        if let sql = database as? any SQLDatabase {
            try await sql.raw("DROP INDEX orders_pending").run()
            try await sql.raw("DROP INDEX orders_idempotency_key").run()
        }
        for field in ["claim", "fingerprint", "idempotency_key", "subject"] {
            try await database.schema(OrderModel.schema).deleteField(.string(field)).update()
        }
    }
}
