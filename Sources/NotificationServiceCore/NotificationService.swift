import AsyncHTTPClient
import FluentKit
import Foundation
public import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import OrchestrateContract
public import ServiceEvents
public import ServiceKit

/// notification-service: consumes `order.created`, looks the order's user up at user-service, records the
/// confirmation ("Order … confirmed") in its own database and delivers it through its sender
/// (`NOTIFICATION_SENDER=log`, the default; `webhook` with `NOTIFICATION_WEBHOOK_URL`; `smtp` with `SMTP_URL`).
/// `GET /notifications?userId=` lists a user's: the caller's own (an `admin`'s, anyone's). The handler acts for the
/// order's subject when it asks user-service, so it reads that subject's profile and no one else's.
///
/// Exactly once in effect: the record, the inbox entry and the event's acknowledgement follow the handler's
/// transaction, so a redelivered event records nothing twice. Delivery through the sender is at least once (it happens
/// inside the transaction, before the commit); the webhook carries the event id as `Idempotency-Key`.
public enum NotificationService {
    public static let definition = ServiceDefinition(
        name: "notification-service", defaultPort: 3004, dependencies: ["user-service"], requiresInternalToken: true,
        migrations: [CreateNotifications(), AddEventTimeToNotifications(), AddSubjectToNotifications()],
        components: [Events(subscribes: ["order.created"], subscriptions: subscriptions)])

    /// What the service consumes: `order.created`.
    public static func subscriptions(runtime: ServiceRuntime) throws -> [EventSubscription] {
        let sender = try makeSender(
            environment: runtime.environment, httpClient: runtime.httpClient, logger: runtime.logger)
        return [
            EventSubscription("order.created") { event, database in
                let order = try event.decode(OrderCreated.self)
                guard let subject = order.subject, CallerHeaders.isValidSubject(subject) else {
                    throw NotificationError(message: "order \(order.orderId) names no subject to act for")
                }
                let user = try await Caller.$current.withValue(Caller(subject: subject)) {
                    try await runtime.client.send(.get, to: "user-service", path: "/users/\(order.userId)")
                }
                guard user.status == 200, let recipient = try? user.decode(as: Recipient.self) else {
                    throw NotificationError(message: "user-service answered \(user.status) for user \(order.userId)")
                }
                let message = confirmation(order: order, recipient: recipient)
                let notification = NotificationModel()
                notification.userID = UUID(uuidString: order.userId) ?? UUID()
                notification.subject = subject
                notification.eventID = event.id
                notification.message = message
                notification.channel = sender.channel
                notification.eventAt = event.occurredAt
                try await notification.create(on: database)
                try await sender.send(
                    OutgoingNotification(eventID: event.id, to: recipient.email, name: recipient.name, message: message)
                )
            }
        ]
    }

    /// "Order 1b2c… confirmed: 42.48 USD. Thank you, Ada."
    static func confirmation(order: OrderCreated, recipient: Recipient) -> String {
        let sign = order.total < 0 ? "-" : ""
        let minor = abs(order.total)
        let amount = "\(sign)\(minor / 100).\(String(format: "%02d", minor % 100))"
        return "Order \(order.orderId) confirmed: \(amount) \(order.currency). Thank you, \(recipient.name)."
    }

    public static func routes(runtime: ServiceRuntime, router: Router<BasicRequestContext>) {
        let notifications = router.group("notifications")
        if let token = runtime.internalToken { notifications.add(middleware: InternalAuthMiddleware(token: token)) }
        notifications.get { request, context in
            guard let text = request.uri.queryParameters.get("userId") else {
                throw ServiceError.validation([.init(field: "userId", message: "is required: /notifications?userId=ID")]
                )
            }
            guard let userID = UUID(uuidString: text) else {
                throw ServiceError.validation([.init(field: "userId", message: "must be a user id")])
            }
            let caller = try Caller.required()
            let db = try runtime.requireDatabase().database(logger: context.logger)
            var query = NotificationModel.query(on: db).filter(\.$userID == userID)
            if !caller.isAdmin { query = query.filter(\.$subject == caller.subject) }
            let found = try await query.sort(\.$createdAt).sort(\.$id).limit(100).all()
            return try jsonResponse(NotificationList(items: found.map(NotificationView.init)))
        }
    }
}

/// The part of `order.created` the notification needs.
struct OrderCreated: Decodable {
    var orderId: String
    var userId: String
    /// Who placed the order; events from before orders had owners have none.
    var subject: String?
    var total: Int
    var currency: String
}

struct Recipient: Decodable {
    var name: String
    var email: String
}

