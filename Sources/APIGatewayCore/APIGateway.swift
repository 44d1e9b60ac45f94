import AsyncHTTPClient
import Foundation
import HTTPTypes
public import Hummingbird
import JWTKit
import Logging
public import NIOCore
import NIOHTTP1
import OrchestrateContract
public import ServiceKit
import Synchronization

/// The request context of the gateway: the client's address, for rate limits and `X-Forwarded-For`.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// api-gateway: the only way in. Matches the route table by longest whole-segment prefix, checks JWTs, limits rates
/// and body sizes, and proxies with streaming bodies over pooled connections, with a deadline and a circuit breaker
/// per upstream, spreading load over every address an upstream's name resolves to.
///
/// Configuration: `ROUTES_FILE` (default `gateway/routes.json`), `JWT_SECRET` (HS256) or `JWT_PUBLIC_KEY` (RS256,
/// PEM), `JWT_ALGORITHM`, `JWT_ISSUER`, `JWT_AUDIENCE` (override the table's), `<SERVICE>_URL` to point a route's
/// upstream elsewhere (`USER_SERVICE_URL=http://127.0.0.1:3001`), `INTERNAL_TOKEN` (sent upstream),
/// `TRUSTED_PROXIES` (comma-separated addresses of proxies in front of the gateway whose `X-Forwarded-For` it
/// believes; without it, the client is the peer of the connection and the client's own forwarding headers are
/// replaced), `RATE_LIMIT_MAX_CLIENTS` (default 100,000 rate-limit buckets; past it, new clients share one).
public enum APIGateway {
    public static let definition = ServiceDefinition(name: "api-gateway", defaultPort: 3000)

    public static func routes(runtime: ServiceRuntime, router: Router<GatewayRequestContext>) async throws {
        let proxy = try await GatewayProxy(runtime: runtime)
        router.middlewares.add(proxy)
    }
}

