import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turns an upstream's host and port into the endpoint of one of its instances, spreading calls over every address
/// the name resolves to (round robin).
///
/// Names resolve through the supervisor's DNS server when one is configured (`ORCHESTRATE_DNS`: A records, and SRV
/// for the port when the URL gives none), otherwise through the system resolver (Docker's or the cluster's DNS).
/// Answers are cached for a few seconds; IP literals are used as they are.
public final class UpstreamResolver: Sendable {
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    private let dns: DNSResolver?
    private let cacheLifetime: Duration
    private let clock = ContinuousClock()
    private let cache = Mutex<[String: Entry]>([:])

    private struct Entry {
        var endpoints: [Endpoint]
        var expires: ContinuousClock.Instant
        var next = 0
    }

    public init(dns: DNSResolver?, cacheLifetime: Duration = .seconds(5)) {
        self.dns = dns
        self.cacheLifetime = cacheLifetime
    }

    /// The next endpoint for `host` (`port` nil when the URL has none).
    public func endpoint(host: String, port: Int?) async throws -> Endpoint {
        if let picked = cachedEndpoint(host: host, port: port) { return picked }
        let key = "\(host):\(port.map(String.init) ?? "")"
        let now = clock.now
        let endpoints = try await resolve(host: host, port: port)
        return cache.withLock { cache in
            var entry = Entry(endpoints: endpoints, expires: now + cacheLifetime)
            let previous = cache[key]?.next ?? 0
            entry.next = previous &+ 1
            cache[key] = entry
            return endpoints[previous % endpoints.count]
        }
    }

    /// The next endpoint for `host` without waiting: an IP literal, or a name whose answer is cached and fresh;
    /// nil when `endpoint(host:port:)` must ask the DNS.
    public func cachedEndpoint(host: String, port: Int?) -> Endpoint? {
        if Self.isIPLiteral(host) { return Endpoint(host: host, port: port ?? 80) }
        let key = "\(host):\(port.map(String.init) ?? "")"
        let now = clock.now
        return cache.withLock { cache -> Endpoint? in
            guard var entry = cache[key], entry.expires > now, !entry.endpoints.isEmpty else { return nil }
            let endpoint = entry.endpoints[entry.next % entry.endpoints.count]
            entry.next &+= 1
            cache[key] = entry
            return endpoint
        }
    }

    /// Forgets what `host` resolved to, after a connection to it failed.
    public func invalidate(host: String) {
        cache.withLock { cache in cache = cache.filter { !$0.key.hasPrefix(host + ":") } }
    }

    private func resolve(host: String, port: Int?) async throws -> [Endpoint] {
        if let dns {
            if let port {
                return try await dns.addresses(of: host).map { Endpoint(host: $0, port: port) }
            }
            var endpoints: [Endpoint] = []
            for record in try await dns.services(of: host).sorted(by: { $0.priority < $1.priority }) {
                for address in try await dns.addresses(of: record.target) {
                    endpoints.append(Endpoint(host: address, port: Int(record.port)))
                }
            }
            guard !endpoints.isEmpty else {
                throw ServiceKitError(.nameNotFound, subject: host, "no SRV records")
            }
            return endpoints
        }
        let addresses = try await NIOThreadPool.singleton.runIfActive { try Self.systemAddresses(of: host) }
        return addresses.map { Endpoint(host: $0, port: port ?? 80) }
    }

    static func isIPLiteral(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    /// Every address of `host` from getaddrinfo, IPv4 first, without duplicates.
    static func systemAddresses(of host: String) throws -> [String] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
            hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &result)
        guard status == 0, let first = result else {
            throw ServiceKitError(.nameNotFound, subject: host, String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(first) }
        var v4: [String] = []
        var v6: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            // getnameinfo rather than sockaddr_in's fields: in release builds Swift attributes those to NIO's C
            // module, which this file does not import.
            var buffer = [CChar](repeating: 0, count: 1025)
            if info.pointee.ai_family == AF_INET || info.pointee.ai_family == AF_INET6,
                getnameinfo(
                    info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0,
                    NI_NUMERICHOST) == 0
            {
                let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if info.pointee.ai_family == AF_INET {
                    if !v4.contains(text) { v4.append(text) }
                } else if !v6.contains(text) {
                    v6.append(text)
                }
            }
            cursor = info.pointee.ai_next
        }
        return v4 + v6
    }
}
