import CoreMetrics
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceKit
import Tracing

/// What belongs to one event loop, so that no request takes a lock for it: the upstream connections, metric handles,
/// request ids and the tracer.
final class LoopState {
    let pool: UpstreamPool
    /// The process's tracer, read once per loop: `InstrumentationSystem.tracer` takes a lock on every read (1.6 % of
    /// the gateway's CPU per request, BENCHMARKS.md "gateway"). Read at the first request, after bootstrap.
    private(set) lazy var tracer: any Tracer = InstrumentationSystem.tracer
    private var handlesByKey: [HandleKey: Handles] = [:]
    private var meters: [String: Meter] = [:]
    private let idPrefix: String
    private var idCounter: UInt64 = 0

    struct HandleKey: Hashable {
        var route: Int
        var method: String
        var status: Int
    }

    /// The same metrics Hummingbird's `MetricsMiddleware` exports for the other services.
    struct Handles {
        let counter: Counter
        let timer: Timer
    }

    /// The routes of what the gateway answers itself.
    static let localRoutes = ["/health", "/ready", "NotFound"]

    init(eventLoop: any EventLoop) {
        pool = UpstreamPool(eventLoop: eventLoop)
        idPrefix = String(UInt64.random(in: 0...UInt64.max), radix: 16) + "-"
    }

    /// The handles of one route, method and status, made the first time this loop sees them.
    func handles(routeIndex: Int, route: String, method: HTTPMethod, status: Int) -> Handles {
        let index =
            routeIndex >= 0 ? routeIndex : -1 - (Self.localRoutes.firstIndex(of: route) ?? Self.localRoutes.count)
        let key = HandleKey(route: index, method: method.rawValue, status: status)
        if let handles = handlesByKey[key] { return handles }
        let dimensions = [
            ("http.route", route), ("http.request.method", method.rawValue),
            ("http.response.status_code", String(status)),
        ]
        let handles = Handles(
            counter: Counter(label: "hb.requests", dimensions: dimensions),
            timer: Timer(label: "http.server.request.duration", dimensions: dimensions, preferredDisplayUnit: .seconds))
        handlesByKey[key] = handles
        return handles
    }

    func activeRequests(_ method: HTTPMethod) -> Meter {
        if let meter = meters[method.rawValue] { return meter }
        let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.rawValue)])
        meters[method.rawValue] = meter
        return meter
    }

    func nextRequestID() -> String {
        idCounter &+= 1
        return idPrefix + String(idCounter, radix: 16)
    }
}

/// Kept-alive connections to upstream endpoints, of one event loop. A connection idle for longer than
/// `maxIdle` is closed (before the upstream's own idle timeout, 30 s for ServiceKit servers, closes it under a
/// request); at most `maxIdlePerEndpoint` wait per endpoint.
final class UpstreamPool {
    private let eventLoop: any EventLoop
    private var idle: [String: [UpstreamConnection]] = [:]
    private var sweeper: Scheduled<Void>?
    let maxIdle: TimeAmount = .seconds(15)
    let maxIdlePerEndpoint = 256

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    static func key(_ endpoint: UpstreamResolver.Endpoint) -> String {
        "\(endpoint.host):\(endpoint.port)"
    }

    /// An idle connection to `endpoint`, most recently used first.
    func take(_ endpoint: UpstreamResolver.Endpoint) -> UpstreamConnection? {
        let key = Self.key(endpoint)
        let now = NIODeadline.now()
        while let connection = idle[key]?.popLast() {
            guard connection.isActive, now - connection.idleSince < maxIdle else {
                connection.close()
                continue
            }
            connection.pooled = false
            return connection
        }
        return nil
    }

    /// Takes back a connection whose last response ended cleanly.
    func release(_ connection: UpstreamConnection) {
        guard connection.isActive, (idle[connection.key]?.count ?? 0) < maxIdlePerEndpoint else {
            connection.close()
            return
        }
        connection.owner = nil
        // Read again, for the next response and to learn at once when the upstream closes it.
        connection.resumeReads()
        connection.idleSince = .now()
        connection.pooled = true
        idle[connection.key, default: []].append(connection)
        scheduleSweep()
    }

    /// A pooled connection the upstream closed.
    func remove(_ connection: UpstreamConnection) {
        guard connection.pooled else { return }
        connection.pooled = false
        idle[connection.key]?.removeAll { $0 === connection }
    }

    func connect(
        to endpoint: UpstreamResolver.Endpoint, on eventLoop: any EventLoop, timeout: TimeAmount,
        _ done: @escaping (Result<UpstreamConnection, any Error>) -> Void
    ) {
        let key = Self.key(endpoint)
        let pool = NIOLoopBound(self, eventLoop: eventLoop)
        ClientBootstrap(group: eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(max(timeout, .milliseconds(1)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        UpstreamConnection(key: key, channel: channel, pool: pool.value))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    do {
                        done(.success(try channel.pipeline.syncOperations.handler(type: UpstreamConnection.self)))
                    } catch {
                        channel.close(promise: nil)
                        done(.failure(error))
                    }
                case .failure(let error):
                    done(.failure(error))
                }
            }
    }

    private func scheduleSweep() {
        guard sweeper == nil else { return }
        sweeper = eventLoop.assumeIsolated().scheduleTask(in: maxIdle) { [self] in
            sweeper = nil
            let now = NIODeadline.now()
            for (key, connections) in idle {
                let (fresh, stale) = connections.reduce(into: ([UpstreamConnection](), [UpstreamConnection]())) {
                    if now - $1.idleSince < maxIdle { $0.0.append($1) } else { $0.1.append($1) }
                }
                idle[key] = fresh.isEmpty ? nil : fresh
                for connection in stale {
                    connection.pooled = false
                    connection.close()
                }
            }
            if !idle.isEmpty { scheduleSweep() }
        }
    }
}

/// One HTTP/1.1 connection to an upstream: sends what its owner (the `ProxyHandler` of the request it carries)
/// gives it, and hands the response back part by part.
final class UpstreamConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let key: String
    let channel: any Channel
    private let pool: UpstreamPool
    private var context: ChannelHandlerContext?
    var owner: ProxyHandler?
    var idleSince: NIODeadline = .now()
    var pooled = false
    /// Paused by `pauseReads`: the response's end can arrive in the same read as the part that paused it.
    private(set) var readsPaused = false

    init(key: String, channel: any Channel, pool: UpstreamPool) {
        self.key = key
        self.channel = channel
        self.pool = pool
    }

    var isActive: Bool { context != nil && channel.isActive }
    var isWritable: Bool { channel.isWritable }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func send(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    func close() {
        owner = nil
        context?.close(promise: nil)
    }

    /// Stops reading the response while the client cannot take more of it.
    func pauseReads() {
        guard !readsPaused else { return }
        readsPaused = true
        try? channel.syncOptions?.setOption(.autoRead, value: false)
    }

    func resumeReads() {
        guard readsPaused else { return }
        readsPaused = false
        try? channel.syncOptions?.setOption(.autoRead, value: true)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let owner else {
            // Bytes on an idle connection: nothing asked for them.
            pool.remove(self)
            context.close(promise: nil)
            return
        }
        owner.upstreamRead(unwrapInboundIn(data), from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.upstreamReadComplete(from: self)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { owner?.upstreamWritable(self) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        pool.remove(self)
        let owner = self.owner
        self.owner = nil
        owner?.upstreamClosed(self, error: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        pool.remove(self)
        let owner = self.owner
        self.owner = nil
        owner?.upstreamClosed(self, error: error)
        context.close(promise: nil)
    }
}
