import Foundation
import HTTPTypes
public import Hummingbird
import OrchestrateContract

/// Who a request acts for: the subject the gateway verified and its roles (`CallerHeaders`). Set for the handler
/// by `InternalAuthMiddleware` once the service token is right, and carried on by `ServiceClient` to every call the
/// handler makes, so a service downstream authorizes the same subject.
public struct Caller: Sendable, Equatable {
    public var subject: String
    public var roles: Set<String>

    public init(subject: String, roles: Set<String> = []) {
        self.subject = subject
        self.roles = roles
    }

    /// The caller of the request being handled (or of the event being handled, when its handler says so).
    @TaskLocal public static var current: Caller?

    /// Whether the caller holds the `admin` role, which may list and read everything.
    public var isAdmin: Bool { roles.contains(CallerHeaders.adminRole) }

    /// Whether the caller may see or act on something that belongs to `owner`: its own, or any for an admin.
    public func mayAccess(ownedBy owner: String?) -> Bool { isAdmin || owner == subject }

    /// The caller of the request being handled; a request that carries none is a 401, since every endpoint that
    /// asks acts for someone.
    public static func required() throws -> Caller {
        guard let current else {
            throw ServiceError(
                .unauthorized, code: "no-subject",
                message: "this endpoint acts for a user: call it through the gateway with a bearer token")
        }
        return current
    }

    /// The caller the headers name, or nil when there is no valid subject. Roles that are not plain words are
    /// dropped.
    public init?(headers: HTTPFields) {
        guard let subject = headers[HTTPField.Name(CallerHeaders.subject)!], CallerHeaders.isValidSubject(subject)
        else { return nil }
        let roles = headers[HTTPField.Name(CallerHeaders.roles)!].map { list in
            Set(
                list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    .filter(CallerHeaders.isValidRole))
        }
        self.init(subject: subject, roles: roles ?? [])
    }

    /// The headers that carry this caller on to another service.
    public var headers: [(String, String)] {
        var headers = [(CallerHeaders.subject, subject)]
        if !roles.isEmpty { headers.append((CallerHeaders.roles, roles.sorted().joined(separator: ","))) }
        return headers
    }
}
