public import Foundation

/// The gateway's routes: `gateway/routes.json` as `orchestrate generate gateway` writes it (docs/generate.md).
public struct RouteTable: Sendable {
    public struct Route: Sendable, Decodable {
        public struct Upstream: Sendable, Decodable {
            public var service: String
            public var port: Int
            public var url: String
        }

        public struct RateLimit: Sendable, Decodable {
            public var rps: Double
            public var burst: Int
        }

        public var prefix: String
        public var rewrite: String?
        public var methods: [String]
        public var upstream: Upstream
        public var auth: String?
        public var rateLimit: RateLimit?
        public var timeoutMilliseconds: Int
        public var maxBodyBytes: Int

        public var requiresJWT: Bool { auth == "jwt" }
    }

    public struct JWTSettings: Sendable, Decodable {
        public var algorithm: String
        public var issuer: String?
        public var audience: String?
    }

    struct File: Decodable {
        var gateway: String?
        var jwt: JWTSettings?
        var routes: [Route]
    }

    public var routes: [Route]
    public var jwt: JWTSettings?

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads the table; every route's prefix must start with `/` and name an upstream URL.
    public init(json data: Data, source: String) throws {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw LoadError(description: "\(source) is not a route table (regenerate it with `orchestrate generate gateway`): \(error)")
        }
        for route in file.routes {
            guard route.prefix.hasPrefix("/") else {
                throw LoadError(description: "\(source): route prefix \"\(route.prefix)\" must start with /")
            }
            guard URLComponents(string: route.upstream.url)?.host != nil else {
                throw LoadError(description: "\(source): route \(route.prefix) has no upstream URL")
            }
        }
        // Longest prefix first, so the first match is the most specific.
        routes = file.routes.sorted { $0.prefix.count > $1.prefix.count }
        jwt = file.jwt
    }

    public init(routes: [Route], jwt: JWTSettings?) {
        self.routes = routes.sorted { $0.prefix.count > $1.prefix.count }
        self.jwt = jwt
    }

    /// The most specific route whose prefix matches `path` by whole segments, as Gateway API's `PathPrefix` does:
    /// `/api/users` matches `/api/users` and `/api/users/7`, not `/api/usersX`.
    public func route(for path: String) -> Route? {
        routes.first { Self.matches(prefix: $0.prefix, path: path) }
    }

    static func matches(prefix: String, path: String) -> Bool {
        let prefix = prefix.count > 1 && prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        if prefix == "/" { return true }
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.dropFirst(prefix.count)
        return rest.isEmpty || rest.hasPrefix("/")
    }

    /// `path` with the route's prefix replaced by its rewrite, as `ReplacePrefixMatch` does; the query is kept.
    static func rewrite(path: String, query: String?, route: Route) -> String {
        var target = path
        if let rewrite = route.rewrite {
            let prefix = route.prefix.count > 1 && route.prefix.hasSuffix("/") ? String(route.prefix.dropLast()) : route.prefix
            let rest = prefix == "/" ? Substring(path) : path.dropFirst(prefix.count)
            let base = rewrite.count > 1 && rewrite.hasSuffix("/") ? String(rewrite.dropLast()) : rewrite
            if rest.isEmpty {
                target = base
            } else if base == "/" {
                target = rest.hasPrefix("/") ? String(rest) : "/" + rest
            } else {
                target = base + rest
            }
        }
        if let query, !query.isEmpty { target += "?" + query }
        return target
    }
}
