import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore

/// storefront: the public face. `GET /products` calls catalog through `CATALOG_URL`; `GET /products/by-name`
/// calls `http://catalog:PORT` as written in code. Both answer with catalog's body, which names the replica.
@main struct Storefront {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let host = environment["HOST"] ?? "127.0.0.1"
        let port = environment["PORT"].flatMap(Int.init) ?? 8080
        guard let catalogURL = environment["CATALOG_URL"], let catalog = URL(string: catalogURL),
            let catalogPort = catalog.port
        else {
            FileHandle.standardError.write(Data("storefront: CATALOG_URL must be http://HOST:PORT\n".utf8))
            exit(78)
        }
        let router = Router()
        router.get("/health") { _, _ in "ok" }
        router.get("/ready") { _, _ in "ok" }
        router.get("/products") { _, _ in try await fetch(catalogURL + "/items") }
        router.get("/products/by-name") { _, _ in try await fetch("http://catalog:\(catalogPort)/items") }
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "storefront"))
        try await app.runService()
    }

    /// Catalog's answer as it came, or 502 naming what failed.
    static func fetch(_ url: String) async throws -> Response {
        do {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
            let body = try await response.body.collect(upTo: 1 << 20)
            return Response(
                status: .init(code: Int(response.status.code)), headers: [.contentType: "application/json"],
                body: .init(byteBuffer: body))
        } catch {
            let message = "{\"error\":\"\(url): \(error)\"}".replacingOccurrences(of: "\n", with: " ")
            return Response(
                status: .badGateway, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: message)))
        }
    }
}
