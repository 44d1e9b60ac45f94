import Foundation
public import NIOCore
import NIOHTTP1
public import NIOPosix
public import OTLPSpan
import Synchronization

/// The dashboard of a running `orchestrate up`, on 127.0.0.1 only: the page, its JSON API and a Server-Sent Events
/// stream of state and log lines.
///
/// Loopback is open to every user of the machine, and a web page anywhere can make the browser send requests to it,
/// so every request must carry the run's random token (`?token=`, compared in constant time), its `Host` must be
/// this server's own loopback name (a DNS-rebinding page's is not), and an action (POST) must come from the
/// dashboard's own origin. Actions go through the same control API as `orchestrate restart|stop|start`.
public final class DashboardServer: Sendable {
    /// What the dashboard shows and does, supplied by the session.
    public struct Source: Sendable {
        /// The project, its services and every replica now, as the page's JSON.
        public var state: @Sendable () async -> DashboardState
        /// A control request, as the CLI sends it on the control socket.
        public var act: @Sendable (ControlRequest) async -> ControlResponse
        public var logs: LogRing
        public var spans: SpanStore
        public var metrics: MetricsBoard
        /// Decodes an OTLP export into spans (`OTLPDecoderProcess.decode`); nil: no decoder, no traces.
        public var decodeTraces: (@Sendable ([UInt8]) async -> Result<[ReceivedSpan], OTLPDecoderProcess.Failure>)?
        /// Scrapes every replica's metrics into `metrics` (called only while a page is open).
        public var scrape: @Sendable () async -> Void

        public init(
            state: @escaping @Sendable () async -> DashboardState,
            act: @escaping @Sendable (ControlRequest) async -> ControlResponse, logs: LogRing,
            spans: SpanStore = SpanStore(), metrics: MetricsBoard = MetricsBoard(),
            scrape: @escaping @Sendable () async -> Void = {},
            decodeTraces: (@Sendable ([UInt8]) async -> Result<[ReceivedSpan], OTLPDecoderProcess.Failure>)? = nil
        ) {
            self.decodeTraces = decodeTraces
            self.state = state
            self.act = act
            self.logs = logs
            self.spans = spans
            self.metrics = metrics
            self.scrape = scrape
        }
    }

    public let port: Int
    public let token: String
    public let ingestToken: String
    private let channel: any Channel

    /// The address to open, token included.
    public var url: String { "http://127.0.0.1:\(port)/?token=\(token)" }
    /// What the services get as `OTEL_EXPORTER_OTLP_ENDPOINT`: they export traces to `\(otlpEndpoint)/v1/traces`.
    public var otlpEndpoint: String { "http://127.0.0.1:\(port)/otlp/\(ingestToken)" }

    /// Listens on 127.0.0.1:`port` (0: a free one).
    public static func start(
        port: Int, token: String = DashboardServer.randomToken(), source: Source,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maximumConnections: Int = 64
    ) async throws -> DashboardServer {
        let open = OpenConnections()
        let ingestToken = randomToken()
        let shared = DashboardRouter.Shared(token: token, ingestToken: ingestToken, source: source)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                // Beyond the limit a connection is closed at once: a flood of idle sockets cannot take the
                // supervisor's descriptors.
                guard open.count.wrappingAdd(1, ordering: .relaxed).newValue <= maximumConnections else {
                    open.count.wrappingSubtract(1, ordering: .relaxed)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.count.wrappingSubtract(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(IdleTimeout.handlers(after: .seconds(30)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(DashboardRouter(shared: shared))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        return DashboardServer(
            port: channel.localAddress?.port ?? port, token: token, ingestToken: ingestToken, channel: channel)
    }

    private init(port: Int, token: String, ingestToken: String, channel: any Channel) {
        self.port = port
        self.token = token
        self.ingestToken = ingestToken
        self.channel = channel
    }

    public func stop() async {
        try? await channel.close()
    }

    /// 128 random bits, hex.
    public static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max, using: &generator)) }
            .joined()
    }
}

/// The dashboard's open connections, shared by its channels' initializers.
private final class OpenConnections: Sendable {
    let count = Atomic<Int>(0)
}
