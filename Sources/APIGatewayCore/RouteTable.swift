public import Foundation
public import OrchestrateContract

/// The gateway's routes, read from the contract's `RouteTableFile` (`gateway/routes.json` as `orchestrate generate
/// gateway` writes it) and matched by the contract's `RoutePrefix` rules.
public struct RouteTable: Sendable {
    public typealias Route = RouteTableFile.Route
    public typealias JWTSettings = RouteTableFile.JWTSettings

    /// In match order: the first route whose prefix matches is the longest.
    public let routes: [Route]
    public let jwt: JWTSettings?
    /// Each route's prefix, parsed once at load, in the order of `routes`.
    private let prefixes: [RoutePrefix]

    /// Reads the table; every route's prefix must start with `/` and name an upstream URL.
    public init(json data: Data, source: String) throws {
        let file: RouteTableFile
        do {
            file = try JSONDecoder().decode(RouteTableFile.self, from: data)
        } catch {
            throw GatewayError(
                .routeTable, "\(source) is not a route table (regenerate it with `orchestrate generate gateway`)",
                underlying: error)
        }
        for route in file.routes {
            guard route.prefix.hasPrefix("/") else {
                throw GatewayError(.routeTable, "\(source): route prefix \"\(route.prefix)\" must start with /")
            }
            guard URLComponents(string: route.upstream.url)?.host != nil else {
                throw GatewayError(.routeTable, "\(source): route \(route.prefix) has no upstream URL")
            }
        }
        self.init(routes: file.routes, jwt: file.jwt)
    }

    public init(routes: [Route], jwt: JWTSettings?) {
        self.routes = routes.sorted { RoutePrefix.matchOrder($0.prefix, $1.prefix) }
        self.jwt = jwt
        prefixes = self.routes.map { RoutePrefix($0.prefix) }
    }

    /// The most specific route whose prefix matches `path` by whole segments, as Gateway API's `PathPrefix` does:
    /// `/api/users` matches `/api/users` and `/api/users/7`, not `/api/usersX`.
    public func route(for path: String) -> Route? {
        index(for: path).map { routes[$0] }
    }

    /// The index in `routes` of the route for `path`.
    public func index(for path: String) -> Int? {
        prefixes.firstIndex { $0.matches(path) }
    }

    /// `path` (normalized by `RequestPath`) with the route's prefix replaced by its rewrite, as `ReplacePrefixMatch`
    /// does, escaped for the request line as nginx escapes it; the query is kept as the client sent it.
    static func rewrite(path: String, query: String?, route: Route) -> String {
        var target = path
        if let rewrite = route.rewrite { target = RoutePrefix(route.prefix).rewrite(path, to: rewrite) }
        target = RequestPath.escape(target)
        if let query, !query.isEmpty { target += "?" + query }
        return target
    }
}