struct NotificationError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A confirmation on its way out.
public struct OutgoingNotification: Codable, Sendable {
    public var eventID: String
    public var to: String
    public var name: String
    public var message: String
}

/// Where confirmations go. A send that throws makes the event be delivered again.
public protocol NotificationSender: Sendable {
    /// Recorded with each notification: `log`, `webhook`, `smtp`.
    var channel: String { get }
    func send(_ notification: OutgoingNotification) async throws
}

/// The default: one log line per confirmation.
struct LogSender: NotificationSender {
    let logger: Logger
    var channel: String { "log" }

    func send(_ notification: OutgoingNotification) async throws {
        logger.info(
            "notification sent",
            metadata: [
                "to": "\(notification.to)", "event_id": "\(notification.eventID)", "text": "\(notification.message)",
            ])
    }
}

/// POSTs each confirmation as JSON to `NOTIFICATION_WEBHOOK_URL` with the event id as `Idempotency-Key`; anything
/// but a 2xx answer within 5 s is a failed send.
struct WebhookSender: NotificationSender {
    let url: String
    let httpClient: HTTPClient
    var channel: String { "webhook" }

    func send(_ notification: OutgoingNotification) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: notification.eventID)
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(notification)))
        let response = try await httpClient.execute(request, timeout: .seconds(5))
        _ = try? await response.body.collect(upTo: 64 * 1024)
        guard (200..<300).contains(response.status.code) else {
            throw NotificationError(message: "the webhook \(url) answered \(response.status.code)")
        }
    }
}

/// The sender `NOTIFICATION_SENDER` names: `log` (default), `webhook` (needs `NOTIFICATION_WEBHOOK_URL`) or `smtp`
/// (needs `SMTP_URL`; from `NOTIFICATION_FROM`).
func makeSender(environment: [String: String], httpClient: HTTPClient, logger: Logger) throws(ServiceKitError)
    -> any NotificationSender
{
    switch environment["NOTIFICATION_SENDER"] ?? "log" {
    case "log":
        return LogSender(logger: logger)
    case "webhook":
        guard let url = environment["NOTIFICATION_WEBHOOK_URL"], url.hasPrefix("http://") || url.hasPrefix("https://")
        else {
            throw ServiceKitError.configuration(
                "NOTIFICATION_WEBHOOK_URL", "must be an http(s) URL when NOTIFICATION_SENDER=webhook"
            )
        }
        return WebhookSender(url: url, httpClient: httpClient)
    case "smtp":
        guard let url = environment["SMTP_URL"] else {
            throw ServiceKitError.configuration("SMTP_URL", "must be smtp://HOST:PORT when NOTIFICATION_SENDER=smtp")
        }
        return try SMTPSender(url: url, from: environment["NOTIFICATION_FROM"] ?? "notifications@localhost")
    case let other:
        throw ServiceKitError.configuration("NOTIFICATION_SENDER", "must be log, webhook or smtp, not \"\(other)\"")
    }
}

struct NotificationView: Codable {
    var id: String
    var userId: String
    var eventId: String
    var message: String
    var channel: String
    var createdAt: String?

    init(_ model: NotificationModel) {
        id = model.id!.uuidString.lowercased()
        userId = model.userID.uuidString.lowercased()
        eventId = model.eventID
        message = model.message
        channel = model.channel
        createdAt = model.createdAt.map { $0.formatted(.iso8601) }
    }
}

struct NotificationList: Codable {
    var items: [NotificationView]
}

final class NotificationModel: Model, @unchecked Sendable {
    static let schema = "notifications"

    @ID(key: .id) var id: UUID?
    @Field(key: "user_id") var userID: UUID
    /// The event it answers, unique: a redelivered event cannot notify twice.
    @Field(key: "event_id") var eventID: String
    @Field(key: "message") var message: String
    @Field(key: "channel") var channel: String
    /// When the event happened (the order's commit): the benchmark's start of the clock.
    @OptionalField(key: "event_at") var eventAt: Date?
    /// Whose it is: the order's subject.
    @OptionalField(key: "subject") var subject: String?
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?

    init() {}
}

struct CreateNotifications: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(NotificationModel.schema)
            .id()
            .field("user_id", .uuid, .required)
            .field("event_id", .string, .required)
            .field("message", .string, .required)
            .field("channel", .string, .required)
            .field("created_at", .datetime)
            .unique(on: "event_id")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(NotificationModel.schema).delete()
    }
}

struct AddEventTimeToNotifications: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(NotificationModel.schema).field("event_at", .datetime).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(NotificationModel.schema).deleteField("event_at").update()
    }
}

struct AddSubjectToNotifications: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(NotificationModel.schema).field("subject", .string).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(NotificationModel.schema).deleteField("subject").update()
    }
}
