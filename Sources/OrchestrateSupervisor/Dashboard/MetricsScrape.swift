import NIOCore
import NIOHTTP1
import NIOPosix

/// `GET /metrics` of one replica, for the dashboard: the body as text, or nil when the replica does not answer 200
/// within the timeout or answers more than `limit` bytes.
enum MetricsScrape {
    static func fetch(
        host: String, port: Int, path: String = "/metrics", timeout: TimeAmount = .seconds(2), limit: Int = 4 << 20,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async -> String? {
        guard
            let answer = try? await OneShotHTTP.get(
                host: host, port: port, path: path, userAgent: "orchestrate-dashboard", timeout: timeout,
                bodyLimit: limit, group: group),
            answer.status == .ok, let body = answer.body
        else { return nil }
        return String(decoding: body, as: UTF8.self)
    }
}
