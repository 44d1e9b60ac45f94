import FluentKit
import Foundation
public import Hummingbird
import SQLKit
public import ServiceKit

/// user-service: the shop's users. Every endpoint but health, readiness and metrics is internal: the gateway and
/// order-service reach it with the service token, and act for a caller (`Caller`).
///
/// A profile belongs to the subject that created it, and a subject has one. A caller reads only its own profile
/// (another's is a 404, as if it did not exist, so ids cannot be probed); an `admin` reads and lists every one.
public enum UserService {
    public static let definition = ServiceDefinition(
        name: "user-service", defaultPort: 3001, requiresInternalToken: true,
        migrations: [CreateUsers(), AddSubjectToUsers()])

    /// `POST /users`, `GET /users/me`, `GET /users/:id`, `GET /users?limit=&cursor=`.
    public static func routes(runtime: ServiceRuntime, router: Router<BasicRequestContext>) {
        let users = router.group("users")
        if let token = runtime.internalToken { users.add(middleware: InternalAuthMiddleware(token: token)) }
        users.post { request, context in
            let caller = try Caller.required()
            let input = try await request.decodeJSON(as: NewUser.self, context: context)
            let (name, email) = try input.validated()
            let db = try runtime.requireDatabase().database(logger: context.logger)
            if let existing = try await UserModel.query(on: db).filter(\.$subject == caller.subject).first() {
                throw profileExists(existing)
            }
            let user = UserModel(name: name, email: email, subject: caller.subject)
            do {
                try await user.create(on: db)
            } catch let error as any DatabaseError where error.isConstraintFailure {
                // The same subject a moment ago, or the email taken.
                if let existing = try await UserModel.query(on: db).filter(\.$subject == caller.subject).first() {
                    throw profileExists(existing)
                }
                throw ServiceError(.conflict, code: "email-taken", message: "a user with email \(email) exists already")
            }
            return try jsonResponse(
                UserView(user), status: .created, headers: [.location: "/users/\(user.id!.uuidString.lowercased())"])
        }
        users.get("me") { _, context in
            let caller = try Caller.required()
            let db = try runtime.requireDatabase().database(logger: context.logger)
            guard let user = try await UserModel.query(on: db).filter(\.$subject == caller.subject).first() else {
                throw ServiceError(.notFound, code: "not-found", message: "you have no profile yet: POST /users")
            }
            return try jsonResponse(UserView(user))
        }
        users.get(":id") { _, context in
            let caller = try Caller.required()
            let db = try runtime.requireDatabase().database(logger: context.logger)
            let user = try await UserModel.find(parameter: context.parameters.get("id"), on: db, what: "user")
            guard caller.mayAccess(ownedBy: user.subject) else {
                throw ServiceError.notFound("no user \(context.parameters.get("id") ?? "")")
            }
            return try jsonResponse(UserView(user))
        }
        users.get { request, context in
            let caller = try Caller.required()
            let db = try runtime.requireDatabase().database(logger: context.logger)
            let page = try Page(query: request.uri.queryParameters)
            var query = UserModel.query(on: db).sort(\.$id).limit(page.limit + 1)
            if !caller.isAdmin { query = query.filter(\.$subject == caller.subject) }
            if let after = page.after { query = query.filter(\.$id > after) }
            let found = try await query.all()
            let items = found.prefix(page.limit).map(UserView.init)
            return try jsonResponse(
                UserPage(items: Array(items), nextCursor: found.count > page.limit ? items.last?.id : nil))
        }
    }

    /// 409 with the caller's profile as `Location`: a subject has one profile.
    static func profileExists(_ existing: UserModel) -> ServiceError {
        var error = ServiceError(
            .conflict, code: "profile-exists", message: "you have a profile already; change it rather than add one")
        error.headers[.location] = "/users/\(existing.id!.uuidString.lowercased())"
        return error
    }
}

/// The body of `POST /users`.
struct NewUser: Decodable {
    var name: String
    var email: String

    /// The trimmed name and the lowercased email, or every field's problem at once.
    func validated() throws -> (String, String) {
        var problems: [ServiceError.FieldError] = []
        let name = name.trimmingCharacters(in: .whitespacesAndNewlines)
        if name.isEmpty { problems.append(.init(field: "name", message: "must not be empty")) }
        if name.count > 200 { problems.append(.init(field: "name", message: "must be at most 200 characters")) }
        let email = email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        if !Self.isEmail(email) {
            problems.append(.init(field: "email", message: "must be an email address such as ada@example.com"))
        }
        guard problems.isEmpty else { throw ServiceError.validation(problems) }
        return (name, email)
    }

    /// One `@`, a non-empty local part, a dotted domain of DNS labels, no spaces, at most 254 characters.
    static func isEmail(_ text: String) -> Bool {
        guard text.utf8.count <= 254 else { return false }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64 else { return false }
        guard !parts[0].contains(where: { $0.isWhitespace || $0.isNewline || "<>()[],;:\\\"".contains($0) })
        else { return false }
        let labels = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }
}

struct UserView: Codable {
    var id: String
    var name: String
    var email: String
    var createdAt: String?

    init(_ user: UserModel) {
        id = user.id!.uuidString.lowercased()
        name = user.name
        email = user.email
        createdAt = user.createdAt.map { $0.formatted(.iso8601) }
    }
}

struct UserPage: Codable {
    var items: [UserView]
    var nextCursor: String?
}

/// `limit` (1–100, default 20) and `cursor` (the last id of the previous page).
struct Page {
    var limit: Int
    var after: UUID?

    init(query: Parameters) throws {
        var problems: [ServiceError.FieldError] = []
        limit = 20
        if let text = query.get("limit") {
            if let value = Int(text), (1...100).contains(value) {
                limit = value
            } else {
                problems.append(.init(field: "limit", message: "must be an integer from 1 to 100"))
            }
        }
        after = nil
        if let text = query.get("cursor") {
            if let id = UUID(uuidString: text) {
                after = id
            } else {
                problems.append(.init(field: "cursor", message: "must be the nextCursor of a previous page"))
            }
        }
        guard problems.isEmpty else { throw ServiceError.validation(problems) }
    }
}

final class UserModel: Model, @unchecked Sendable {
    static let schema = "users"

    @ID(key: .id) var id: UUID?
    @Field(key: "name") var name: String
    @Field(key: "email") var email: String
    /// The subject the profile belongs to; nil only for a profile made before profiles had owners (admins see it).
    @OptionalField(key: "subject") var subject: String?
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?

    init() {}

    init(name: String, email: String, subject: String) {
        self.name = name
        self.email = email
        self.subject = subject
    }
}

struct CreateUsers: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(UserModel.schema)
            .id()
            .field("name", .string, .required)
            .field("email", .string, .required)
            .field("created_at", .datetime)
            .unique(on: "email")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(UserModel.schema).delete()
    }
}

/// Profiles get owners: a `subject` column, unique, so a subject has at most one profile (a unique index allows any
/// number of the NULLs of profiles made before).
struct AddSubjectToUsers: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(UserModel.schema).field("subject", .string).update()
        if let sql = database as? any SQLDatabase {
            try await sql.raw("CREATE UNIQUE INDEX users_subject ON users (subject)").run()
        }
    }

    func revert(on database: any Database) async throws {
        if let sql = database as? any SQLDatabase { try await sql.raw("DROP INDEX users_subject").run() }
        try await database.schema(UserModel.schema).deleteField("subject").update()
    }
}