/// Answers every request that matches a route; the rest fall through to the router (health, readiness, metrics,
/// and a JSON 404).
struct GatewayProxy: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let table: RouteTable
    let keys: JWTKeyCollection?
    let issuer: String?
    let audience: String?
    /// The claim path of the roles, split at its dots.
    let rolesClaim: [String]
    let upstreams: [String: (scheme: String, host: String, port: Int?)]
    let resolver: UpstreamResolver
    let httpClient: HTTPClient
    let client: ServiceClient
    let limiter: RateLimiter
    let internalToken: String?
    /// Peers whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    let trustedProxies: Set<String>

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
        var upstreams: [String: (scheme: String, host: String, port: Int?)] = [:]
        for route in self.table.routes {
            let variable = ServiceVariable.url(of: route.upstream.service)
            let url = environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? route.upstream.url
            guard let components = URLComponents(string: url), let scheme = components.scheme,
                let host = components.host
            else {
                throw ServiceKitError.configuration(variable, "must be an http:// URL, not \"\(url)\"")
            }
            upstreams[route.upstream.service] = (scheme, host, components.port)
        }
        self.upstreams = upstreams
        resolver = UpstreamResolver(
            dns: try runtime.configuration.dnsServer.map { server in
                do {
                    return try DNSResolver(host: server.host, port: server.port)
                } catch {
                    throw ServiceKitError.configuration(ServiceVariable.dnsServer, "is not an IP address and port")
                }
            })
        httpClient = runtime.httpClient
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
    func clientAddress(_ request: Request, context: Context) -> String? {
        guard let peer = context.remoteAddress?.ipAddress else { return nil }
        guard trustedProxies.contains(peer), let forwarded = request.headers[.xForwardedFor] else { return peer }
        let hops = forwarded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !trustedProxies.contains(hop) {
            return (try? SocketAddress(ipAddress: hop, port: 0))?.ipAddress ?? peer
        }
        return peer
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let path: String
        switch RequestPath.normalize(request.uri.path) {
        case .success(let normalized): path = normalized
        case .failure(let refusal): throw ServiceError(.badRequest, code: "bad-path", message: refusal.message)
        }
        guard let route = table.route(for: path) else { return try await next(request, context) }
        context.coreContext.endpointPath.value = route.prefix
        if !route.methods.isEmpty, !route.methods.contains(request.method.rawValue) {
            var error = ServiceError(
                .methodNotAllowed, code: "method-not-allowed",
                message: "\(route.prefix) accepts \(route.methods.joined(separator: ", "))")
            error.headers[.allow] = route.methods.joined(separator: ", ")
            throw error
        }
        var caller: Caller?
        if route.requiresJWT {
            caller = try await authenticate(request)
        }
        let subject = caller?.subject
        if let limit = route.rateLimit {
            let client =
                subject.map { "sub:" + $0 } ?? "ip:" + RateLimiter.clientKey(clientAddress(request, context: context))
            let decision = limiter.take(
                key: route.prefix + "|" + client, overflowKey: route.prefix, rps: limit.rps, burst: limit.burst)
            guard decision.allowed else {
                var headers = HTTPFields()
                headers[.retryAfter] = String(decision.retryAfterSeconds)
                throw ServiceError(
                    .tooManyRequests, code: "rate-limited",
                    message: "too many requests to \(route.prefix): \(limit.rps) a second, bursts of \(limit.burst)",
                    headers: headers)
            }
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > route.maxBodyBytes {
            throw ServiceError(
                .contentTooLarge, code: "payload-too-large",
                message: "the body is \(length) bytes; \(route.prefix) accepts at most \(route.maxBodyBytes)")
        }
        return try await forward(request, path: path, context: context, route: route, caller: caller)
    }

    /// The token's subject and roles, or a 401 with `WWW-Authenticate` saying what is wrong.
    func authenticate(_ request: Request) async throws -> Caller {
        func refuse(_ description: String, error: String? = "invalid_token") -> ServiceError {
            var headers = HTTPFields()
            var challenge = "Bearer realm=\"api\""
            if let error { challenge += ", error=\"\(error)\", error_description=\"\(description)\"" }
            headers[.wwwAuthenticate] = challenge
            return ServiceError(.unauthorized, code: "unauthorized", message: description, headers: headers)
        }
        guard let header = request.headers[.authorization] else {
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
        return Caller(subject: claims.sub.value, roles: Self.roles(inVerifiedToken: token, at: rolesClaim))
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

    /// Hop-by-hop headers (RFC 9110 §7.6.1), and what only the gateway may set.
    static let droppedRequestHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding",
        "upgrade", "host", "traceparent", "tracestate", InternalToken.headerName.lowercased(),
        CallerHeaders.subject.lowercased(), CallerHeaders.roles.lowercased(),
    ]
    /// Set by the gateway from the connection; a client's own are dropped unless it is a trusted proxy.
    static let forwardingHeaders: Set<String> = [
        "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip",
    ]

    /// The names a `Connection` header lists: hop-by-hop for this message only (RFC 9110 §7.6.1).
    static func connectionOptions(_ values: [String]) -> Set<String> {
        var names: Set<String> = []
        for value in values {
            for token in value.split(separator: ",") {
                names.insert(token.trimmingCharacters(in: .whitespaces).lowercased())
            }
        }
        return names
    }

    /// Whether a header value can be sent as it is: no control characters other than tab (RFC 9110 §5.5).
    static func isSendable(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }
    /// Whether the client, not the upstream, made this request fail, so that it must not count against the
    /// upstream's breaker (one client must not open it for everyone): a body over the limit, a body that broke off or
    /// ended short of its `Content-Length`, or the route's timeout passing while the upstream was waiting for the
    /// client's next bytes. An upstream that refuses the connection or fails mid-upload is still the upstream's fault.
    static func isClientCaused(_ error: any Error, _ progress: BodyProgress) -> Bool {
        if let error = error as? GatewayError, error.code == .bodyTooLarge || error.code == .clientBody { return true }
        if progress.clientFailed { return true }
        if let error = error as? HTTPClientError, error == .deadlineExceeded || error == .readTimeout {
            return progress.waitingForClient
        }
        return false
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

    static let droppedResponseHeaders: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "date",
        "server", "content-length",
    ]

    func forward(_ request: Request, path: String, context: Context, route: RouteTable.Route, caller: Caller?)
        async throws -> Response
    {
        guard let upstream = upstreams[route.upstream.service] else {
            throw ServiceError(.badGateway, code: "no-upstream", message: "no upstream for \(route.prefix)")
        }
        let target = RouteTable.rewrite(path: path, query: request.uri.query, route: route)
        let peer = context.remoteAddress?.ipAddress
        let fromTrustedProxy = peer.map(trustedProxies.contains) ?? false
        let options = Self.connectionOptions(request.headers[values: .connection])
        var headers = HTTPHeaders()
        for field in request.headers {
            let name = field.name.canonicalName
            if Self.droppedRequestHeaders.contains(name) || options.contains(name) { continue }
            if Self.forwardingHeaders.contains(name), !fromTrustedProxy { continue }
            // A value the upstream would refuse is the client's mistake: refused here, before the breaker sees it.
            guard Self.isSendable(field.value) else {
                throw ServiceError(
                    .badRequest, code: "bad-header",
                    message: "the \(field.name.rawName) header holds control characters")
            }
            headers.add(name: field.name.rawName, value: field.value)
        }
        headers.add(name: "Host", value: upstream.port.map { "\(upstream.host):\($0)" } ?? upstream.host)
        if let id = RequestID.current, request.headers[RequestID.headerName] == nil {
            headers.add(name: "X-Request-ID", value: id)
        }
        if let internalToken { headers.add(name: InternalToken.headerName, value: internalToken) }
        for (name, value) in caller?.headers ?? [] { headers.add(name: name, value: value) }
        if let peer {
            let previous = fromTrustedProxy ? request.headers[.xForwardedFor] : nil
            headers.replaceOrAdd(name: "X-Forwarded-For", value: previous.map { "\($0), \(peer)" } ?? peer)
            if !fromTrustedProxy {
                headers.replaceOrAdd(name: "X-Forwarded-Proto", value: "http")
                headers.replaceOrAdd(name: "Forwarded", value: Self.forwarded(peer: peer, host: request.head.authority))
                if let host = request.head.authority, Self.isSendable(host) {
                    headers.replaceOrAdd(name: "X-Forwarded-Host", value: host)
                }
            }
        }
        let length = request.headers[.contentLength].flatMap(Int.init)
        let progress = BodyProgress()
        let body = LimitedBody(base: request.body, limit: route.maxBodyBytes, declared: length, progress: progress)
        let hasBody = request.method != .get && (request.method != .head || length != nil) && length != 0
        let deadline = NIODeadline.now() + .milliseconds(Int64(route.timeoutMilliseconds))
        let idempotent = [.get, .head, .options, .put, .delete].contains(request.method)
        let breaker = client.breaker(for: route.upstream.service)
        let upstreamName = route.upstream.service

        func send() async throws -> HTTPClientResponse {
            do {
                return try await breaker.run(isFailure: { !Self.isClientCaused($0, progress) }) {
                    var attempt = 0
                    while true {
                        attempt += 1
                        let endpoint = try await resolver.endpoint(host: upstream.host, port: upstream.port)
                        let host = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
                        var outgoing = HTTPClientRequest(url: "\(upstream.scheme)://\(host):\(endpoint.port)\(target)")
                        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
                        outgoing.headers = headers
                        if hasBody {
                            outgoing.body = .stream(body, length: length.map { .known(Int64($0)) } ?? .unknown)
                        }
                        do {
                            let answer = try await httpClient.execute(
                                outgoing, deadline: deadline, logger: context.logger)
                            // A 503 is the upstream's own answer that one of *its* dependencies is down (with
                            // Retry-After): the upstream itself works, and its other endpoints may too, so it does not
                            // count against it. Other 5xx do.
                            if answer.status.code >= 500, answer.status.code != 503 {
                                throw GatewayError(
                                    .upstreamServerError, "\(upstreamName) answered \(answer.status.code)",
                                    response: answer
                                )
                            }
                            return answer
                        } catch let error where ServiceClient.isConnectFailure(error) && idempotent && attempt < 3 {
                            resolver.invalidate(host: upstream.host)
                            context.logger.debug(
                                "retrying after connect failure", metadata: ["upstream": "\(upstreamName)"])
                        }
                    }
                }
            } catch let error as GatewayError where error.code == .upstreamServerError {
                // Counted against the upstream; its answer goes to the client as it is.
                guard let answer = error.response else { throw error }
                return answer
            } catch let error as ServiceKitError where error.isRefusedByBreaker {
                throw ServiceError.unavailable(
                    "\(upstreamName) is failing; its circuit breaker is open",
                    retryAfterSeconds: error.retryAfterSeconds,
                    code: "circuit-open")
            } catch let error as GatewayError where error.code == .bodyTooLarge {
                throw ServiceError(
                    .contentTooLarge, code: "payload-too-large",
                    message: "the body is larger than \(route.maxBodyBytes) bytes, the limit of \(route.prefix)")
            } catch let error where Self.isClientCaused(error, progress) {
                // The client stopped sending its body (it went away, or was too slow for the route's timeout).
                throw ServiceError(
                    .requestTimeout, code: "request-body-incomplete",
                    message: "the request body did not arrive in full within \(route.timeoutMilliseconds) ms")
            } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
                throw ServiceError(
                    .gatewayTimeout, code: "upstream-timeout",
                    message: "\(upstreamName) did not answer within \(route.timeoutMilliseconds) ms")
            } catch {
                if NIODeadline.now() >= deadline {
                    throw ServiceError(
                        .gatewayTimeout, code: "upstream-timeout",
                        message: "\(upstreamName) did not answer within \(route.timeoutMilliseconds) ms")
                }
                context.logger.warning(
                    "upstream failed", metadata: ["upstream": "\(upstreamName)", "error": "\(error)"])
                throw ServiceError(.badGateway, code: "upstream-unreachable", message: "\(upstreamName) is unreachable")
            }
        }
        // Nothing reads the client's body after this answer but Hummingbird (see BodyProgress).
        let response: HTTPClientResponse
        do {
            response = try await send()
        } catch {
            if hasBody { await progress.close() }
            throw error
        }
        if hasBody { await progress.close() }
        var responseHeaders = HTTPFields()
        let responseOptions = Self.connectionOptions(response.headers["connection"])
        for header in response.headers {
            let lowercased = header.name.lowercased()
            if Self.droppedResponseHeaders.contains(lowercased) || responseOptions.contains(lowercased) { continue }
            if let name = HTTPField.Name(header.name) {
                responseHeaders.append(HTTPField(name: name, value: header.value))
            }
        }
        let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
        if let length = response.headers.first(name: "content-length").flatMap(Int.init) {
            responseHeaders[.contentLength] = String(length)
        }
        return Response(
            status: status, headers: responseHeaders,
            body: ResponseBody(asyncSequence: response.body))
    }
}

