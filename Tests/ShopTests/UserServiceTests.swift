import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import OrchestrateContract
import OrchestrateTestSupport
import ServiceKit
import Testing

@testable import UserServiceCore

@Suite(.timeLimit(.minutes(5)), .serialized) struct UserServiceTests {
    func withUsers(_ database: TestDatabase, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void)
        async throws
    {
        try await withService(UserService.definition, database: database, routes: UserService.routes) { client, _ in
            try await body(client)
        }
    }

    @Test(
        .requires("PostgreSQL (ORCHESTRATE_TEST_POSTGRES)", TestDatabase.postgresIsAvailable),
        arguments: TestDatabase.allCases) func createThenGet(database: TestDatabase) async throws
    {
        try await withUsers(database) { client in
            let email = "ada-\(unique())@example.com"
            let created = try await client.execute(
                uri: "/users", method: .post, headers: newSubjectHeaders,
                body: body(#"{"name":"  Ada Lovelace ","email":"\#(email.uppercased())"}"#))
            #expect(created.status == .created)
            let id = try #require(created.json["id"] as? String)
            #expect(created.json["name"] as? String == "Ada Lovelace")
            #expect(created.json["email"] as? String == email)
            #expect(created.headers[.location] == "/users/\(id)")
            let fetched = try await client.execute(uri: "/users/\(id)", method: .get, headers: internalHeaders)
            #expect(fetched.status == .ok)
            #expect(fetched.json["email"] as? String == email)
        }
    }

    @Test(
        .requires("PostgreSQL (ORCHESTRATE_TEST_POSTGRES)", TestDatabase.postgresIsAvailable),
        arguments: TestDatabase.allCases) func aDuplicateEmailIs409(database: TestDatabase) async throws
    {
        try await withUsers(database) { client in
            let email = "bob-\(unique())@example.com"
            let first = try await client.execute(
                uri: "/users", method: .post, headers: newSubjectHeaders,
                body: body(#"{"name":"Bob","email":"\#(email)"}"#))
            #expect(first.status == .created)
            // Same address, other case: still the same person.
            let second = try await client.execute(
                uri: "/users", method: .post, headers: newSubjectHeaders,
                body: body(#"{"name":"Bobby","email":"\#(email.uppercased())"}"#))
            #expect(second.status == .conflict)
            #expect(second.errorCode == "email-taken")
        }
    }

    @Test func validationListsEveryField() async throws {
        try await withUsers(.sqlite) { client in
            let response = try await client.execute(
                uri: "/users", method: .post, headers: newSubjectHeaders,
                body: body(#"{"name":" ","email":"not-an-email"}"#))
            #expect(response.status == .badRequest)
            #expect(response.errorCode == "validation-failed")
            #expect(response.errorFields == ["name", "email"])
            let wrongType = try await client.execute(
                uri: "/users", method: .post, headers: internalHeaders, body: body(#"{"name":7,"email":"a@b.co"}"#))
            #expect(wrongType.status == .badRequest)
            #expect(wrongType.errorFields == ["name"])
            let missing = try await client.execute(
                uri: "/users", method: .post, headers: internalHeaders, body: body(#"{"name":"x"}"#))
            #expect(missing.errorFields == ["email"])
            let notJSON = try await client.execute(
                uri: "/users", method: .post, headers: internalHeaders, body: body("{"))
            #expect(notJSON.status == .badRequest)
            #expect(notJSON.errorFields == ["body"])
        }
    }

    @Test func emailRules() {
        for good in ["a@b.co", "first.last+tag@mail.example.org", "x_y@sub-domain.example.com"] {
            #expect(NewUser.isEmail(good), "\(good)")
        }
        for bad in ["", "a", "a@b", "@b.co", "a@@b.co", "a b@c.co", "a@-b.co", "a@b..co", "a@b.co ", "<a>@b.co"] {
            #expect(!NewUser.isEmail(bad), "\(bad)")
        }
    }

    @Test(
        .requires("PostgreSQL (ORCHESTRATE_TEST_POSTGRES)", TestDatabase.postgresIsAvailable),
        arguments: TestDatabase.allCases) func unknownOrMalformedIdIs404(database: TestDatabase) async throws
    {
        try await withUsers(database) { client in
            for id in [UUID().uuidString, "not-a-uuid"] {
                let response = try await client.execute(uri: "/users/\(id)", method: .get, headers: internalHeaders)
                #expect(response.status == .notFound)
                #expect(response.errorCode == "not-found")
            }
        }
    }

    @Test(
        .requires("PostgreSQL (ORCHESTRATE_TEST_POSTGRES)", TestDatabase.postgresIsAvailable),
        arguments: TestDatabase.allCases) func cursorPaginationVisitsEveryUserOnce(database: TestDatabase) async throws
    {
        try await withUsers(database) { client in
            let tag = unique()
            var created: Set<String> = []
            for index in 0..<7 {
                let response = try await client.execute(
                    uri: "/users", method: .post, headers: newSubjectHeaders,
                    body: body(#"{"name":"P\#(index)","email":"p\#(index)-\#(tag)@example.com"}"#))
                created.insert(try #require(response.json["id"] as? String))
            }
            var seen: [String] = []
            var cursor: String?
            for _ in 0..<1000 {  // bounded: a broken cursor cannot loop forever
                let query = "/users?limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await client.execute(uri: query, method: .get, headers: internalHeaders)
                #expect(page.status == .ok)
                let items = page.json["items"] as? [[String: Any]] ?? []
                #expect(items.count <= 3)
                seen += items.compactMap { $0["id"] as? String }
                cursor = page.json["nextCursor"] as? String
                if cursor == nil { break }
            }
            #expect(Set(seen).count == seen.count, "a user appeared on two pages")
            #expect(created.isSubset(of: Set(seen)))
            let bad = try await client.execute(uri: "/users?limit=0&cursor=zz", method: .get, headers: internalHeaders)
            #expect(bad.status == .badRequest)
            #expect(bad.errorFields == ["limit", "cursor"])
        }
    }

    @Test func withoutTheServiceTokenIs401() async throws {
        try await withUsers(.sqlite) { client in
            for token in [nil, "wrong", testToken + "x"] {
                var headers = internalHeaders
                headers[HTTPField.Name("X-Service-Token")!] = token
                let response = try await client.execute(uri: "/users", method: .get, headers: headers)
                #expect(response.status == .unauthorized)
                #expect(response.errorCode == "unauthorized")
            }
            // Health, readiness and metrics stay open to probes and scrapers.
            #expect(try await client.execute(uri: "/health", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/ready", method: .get).status == .ok)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(String(buffer: metrics.body).contains("http_server_request_duration"))
        }
    }

    @Test func unknownRouteIsJSON404WithRequestID() async throws {
        try await withUsers(.sqlite) { client in
            let response = try await client.execute(
                uri: "/nowhere", method: .get, headers: [HTTPField.Name("X-Request-ID")!: "req-42"])
            #expect(response.status == .notFound)
            #expect(response.errorCode == "not-found")
            #expect(response.headers[HTTPField.Name("X-Request-ID")!] == "req-42")
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
        }
    }
}
