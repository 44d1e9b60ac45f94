/// How a route's path prefix matches and rewrites a request path: Gateway API's `PathPrefix` and
/// `ReplacePrefixMatch`, which the generated nginx.conf and HTTPRoutes follow too.
///
/// A prefix matches by whole segments (`/api/users` matches `/api/users` and `/api/users/7`, not `/api/usersX`);
/// a trailing `/` does not change what it matches; the longest prefix wins.
public struct RoutePrefix: Sendable, Hashable, CustomStringConvertible {
    /// The prefix without a trailing `/`; the root prefix is `/`.
    public let normalized: String

    public init(_ prefix: String) {
        normalized = Self.normalize(prefix)
    }

    public var description: String { normalized }

    /// `/api/users/` → `/api/users`; `/` and `//` → `/`.
    public static func normalize(_ path: String) -> String {
        var end = path.utf8.endIndex
        while end > path.utf8.startIndex, path.utf8[path.utf8.index(before: end)] == UInt8(ascii: "/") {
            end = path.utf8.index(before: end)
        }
        return end == path.utf8.startIndex ? "/" : String(path[..<end])
    }

    /// True for the prefix `/`, which matches every path.
    public var isRoot: Bool { normalized == "/" }

    /// Whether `path` (no query) is this prefix or below it by whole segments.
    public func matches(_ path: String) -> Bool {
        if isRoot { return true }
        guard path.utf8.starts(with: normalized.utf8) else { return false }
        let rest = path.utf8.dropFirst(normalized.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }

    /// `path` with this prefix replaced by `rewrite`, as `ReplacePrefixMatch` does; `path` must match.
    /// `/api/users` → `/users`: `/api/users` becomes `/users`, `/api/users/7` becomes `/users/7`.
    public func rewrite(_ path: String, to rewrite: String) -> String {
        let rest = isRoot ? Substring(path) : Substring(path.utf8.dropFirst(normalized.utf8.count))
        let base = Self.normalize(rewrite)
        if rest.isEmpty { return base }
        if base == "/" { return rest.utf8.first == UInt8(ascii: "/") ? String(rest) : "/" + rest }
        return base + rest
    }

    /// The order a router tries prefixes in, so that the first match is the longest: longer first, then by text
    /// (which makes the order of equal lengths, and so every generated file, deterministic).
    public static func matchOrder(_ first: String, _ second: String) -> Bool {
        let a = first.utf8.count
        let b = second.utf8.count
        return a != b ? a > b : first < second
    }
}
