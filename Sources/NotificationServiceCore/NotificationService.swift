import FluentKit
import Foundation
public import Hummingbird
public import ServiceKit

/// notification-service: the confirmations sent to users. `GET /notifications?userId=` lists a user's.
///
/// Filling it — consuming `order.created` from the broker, looking the user up, sending and recording the
/// confirmation — is the event half of the shop (issue 6: the outbox, the consumer, the inbox table); until then
/// the service runs, migrates its database and answers the listing, so the whole shop starts under `orchestrate up`.
public enum NotificationService {
    public static let definition = ServiceDefinition(
        name: "notification-service", defaultPort: 3004, dependencies: ["user-service"], requiresInternalToken: true,
        migrations: [CreateNotifications()])

    public static func routes(runtime: ServiceRuntime, router: Router<BasicRequestContext>) {
        let notifications = router.group("notifications")
        if let token = runtime.internalToken { notifications.add(middleware: InternalAuthMiddleware(token: token)) }
        notifications.get { request, context in
            guard let text = request.uri.queryParameters.get("userId") else {
                throw ServiceError.validation([.init(field: "userId", message: "is required: /notifications?userId=ID")])
            }
            guard let userID = UUID(uuidString: text) else {
                throw ServiceError.validation([.init(field: "userId", message: "must be a user id")])
            }
            let db = runtime.database!.database(logger: context.logger)
            let found = try await NotificationModel.query(on: db)
                .filter(\.$userID == userID).sort(\.$createdAt).sort(\.$id).limit(100).all()
            return try jsonResponse(NotificationList(items: found.map(NotificationView.init)))
        }
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
