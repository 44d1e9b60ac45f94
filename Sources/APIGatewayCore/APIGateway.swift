import Foundation
import HTTPTypes
public import Hummingbird
public import HummingbirdCore
import JWTKit
import Logging
import NIOCore
import NIOHTTP1
import OrchestrateContract
public import ServiceKit
import Synchronization

/// api-gateway: the only way in. Matches the route table by longest whole-segment prefix, checks JWTs, limits rates
/// and body sizes, and proxies with streaming bodies over kept-alive connections, with a deadline and a circuit
/// breaker per upstream, spreading load over every address an upstream's name resolves to. Every request is handled
/// on the event loop of its connection (`ProxyHandler`), without a task per request.
///
/// Configuration: `ROUTES_FILE` (default `gateway/routes.json`), `JWT_SECRET` (HS256) or `JWT_PUBLIC_KEY` (RS256,
/// PEM), `JWT_ALGORITHM`, `JWT_ISSUER`, `JWT_AUDIENCE` (override the table's), `<SERVICE>_URL` to point a route's
/// upstream elsewhere (`USER_SERVICE_URL=http://127.0.0.1:3001`), `INTERNAL_TOKEN` (sent upstream),
/// `TRUSTED_PROXIES` (comma-separated addresses of proxies in front of the gateway whose `X-Forwarded-For` it
/// believes; without it, the client is the peer of the connection and the client's own forwarding headers are
/// replaced), `RATE_LIMIT_MAX_CLIENTS` (default 100,000 rate-limit buckets; past it, new clients share one),
/// `METRICS_PORT` (where `/metrics` is served, on the same host; the public port never serves it), and
/// ServiceKit's `HTTP_IDLE_TIMEOUT`, `HTTP_BODY_READ_TIMEOUT`, `HTTP_SEND_TIMEOUT` and `HTTP_MAX_HEADER_BYTES`.
public enum APIGateway {
    public static let definition = ServiceDefinition(name: "api-gateway", defaultPort: 3000)

    /// The gateway's server: its own HTTP/1 channel (`GatewayChannel`) in place of the router's.
    public static func server(runtime: ServiceRuntime) async throws -> HTTPServerBuilder {
        let proxy = try await GatewayProxy(runtime: runtime)
        return HTTPServerBuilder { _ in GatewayChannel(proxy: proxy) }
    }

    /// The router `ServiceMain` builds is never asked: `server` answers everything, `/health` and `/ready` too.
    public static func routes(runtime: ServiceRuntime, router: Router<BasicRequestContext>) async throws {}
}

/// What the gateway knows, shared by every connection: the route table, keys, limits and upstreams, and the checks
/// that need nothing but a request head.
final class GatewayProxy: Sendable {
    let table: RouteTable
    let keys: JWTKeyCollection?
    let issuer: String?
    let audience: String?
    /// The claim path of the roles, split at its dots.
    let rolesClaim: [String]
    let upstreams: [String: Upstream]
    let resolver: UpstreamResolver
    let client: ServiceClient
    let limiter: RateLimiter
    let internalToken: String?
    /// Peers whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    let trustedProxies: Set<String>
    let runtime: ServiceRuntime
    let limits: ServerLimits
    let logger: Logger
    let requestLogLevel: Logger.Level
    /// Per route, in the order of `table.routes`: what is computed once rather than per request.
    let prepared: [PreparedRoute]
    let tokens: VerifiedTokens
    let loops = LoopStates()

    /// Where a route's requests go.
    struct Upstream: Sendable {
        var scheme: String
        var host: String
        var port: Int?
        /// `Host` as the upstream is sent it.
        var authority: String
    }

    /// A route with its upstream and breaker looked up.
    struct PreparedRoute: Sendable {
        let route: RouteTable.Route
        let index: Int
        let upstream: Upstream
        let breaker: CircuitBreaker
        let allowed: String
    }

