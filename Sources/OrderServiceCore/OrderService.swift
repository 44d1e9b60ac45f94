import FluentKit
import Foundation
import HTTPTypes
public import Hummingbird
import ServiceEvents
public import ServiceKit

/// order-service: takes an order only for a user that exists (asked of user-service) and a payment that was
/// authorized (by payment-service), then stores it. Money is integer minor units throughout.
///
/// When an upstream is down, too slow or behind an open circuit breaker, the answer is 503 with `Retry-After`
/// within the deadline (`UPSTREAM_TIMEOUT`), and no order is stored; a user is never made up.
public enum OrderService {
    /// Where its routes publish `order.created`.
    static let outbox = Outbox(types: ["order.created"])

    public static let definition = ServiceDefinition(
        name: "order-service", defaultPort: 3002, dependencies: ["user-service", "payment-service"],
        requiresInternalToken: true, migrations: [CreateOrders()], components: [Events(outbox: outbox)])

    public static func routes(runtime: ServiceRuntime, router: Router<BasicRequestContext>) {
        let orders = router.group("orders")
        if let token = runtime.internalToken { orders.add(middleware: InternalAuthMiddleware(token: token)) }
        orders.post { request, context in
            let input = try await request.decodeJSON(as: NewOrder.self, context: context)
            let (userID, items, total) = try input.validated()
            let client = runtime.client

            let user = try await call { try await client.send(.get, to: "user-service", path: "/users/\(userID)") }
            switch user.status {
            case 200: break
            case 404:
                throw ServiceError(
                    .unprocessableContent, code: "unknown-user", message: "there is no user \(userID)",
                    fields: [.init(field: "userId", message: "does not name a user")])
            default:
                throw ServiceError.unavailable("user-service answered \(user.status)", retryAfterSeconds: 1)
            }

            let orderID = UUID()
            let payment = try await call {
                try await client.send(
                    .post, to: "payment-service", path: "/payments",
                    json: PaymentRequest(orderId: orderID.uuidString.lowercased(), amount: total, currency: "USD"),
                    // The order id is the key: a retry of this call can never charge twice.
                    headers: [("Idempotency-Key", "order-\(orderID.uuidString.lowercased())")])
            }
            guard payment.status == 201, let authorization = try? payment.decode(as: PaymentAnswer.self) else {
                throw ServiceError.unavailable("payment-service answered \(payment.status)", retryAfterSeconds: 1)
            }
            guard authorization.status == "authorized" else {
                throw ServiceError(
                    .init(code: 402, reasonPhrase: "Payment Required"), code: "payment-declined",
                    message: "the payment was declined: \(authorization.declineReason ?? "no reason given")")
            }

            let order = OrderModel(
                id: orderID, userID: userID, items: items, total: total, currency: "USD", paymentID: authorization.id)
            // The order and its `order.created` event commit together (the outbox); the relay publishes the event.
            try await outbox.transaction(on: try runtime.requireDatabase().database(logger: context.logger)) {
                transaction, events in
                try await order.create(on: transaction)
                try await events.publish("order.created", OrderCreated(order), id: orderID)
            }
            context.logger.info("order created", metadata: ["order_id": "\(orderID)", "total": "\(total)"])
            return try jsonResponse(
                OrderView(order), status: .created, headers: [.location: "/orders/\(orderID.uuidString.lowercased())"])
        }
        orders.get(":id") { _, context in
            let db = try runtime.requireDatabase().database(logger: context.logger)
            let order = try await OrderModel.find(parameter: context.parameters.get("id"), on: db, what: "order")
            return try jsonResponse(OrderView(order))
        }
        orders.get { request, context in
            guard let text = request.uri.queryParameters.get("userId") else {
                throw ServiceError.validation([.init(field: "userId", message: "is required (GET /orders?userId=…)")])
            }
            guard let userID = UUID(uuidString: text) else {
                throw ServiceError.validation([.init(field: "userId", message: "must be a user id")])
            }
            let found = try await OrderModel.query(on: try runtime.requireDatabase().database(logger: context.logger))
                .filter(\.$userID == userID).sort(\.$createdAt, .descending).limit(100).all()
            return try jsonResponse(OrderList(items: found.map(OrderView.init)))
        }
    }

    /// Runs an upstream call; what makes the order impossible now becomes 503 with `Retry-After`.
    static func call(_ operation: () async throws -> ServiceClient.Response) async throws -> ServiceClient.Response {
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
            throw ServiceError.unavailable(
                message + "; no order was stored", retryAfterSeconds: error.retryAfterSeconds)
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

/// The `order.created` event's payload: what a consumer needs without calling back.
public struct OrderCreated: Codable, Sendable {
    public var orderId: String
    public var userId: String
    public var items: [OrderItem]
    public var total: Int
    public var currency: String

    init(_ order: OrderModel) {
        orderId = order.id!.uuidString.lowercased()
        userId = order.userID.uuidString.lowercased()
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
    @Field(key: "payment_id") var paymentID: String
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?

    init() {}

    init(id: UUID, userID: UUID, items: [OrderItem], total: Int, currency: String, paymentID: String) {
        self.id = id
        self.userID = userID
        self.lines = OrderLines(items: items)
        self.total = total
        self.currency = currency
        self.status = "confirmed"
        self.paymentID = paymentID
    }
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
