import Foundation
import NIOCore
import OrchestrateTestSupport
import Testing

@testable import OrchestrateSupervisor

/// What the dashboard makes of the services' Prometheus text: rates and quantiles between two scrapes, breakers by
/// upstream; and a scrape of a replica that does not answer.
@Suite(.timeLimit(.minutes(1))) struct DashboardMetricsTests {
    static func text(requests: Int, errors: Int, fast: Int, slow: Int, breaker: Int) -> String {
        """
        # TYPE hb_requests counter
        hb_requests{http_route="/orders",http_request_method="POST",http_response_status_code="201"} \(requests)
        hb_requests{http_route="/orders",http_request_method="POST",http_response_status_code="503"} \(errors)
        # TYPE http_server_request_duration histogram
        http_server_request_duration_bucket{http_route="/orders",le="0.01"} \(fast)
        http_server_request_duration_bucket{http_route="/orders",le="0.1"} \(fast + slow)
        http_server_request_duration_bucket{http_route="/orders",le="+Inf"} \(fast + slow)
        circuit_breaker_state{upstream="user-service"} \(breaker)
        circuit_breaker_state{upstream="pay\\"ment"} 0
        """
    }

    @Test func twoScrapesMakeAPoint() throws {
        let board = MetricsBoard(length: 2)
        let first = ContinuousClock.now
        board.record(
            ["order-service-1": ("order-service", Self.text(requests: 10, errors: 0, fast: 10, slow: 0, breaker: 0))],
            at: first)
        #expect(board.series["order-service"]?.first?.requestsPerSecond == 0, "one scrape is no interval")
        board.record(
            [
                "order-service-1": (
                    "order-service", Self.text(requests: 100, errors: 10, fast: 60, slow: 40, breaker: 1)
                )
            ],
            at: first + .seconds(2))
        let point = try #require(board.series["order-service"]?.last)
        #expect(point.requestsPerSecond == 50)  // 90 + 10 requests in 2 s
        #expect(point.errorsPerSecond == 5)
        #expect(point.breakers == ["user-service": "open", "pay\"ment": "closed"])
        // 90 new requests in the histogram: 50 under 10 ms, 40 between 10 and 100 ms.
        #expect(abs((point.p50 ?? 0) - 9.0) < 0.001)  // rank 45 of 50 in (0, 10 ms]
        #expect(abs((point.p99 ?? 0) - 97.975) < 0.001)  // rank 89.1: 39.1 of 40 into (10, 100 ms]
        board.record(["order-service-1": ("order-service", nil)], at: first + .seconds(4))
        #expect(board.series["order-service"]?.count == 2, "the series is bounded")
    }

    @Test func samplesAndQuantiles() {
        let sample = PrometheusSample(#"a_b{x="1",y="q\"uote",z="new\nline"} 2.5 1700000000"#)
        #expect(sample?.name == "a_b" && sample?.value == 2.5)
        #expect(sample?.labels == ["x": "1", "y": "q\"uote", "z": "new\nline"])
        #expect(PrometheusSample("plain 7")?.value == 7)
        #expect(PrometheusSample("inf +Inf")?.value == .infinity)
        #expect(PrometheusSample(#"broken{x="1} 2"#) == nil)
        #expect(PrometheusSample("noValue") == nil)
        #expect(MetricsBoard.quantile(0.5, [:]) == nil)
        #expect(MetricsBoard.quantile(0.5, [0.1: 0, .infinity: 0]) == nil)
        #expect(MetricsBoard.quantile(0.5, [0.1: 10, 1: 10, .infinity: 10]) == 50)
    }

    /// A real server's answers: the body within the limit is the text; a longer body, a 404 and a server that says
    /// nothing are none.
    @Test func aScrapeIsTheBodyOfA200WithinTheLimit() async throws {
        let text = Self.text(requests: 1, errors: 0, fast: 1, slow: 0, breaker: 0)
        try await PythonFileServer.with(files: ["metrics": Data(text.utf8)]) { port in
            #expect(await MetricsScrape.fetch(host: "127.0.0.1", port: port, timeout: .seconds(30)) == text)
            #expect(await MetricsScrape.fetch(host: "127.0.0.1", port: port, timeout: .seconds(30), limit: 10) == nil)
            let missing = await MetricsScrape.fetch(host: "127.0.0.1", port: port, path: "/none", timeout: .seconds(30))
            #expect(missing == nil)
        }
        try await SilentServer.with { port in
            #expect(await MetricsScrape.fetch(host: "127.0.0.1", port: port, timeout: .milliseconds(500)) == nil)
        }
    }

    @Test func aReplicaThatDoesNotAnswerIsNoText() async throws {
        let port = try ChildProcess.freePort()
        #expect(await MetricsScrape.fetch(host: "127.0.0.1", port: port, timeout: .seconds(2)) == nil)
    }
}
