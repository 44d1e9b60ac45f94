import Foundation
import Hummingbird
import Synchronization

/// catalog: lists items, and says which replica answered (`HOST:PORT`), so a caller can see calls spread.
///
/// `/health` is liveness; `/ready` is readiness, which `POST /ready/off` turns off (and `/ready/on` back on) for
/// this replica only: what a replica does while it warms a cache or drains.
@main struct Catalog {
    struct Items: ResponseEncodable {
        var replica: String
        var items: [String]
    }

    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let host = environment["HOST"] ?? "127.0.0.1"
        let port = environment["PORT"].flatMap(Int.init) ?? 8081
        let ready = Mutex(true)
        let router = Router()
        router.get("/health") { _, _ in "ok" }
        router.get("/ready") { _, _ -> Response in
            Response(status: ready.withLock { $0 } ? .ok : .serviceUnavailable)
        }
        router.post("/ready/off") { _, _ -> HTTPResponse.Status in
            ready.withLock { $0 = false }
            return .ok
        }
        router.post("/ready/on") { _, _ -> HTTPResponse.Status in
            ready.withLock { $0 = true }
            return .ok
        }
        router.get("/items") { _, _ in
            Items(replica: "\(host):\(port)", items: ["tea", "kettle", "cup"])
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "catalog"))
        try await app.runService()
    }
}
