public import AsyncHTTPClient
import Foundation
public import HTTPTypes
public import Logging
public import NIOCore
public import NIOHTTP1
import NIOPosix
import Synchronization

/// Calls other services: a deadline on every call, retries only for idempotent requests and only when the
/// connection could not be made, the internal token, the request id and W3C `traceparent` on every call (a client
/// span each, from AsyncHTTPClient's tracing), and a circuit breaker per upstream.
public final class ServiceClient: Sendable {
    /// A response from an upstream, its body read whole.
    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: ByteBuffer

        public func decode<Value: Decodable>(as type: Value.Type) throws -> Value {
            try JSONDecoder().decode(Value.self, from: Data(body.readableBytesView))
        }
    }

    private let baseURLs: [String: (scheme: String, host: String, port: Int?)]
    private let httpClient: HTTPClient
    private let resolver: UpstreamResolver
    private let internalToken: String?
    private let breakerConfiguration: CircuitBreakerConfiguration
    private let breakers = Mutex<[String: CircuitBreaker]>([:])
    private let logger: Logger
    private let maxResponseBytes = 4 << 20
    public let defaultDeadline: Duration

    /// - Parameters:
    ///   - dependencies: Each upstream's base URL by service name (from `<DEP>_URL`).
    ///   - httpClient: Shared client; its tracer is the one bootstrapped when it was made.
    public init(
        dependencies: [String: String], httpClient: HTTPClient, resolver: UpstreamResolver, internalToken: String?,
        breakerConfiguration: CircuitBreakerConfiguration = CircuitBreakerConfiguration(),
        defaultDeadline: Duration = .seconds(2), logger: Logger
    ) {
        var baseURLs: [String: (scheme: String, host: String, port: Int?)] = [:]
        for (name, url) in dependencies {
            if let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host {
                baseURLs[name] = (scheme, host, components.port)
            }
        }
        self.baseURLs = baseURLs
        self.httpClient = httpClient
        self.resolver = resolver
        self.internalToken = internalToken
        self.breakerConfiguration = breakerConfiguration
        self.defaultDeadline = defaultDeadline
        self.logger = logger
    }

    /// The breaker that guards `upstream`, made on first use.
    public func breaker(for upstream: String) -> CircuitBreaker {
        breakers.withLock { breakers in
            if let breaker = breakers[upstream] { return breaker }
            let breaker = CircuitBreaker(upstream: upstream, configuration: breakerConfiguration, logger: logger)
            breakers[upstream] = breaker
            return breaker
        }
    }

    /// Sends a request to `upstream` (a service name from the dependencies) and reads the response.
    ///
    /// - Throws: `ServiceKitError` (`unreachable`, `connectionLost`, `timeout`, `serverError`, `circuitOpen`) when the upstream is unreachable, too slow, answers 5xx or its breaker is open. A 4xx
    ///   is a response, not an error, and does not count against the upstream.
    public func send(
        _ method: HTTPRequest.Method, to upstream: String, path: String,
        json body: (some Encodable & Sendable)? = nil
            as String?,
        headers extraHeaders: [(String, String)] = [], deadline: Duration? = nil
    ) async throws(ServiceKitError) -> Response {
        let deadline = deadline ?? defaultDeadline
        let breaker = breaker(for: upstream)
        let retryAfter = breakerConfiguration.resetTimeout
        guard let base = baseURLs[upstream] else {
            throw ServiceKitError(.unreachable, subject: upstream, "no URL configured", retryAfter: retryAfter)
        }
        var bodyBuffer: ByteBuffer?
        if let body {
            do {
                bodyBuffer = ByteBuffer(bytes: try JSONEncoder().encode(body))
            } catch {
                throw ServiceKitError(
                    .unreachable, subject: upstream, "cannot encode: \(error)", retryAfter: retryAfter)
            }
        }
        let start = ContinuousClock.now
        let end = start + deadline
        let idempotent = [.get, .head, .put, .delete, .options].contains(method)
        do {
            return try await breaker.run(isFailure: { error in
                (error as? ServiceKitError).map { !$0.isRefusedByBreaker } ?? true
            }) {
                var attempt = 0
                while true {
                    attempt += 1
                    do {
                        return try await self.attempt(
                            method, upstream: upstream, base: base, path: path, body: bodyBuffer,
                            extraHeaders: extraHeaders, deadline: end, retryAfter: retryAfter)
                    } catch let error as ServiceKitError where error.code == .unreachable && idempotent && attempt < 3 {
                        let pause = Duration.milliseconds(50 * attempt)
                        guard ContinuousClock.now + pause < end else { throw error }
                        self.logger.debug(
                            "retrying after connect failure",
                            metadata: ["upstream": "\(upstream)", "attempt": "\(attempt)"])
                        try await Task.sleep(for: pause)
                    }
                }
            }
        } catch let error as ServiceKitError {
            throw error
        } catch {
            throw ServiceKitError(
                .unreachable, subject: upstream, "cannot connect", underlying: error, retryAfter: retryAfter)
        }
    }

    private func attempt(
        _ method: HTTPRequest.Method, upstream: String, base: (scheme: String, host: String, port: Int?), path: String,
        body: ByteBuffer?, extraHeaders: [(String, String)], deadline end: ContinuousClock.Instant, retryAfter: Duration
    ) async throws -> Response {
        let endpoint: UpstreamResolver.Endpoint
        do {
            endpoint = try await resolver.endpoint(host: base.host, port: base.port)
        } catch {
            throw ServiceKitError(
                .unreachable, subject: upstream, "cannot connect", underlying: error, retryAfter: retryAfter)
        }
        let hostPart = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        var request = HTTPClientRequest(url: "\(base.scheme)://\(hostPart):\(endpoint.port)\(path)")
        request.method = HTTPMethod(rawValue: method.rawValue)
        request.headers.add(name: "Host", value: base.port.map { "\(base.host):\($0)" } ?? base.host)
        request.headers.add(name: "Accept", value: "application/json")
        if let internalToken { request.headers.add(name: InternalToken.headerName, value: internalToken) }
        if let id = RequestID.current { request.headers.add(name: "X-Request-ID", value: id) }
        for (name, value) in Caller.current?.headers ?? [] { request.headers.add(name: name, value: value) }
        for (name, value) in extraHeaders { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        let remaining = end - ContinuousClock.now
        guard remaining > .zero else {
            throw ServiceKitError(.timeout, subject: upstream, "deadline passed", retryAfter: retryAfter)
        }
        let timeout = TimeAmount.nanoseconds(
            remaining.components.seconds * 1_000_000_000 + remaining.components.attoseconds / 1_000_000_000)
        do {
            let response = try await httpClient.execute(request, timeout: timeout, logger: logger)
            let body = try await response.body.collect(upTo: maxResponseBytes)
            if response.status.code >= 500 {
                throw ServiceKitError(
                    .serverError, subject: upstream, "answered \(response.status.code)", retryAfter: retryAfter)
            }
            return Response(status: Int(response.status.code), headers: response.headers, body: body)
        } catch let error as ServiceKitError {
            throw error
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw ServiceKitError(.timeout, subject: upstream, "no answer within the deadline", retryAfter: retryAfter)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if ContinuousClock.now >= end {
                throw ServiceKitError(
                    .timeout, subject: upstream, "no answer within the deadline", retryAfter: retryAfter)
            }
            resolver.invalidate(host: base.host)
            let connected = !Self.isConnectFailure(error)
            throw ServiceKitError(
                connected ? .connectionLost : .unreachable, subject: upstream,
                connected ? "the connection broke" : "cannot connect", underlying: error, retryAfter: retryAfter)
        }
    }

    /// Whether the request never left: the connection could not be made at all.
    public static func isConnectFailure(_ error: any Error) -> Bool {
        if error is NIOConnectionError { return true }
        if let error = error as? HTTPClientError, error == .connectTimeout { return true }
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        if let error = error as? IOError {
            return [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL].contains(error.errnoCode)
        }
        return false
    }
}