/// How far the client got with its request body, and who is reading it.
///
/// The body is one iterator over the client's connection, and only one task may be inside its `next()` at a time:
/// after the gateway answers, Hummingbird reads on to the next request. So the gateway `close()`s the body before
/// it answers: no read starts after that, and one still waiting for the client (the upstream failed or answered
/// early while the client was slow) is waited for. Without this, a slow upload that outlived its route's timeout
/// crashed the process.
final class BodyProgress: Sendable {
    private struct State {
        var finished = false
        var failed = false
        var reading = false
        var closed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// Reading the body from the client failed (it went away, or sent something that is not a body).
    var clientFailed: Bool { state.withLock { $0.failed } }
    /// A read is waiting for the client's next bytes.
    var waitingForClient: Bool { state.withLock { $0.reading && !$0.finished } }

    /// Starts a read, unless the gateway is done with the body.
    func beginRead() -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.reading = true
            return true
        }
    }

    func endRead(finished: Bool = false, failed: Bool = false) {
        let waiters = state.withLock { state in
            state.reading = false
            state.finished = state.finished || finished
            state.failed = state.failed || failed
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// No read starts after this; returns once a read in progress has ended.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state in
                state.closed = true
                guard state.reading else { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}

/// The request body, streamed, failing once more than `limit` bytes have passed (a chunked body has no length to
/// check up front), and recording in `progress` whether the client delivered it.
struct LimitedBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: RequestBody
    let limit: Int
    /// The client's `Content-Length`: a body that ends short of it was cut off by the client (or for it).
    let declared: Int?
    let progress: BodyProgress

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RequestBody.AsyncIterator
        let limit: Int
        let declared: Int?
        let progress: BodyProgress
        var seen = 0

        mutating func next() async throws -> ByteBuffer? {
            guard progress.beginRead() else { throw GatewayError(.clientBody, "the gateway has answered already") }
            let chunk: ByteBuffer?
            do {
                chunk = try await base.next()
            } catch {
                progress.endRead(failed: true)
                throw GatewayError(.clientBody, "the client's body did not arrive", underlying: error)
            }
            guard let chunk else {
                if let declared, seen < declared {
                    progress.endRead(failed: true)
                    throw GatewayError(.clientBody, "the client's body ended after \(seen) of \(declared) bytes")
                }
                progress.endRead(finished: true)
                return nil
            }
            progress.endRead()
            seen += chunk.readableBytes
            if seen > limit { throw GatewayError(.bodyTooLarge, "the body is larger than \(limit) bytes") }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), limit: limit, declared: declared, progress: progress)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
