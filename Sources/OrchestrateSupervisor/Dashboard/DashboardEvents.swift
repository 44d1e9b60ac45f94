import Foundation
import NIOCore
import NIOHTTP1

/// The page's live feed (Server-Sent Events): `state` once a second, `logs` with the new lines four times a second,
/// `metrics` every five seconds after a scrape of every replica. It runs only while a page is open: with none, the
/// dashboard costs nothing but its listening socket, and nothing is scraped.
enum DashboardEvents {
    static func stream(_ request: DashboardRouter.Request, source: DashboardServer.Source, on channel: any Channel)
        async
    {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/event-stream")
        headers.add(name: "cache-control", value: "no-store")
        headers.add(name: "x-content-type-options", value: "nosniff")
        let head = HTTPResponseHead(version: request.head.version, status: .ok, headers: headers)
        do {
            try await channel.writeAndFlush(HTTPServerResponsePart.head(head)).get()
        } catch {
            return
        }
        var seen = request.query("after").flatMap(UInt64.init) ?? source.logs.latest
        var tick = 0
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        while channel.isActive, !Task.isCancelled {
            var text = ""
            if tick % 4 == 0, let state = try? encoder.encode(await source.state()) {
                text += "event: state\ndata: \(String(decoding: state, as: UTF8.self))\n\n"
            }
            if tick % 20 == 0 {
                if source.metrics.claimScrape(interval: .milliseconds(4500)) { await source.scrape() }
                if let series = try? encoder.encode(source.metrics.series) {
                    text += "event: metrics\ndata: \(String(decoding: series, as: UTF8.self))\n\n"
                }
            }
            let lines = source.logs.entries(after: seen, limit: 2000)
            if let last = lines.last, let data = try? encoder.encode(lines) {
                seen = last.sequence
                text += "event: logs\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
            }
            if !text.isEmpty {
                do {
                    try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: text))))
                        .get()
                } catch {
                    break
                }
            }
            tick += 1
            try? await Task.sleep(for: .milliseconds(250))
        }
        channel.close(promise: nil)
    }
}