    init(runtime: ServiceRuntime, table: RouteTable? = nil) async throws {
        let environment = runtime.environment
        if let table {
            self.table = table
        } else {
            let path = environment[ServiceVariable.routesFile] ?? RouteTableFile.generatedPath
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ServiceKitError.configuration(
                    ServiceVariable.routesFile, "cannot read \(path); write it with `orchestrate generate gateway`")
            }
            do {
                self.table = try RouteTable(json: data, source: path)
            } catch {
                throw ServiceKitError.configuration(ServiceVariable.routesFile, "\(error)")
            }
        }
        let settings = self.table.jwt
        issuer = environment[ServiceVariable.jwtIssuer] ?? settings?.issuer
        audience = environment[ServiceVariable.jwtAudience] ?? settings?.audience
        rolesClaim = (settings?.rolesClaim ?? CallerHeaders.defaultRolesClaim).split(separator: ".").map(String.init)
        let algorithm = environment[ServiceVariable.jwtAlgorithm] ?? settings?.algorithm ?? "HS256"
        if self.table.routes.contains(where: \.requiresJWT) {
            keys = try await Self.makeKeys(algorithm: algorithm, environment: environment)
        } else {
            keys = nil
        }
        var upstreams: [String: Upstream] = [:]
        for route in self.table.routes {
            let variable = ServiceVariable.url(of: route.upstream.service)
            let url = environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? route.upstream.url
            guard let components = URLComponents(string: url), let scheme = components.scheme,
                let host = components.host
            else {
                throw ServiceKitError.configuration(variable, "must be an http:// URL, not \"\(url)\"")
            }
            guard scheme == "http" else {
                throw ServiceKitError.configuration(variable, "must be an http:// URL, not \"\(url)\"")
            }
            upstreams[route.upstream.service] = Upstream(
                scheme: scheme, host: host, port: components.port,
                authority: components.port.map { "\(host):\($0)" } ?? host)
        }
        self.upstreams = upstreams
        self.runtime = runtime
        limits = runtime.serverLimits
        logger = runtime.logger
        requestLogLevel = runtime.requestLogLevel
        tokens = VerifiedTokens()
        resolver = UpstreamResolver(
            dns: try runtime.configuration.dnsServer.map { server in
                do {
                    return try DNSResolver(host: server.host, port: server.port)
                } catch {
                    throw ServiceKitError.configuration(ServiceVariable.dnsServer, "is not an IP address and port")
                }
            })
        client = runtime.client
        internalToken = runtime.configuration.internalToken
        var trusted: Set<String> = []
        for entry in (environment["TRUSTED_PROXIES"] ?? "").split(separator: ",") {
            let text = entry.trimmingCharacters(in: .whitespaces)
            guard let address = try? SocketAddress(ipAddress: text, port: 0), let ip = address.ipAddress else {
                throw ServiceKitError.configuration("TRUSTED_PROXIES", "\"\(text)\" is not an IP address")
            }
            trusted.insert(ip)
        }
        trustedProxies = trusted
        let maxClients = environment["RATE_LIMIT_MAX_CLIENTS"].flatMap(Int.init) ?? 100_000
        guard maxClients > 0 else {
            throw ServiceKitError.configuration("RATE_LIMIT_MAX_CLIENTS", "must be a positive number of clients")
        }
        limiter = RateLimiter(maxClients: maxClients)
        prepared = self.table.routes.enumerated().map { index, route in
            PreparedRoute(
                route: route, index: index, upstream: upstreams[route.upstream.service]!,
                breaker: runtime.client.breaker(for: route.upstream.service),
                allowed: route.methods.joined(separator: ", "))
        }
    }

    /// The route for a normalized path.
    func route(for path: String) -> PreparedRoute? {
        table.index(for: path).map { prepared[$0] }
    }

    static func makeKeys(algorithm: String, environment: [String: String]) async throws -> JWTKeyCollection {
        let keys = JWTKeyCollection()
        func secret(_ name: String) throws -> String {
            if let value = environment[name], !value.isEmpty { return value }
            if let path = environment[ServiceVariable.file(name)], !path.isEmpty {
                do {
                    return try ServiceConfiguration.readFile(path).trimmingCharacters(in: .whitespacesAndNewlines)
                } catch {
                    throw ServiceKitError.configuration(ServiceVariable.file(name), "cannot read \(path): \(error)")
                }
            }
            throw ServiceKitError.configuration(
                name, "is not set; routes with auth: jwt need it to verify tokens (\(algorithm))")
        }
        switch algorithm {
        case "HS256":
            let key = try secret(ServiceVariable.jwtSecret)
            guard key.utf8.count >= 32 else {
                throw ServiceKitError.configuration(ServiceVariable.jwtSecret, "must be at least 32 bytes for HS256")
            }
            await keys.add(hmac: HMACKey(from: key), digestAlgorithm: .sha256)
        case "RS256":
            do {
                await keys.add(
                    rsa: try Insecure.RSA.PublicKey(pem: try secret(ServiceVariable.jwtPublicKey)),
                    digestAlgorithm: .sha256)
            } catch let error as ServiceKitError where error.code == .configuration {
                throw error
            } catch {
                throw ServiceKitError.configuration(
                    ServiceVariable.jwtPublicKey, "is not an RSA public key in PEM: \(error)")
            }
        default:
            throw ServiceKitError.configuration(
                ServiceVariable.jwtAlgorithm, "must be HS256 or RS256, not \(algorithm)")
        }
        return keys
    }

    /// The claims the gateway checks and forwards: `exp` is required; `nbf` and `iat`, when present, must not be in
    /// the future (a minute of leeway for clocks that disagree).
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var exp: ExpirationClaim
        var nbf: NotBeforeClaim?
        var iat: IssuedAtClaim?
        var iss: IssuerClaim?
        var aud: AudienceClaim?

        static let leeway: TimeInterval = 60

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
            let now = Date()
            if let nbf { try nbf.verifyNotBefore(currentDate: now.addingTimeInterval(Self.leeway)) }
            if let iat, iat.value > now.addingTimeInterval(Self.leeway) {
                throw JWTError.claimVerificationFailure(failedClaim: iat, reason: "issued in the future")
            }
        }
    }

    /// The client this request comes from: the connection's peer, or, when the peer is a trusted proxy, the last
    /// address in `X-Forwarded-For` that is not one.
    func clientAddress(peer: String?, forwardedFor: String?) -> String? {
        guard let peer else { return nil }
        guard trustedProxies.contains(peer), let forwarded = forwardedFor else { return peer }
        let hops = forwarded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !trustedProxies.contains(hop) {
            return (try? SocketAddress(ipAddress: hop, port: 0))?.ipAddress ?? peer
        }
        return peer
    }

    /// The token's subject and roles, or a 401 with `WWW-Authenticate` saying what is wrong.
    func authenticate(_ authorization: String?) async throws -> (caller: Caller, expires: Date) {
        func refuse(_ description: String, error: String? = "invalid_token") -> ServiceError {
            var headers = HTTPFields()
            var challenge = "Bearer realm=\"api\""
            if let error { challenge += ", error=\"\(error)\", error_description=\"\(description)\"" }
            headers[.wwwAuthenticate] = challenge
            return ServiceError(.unauthorized, code: "unauthorized", message: description, headers: headers)
        }
        guard let header = authorization else {
            throw refuse("a bearer token is required", error: nil)
        }
        guard header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            throw refuse("the Authorization header must be \"Bearer TOKEN\"", error: "invalid_request")
        }
        guard let keys else { throw refuse("no key is configured") }
        let token = header.dropFirst(7)
        let claims: Claims
        do {
            claims = try await keys.verify(String(token), as: Claims.self)
        } catch {
            throw refuse("the token is invalid or expired")
        }
        // What the gateway expects is not the client's business: a 401 names the claim, never its expected value.
        if let issuer, claims.iss?.value != issuer {
            throw refuse("the token's issuer is not accepted")
        }
        if let audience {
            do {
                guard let aud = claims.aud else { throw refuse("the token has no audience") }
                try aud.verifyIntendedAudience(includes: audience)
            } catch let error as ServiceError {
                throw error
            } catch {
                throw refuse("the token's audience is not accepted")
            }
        }
        guard CallerHeaders.isValidSubject(claims.sub.value) else {
            throw refuse("the token's subject is empty, longer than 255 bytes or holds control characters")
        }
        let caller = Caller(subject: claims.sub.value, roles: Self.roles(inVerifiedToken: token, at: rolesClaim))
        return (caller, claims.exp.value)
    }

    /// The roles at `path` in the payload of a token whose signature was checked: a list of strings, or one string
    /// of words separated by spaces (as `scope` is). Roles that are not plain words are left out; anything else at
    /// the path means no roles.
    static func roles(inVerifiedToken token: Substring, at path: [String]) -> Set<String> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return [] }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            var value = try? JSONSerialization.jsonObject(with: data) as Any
        else { return [] }
        for name in path {
            guard let object = value as? [String: Any], let next = object[name] else { return [] }
            value = next
        }
        let words: [String] =
            if let list = value as? [Any] {
                list.compactMap { $0 as? String }
            } else if let text = value as? String {
                text.split(separator: " ").map(String.init)
            } else {
                []
            }
        return Set(words.filter(CallerHeaders.isValidRole))
    }

    /// Hop-by-hop headers (RFC 9110 §7.6.1), and what only the gateway may set (`X-Request-ID` is its own).
    static let droppedRequestHeaders = HeaderNames([
        "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding",
        "upgrade", "host", "traceparent", "tracestate", "x-request-id", InternalToken.headerName,
        CallerHeaders.subject, CallerHeaders.roles,
    ])
    static let host = HeaderNames(["host"])
    /// Request headers nginx accepts once only (`ngx_http_headers_in`): a second one is refused with 400.
    static let uniqueRequestHeaders = HeaderNames([
        "authorization", "expect", "if-modified-since", "if-unmodified-since", "if-range", "if-match",
        "if-none-match", "content-range",
    ])
    /// Set by the gateway from the connection; a client's own are dropped unless it is a trusted proxy.
    static let forwardingHeaders = HeaderNames([
        "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip",
    ])

    /// Whether a header value can be sent as it is: no control characters other than tab (RFC 9110 §5.5).
    static func isSendable(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    /// RFC 7239 `Forwarded` for a client at `peer` that asked for `host`; the host is a quoted string.
    static func forwarded(peer: String, host: String?) -> String {
        var value = "for=" + (peer.contains(":") ? "\"[\(peer)]\"" : peer) + ";proto=http"
        if let host, isSendable(host) {
            var quoted = ""
            for character in host {
                if character == "\"" || character == "\\" { quoted.append("\\") }
                quoted.append(character)
            }
            value += ";host=\"" + quoted + "\""
        }
        return value
    }

    /// Hop-by-hop response headers, the upstream's `Server`, and `X-Request-ID` (the gateway's own).
    static let droppedResponseHeaders = HeaderNames([
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "server",
        "x-request-id",
    ])
}
