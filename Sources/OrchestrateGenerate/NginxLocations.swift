import OrchestrateContract

/// The nginx `location` blocks of one route, matching as Gateway API's PathPrefix does: whole path segments,
/// so `/api/users` matches `/api/users` and `/api/users/7` but not `/api/usersX`; and rewriting as
/// ReplacePrefixMatch does: `/api/users` → `/users`, `/api/users/7` → `/users/7`.
struct NginxLocations {
    let contexts: [[String: Any]]

    init(prefix: RoutePrefix, rewrite: String?) {
        // nginx writes the root as the empty string before `/…`.
        let trimmedPrefix = prefix.isRoot ? "" : prefix.normalized
        let trimmedRewrite = rewrite.map { RoutePrefix.normalize($0) }.map { $0 == "/" ? "" : $0 }
        typealias N = OutputEscaping
        if trimmedPrefix.isEmpty {
            // The root prefix: one location for everything.
            var context: [String: Any] = ["match": N.nginx("/", interpolated: false)]
            context["rewrite"] =
                trimmedRewrite.map { Self.rewrite(pattern: "^/(.*)$", replacement: $0 + "/$1") } ?? Self.normalizedURI
            contexts = [context]
            return
        }
        var exact: [String: Any] = ["match": "= " + N.nginx(trimmedPrefix, interpolated: false)]
        var below: [String: Any] = ["match": "^~ " + N.nginx(trimmedPrefix + "/", interpolated: false)]
        if let target = trimmedRewrite {
            exact["rewrite"] = Self.rewrite(pattern: "^", replacement: target.isEmpty ? "/" : target)
            below["rewrite"] = Self.rewrite(
                pattern: "^" + N.regexLiteral(trimmedPrefix) + "/(.*)$", replacement: target + "/$1")
        } else {
            exact["rewrite"] = Self.normalizedURI
            below["rewrite"] = Self.normalizedURI
        }
        contexts = [exact, below]
    }

    /// A route without a rewrite still rewrites to `$uri`: nginx then sends the path it matched on (decoded, slashes
    /// merged, dot segments resolved, escaped again), not the client's raw one, as the gateway does (`RequestPath`).
    /// Otherwise `/api/public//admin` matches `/api/public` here and means `/api/public/admin` upstream.
    private static let normalizedURI = ["pattern": "^", "replacement": "$uri"]

    /// The replacement is interpolated by nginx: a `$` from the spec is written as `${dollar}`, and only the
    /// capture `$1` the generator adds stays a variable.
    private static func rewrite(pattern: String, replacement: String) -> [String: String] {
        let capture = replacement.hasSuffix("$1")
        let literal = capture ? String(replacement.dropLast(2)) : replacement
        let quoted = OutputEscaping.nginx(literal, interpolated: true)
        return [
            "pattern": OutputEscaping.nginx(pattern, interpolated: false),
            "replacement": capture ? String(quoted.dropLast()) + "$1\"" : quoted,
        ]
    }
}
