import Foundation
import NIOCore
import NIOPosix
import OrchestrateTestSupport
import ServiceKit
import Testing

/// The resolver against a real DNS server: dnsmasq, started on loopback with the records the supervisor will
/// serve (A for each ready replica, SRV with the port), its answers first confirmed with dig.
@Suite(
    .timeLimit(.minutes(5)), .serialized,
    .requires("dnsmasq and dig", ExternalTool.find("dnsmasq") != nil && ExternalTool.find("dig") != nil))
struct DNSResolverTests {
    static let configuration = """
        listen-address=127.0.0.1
        bind-interfaces
        no-resolv
        no-hosts
        local=/shop.local/
        host-record=user-service,127.0.0.3
        host-record=user-service.shop.local,127.0.0.3
        host-record=order-service,127.0.0.5
        host-record=order-service,127.0.0.6
        srv-host=_http._tcp.user-service,user-service,3001,0,1
        """

    /// A running dnsmasq on a free loopback port, stopped when the test ends.
    ///
    /// Started with posix_spawn and queried with popen: Foundation's Process, used from an async test while a
    /// child it started keeps running, stopped noticing that dig had exited and hung the run.
    final class Server {
        let process: ChildProcess
        let port: Int
        let directory: URL

        init(dnsmasq: URL) throws {
            directory = try ExternalTool.temporaryDirectory("dnsmasq")
            // A port the OS just handed out (dnsmasq takes it for UDP and TCP alike).
            port = try ChildProcess.freePort()
            let conf = directory.appendingPathComponent("dnsmasq.conf")
            try Data((DNSResolverTests.configuration + "\nport=\(port)\n").utf8).write(to: conf)
            process = try ChildProcess(
                dnsmasq.path,
                ["--conf-file=\(conf.path)", "--keep-in-foreground", "--pid-file=", "--log-facility=/dev/null"],
                environment: [:], logPath: directory.appendingPathComponent("dnsmasq.log").path)
        }

        /// Ready when dig gets an answer; bounded: 50 tries, 100 ms apart.
        func waitUntilAnswering(_ dig: URL) async throws {
            for _ in 0..<50 {
                if await Self.dig(dig, port: port, ["+short", "user-service", "A"]) == "127.0.0.3" { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw ServerError(description: "dnsmasq did not answer on 127.0.0.1:\(port)")
        }

        func stop() {
            kill(process.pid, SIGKILL)  // dnsmasq keeps nothing worth a graceful stop
            var status: Int32 = 0
            waitpid(process.pid, &status, 0)
            try? FileManager.default.removeItem(at: directory)
        }

        static func dig(_ dig: URL, port: Int, _ arguments: [String]) async -> String {
            await Dig.run(dig, port: port, arguments)
        }
    }

    struct ServerError: Error, CustomStringConvertible {
        var description: String
    }

    private func withServer(_ body: (Server, URL) async throws -> Void) async throws {
        let dnsmasq = try #require(
            ExternalTool.find("dnsmasq"), "dnsmasq is missing: scripts/test installs dnsmasq-base")
        let dig = try #require(ExternalTool.find("dig"), "dig is missing: scripts/test installs bind9-dnsutils")
        let server = try Server(dnsmasq: dnsmasq)
        defer { server.stop() }
        try await server.waitUntilAnswering(dig)
        try await body(server, dig)
    }

    @Test func addressesMatchWhatDigSees() async throws {
        try await withServer { server, dig in
            let resolver = try DNSResolver(host: "127.0.0.1", port: server.port)
            for name in ["user-service", "user-service.shop.local", "order-service"] {
                let digged = await Server.dig(dig, port: server.port, ["+short", name, "A"]).split(separator: "\n").map(
                    String.init)
                #expect(!digged.isEmpty)
                #expect(try await resolver.addresses(of: name).sorted() == digged.sorted(), "\(name)")
            }
            #expect(try await resolver.addresses(of: "order-service").sorted() == ["127.0.0.5", "127.0.0.6"])
        }
    }

    @Test func serviceRecordsGiveThePort() async throws {
        try await withServer { server, dig in
            let digged = await Server.dig(dig, port: server.port, ["+short", "_http._tcp.user-service", "SRV"])
            #expect(digged == "0 1 3001 user-service.")
            let records = try await DNSResolver(host: "127.0.0.1", port: server.port).services(of: "user-service")
            #expect(records == [.init(priority: 0, weight: 1, port: 3001, target: "user-service")])
        }
    }

    /// What the HTTP client and the gateway use: every address of a name in turn, the port from SRV when the URL
    /// has none.
    @Test func upstreamResolverSpreadsOverEveryAddress() async throws {
        try await withServer { server, dig in
            let expected = Set(
                await Server.dig(dig, port: server.port, ["+short", "order-service", "A"]).split(separator: "\n").map(
                    String.init))
            #expect(expected == ["127.0.0.5", "127.0.0.6"])
            let resolver = UpstreamResolver(dns: try DNSResolver(host: "127.0.0.1", port: server.port))
            var seen: [String] = []
            for _ in 0..<4 { seen.append(try await resolver.endpoint(host: "order-service", port: 3002).host) }
            #expect(Set(seen) == expected)
            #expect(seen[0] != seen[1] && seen[0] == seen[2])  // round robin
            let viaSRV = try await resolver.endpoint(host: "user-service", port: nil)
            #expect(viaSRV.port == 3001)
            #expect(try await resolver.endpoint(host: "127.0.0.9", port: 80) == .init(host: "127.0.0.9", port: 80))
        }
    }

    @Test func anUnknownNameIsNotFound() async throws {
        try await withServer { server, dig in
            #expect(await Server.dig(dig, port: server.port, ["nope.shop.local", "A"]).contains("status: NXDOMAIN"))
            let resolver = try DNSResolver(host: "127.0.0.1", port: server.port)
            let error = await #expect(throws: ServiceKitError.self) {
                try await resolver.addresses(of: "nope.shop.local")
            }
            #expect(error?.code == .nameNotFound)
        }
    }
}

/// Error paths need a server that misbehaves on purpose: a UDP peer on loopback that stays silent or answers
/// garbage with the right id.
@Suite(.timeLimit(.minutes(5)))
struct DNSResolverFailureTests {
    private func peer(_ answer: @escaping @Sendable ([UInt8]) -> [UInt8]?) async throws -> any Channel {
        try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Peer(answer: answer))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    final class Peer: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        typealias OutboundOut = AddressedEnvelope<ByteBuffer>
        let answer: @Sendable ([UInt8]) -> [UInt8]?
        init(answer: @escaping @Sendable ([UInt8]) -> [UInt8]?) { self.answer = answer }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var envelope = Self.unwrapInboundIn(data)
            guard let query = envelope.data.readBytes(length: envelope.data.readableBytes), let reply = answer(query)
            else { return }
            var buffer = context.channel.allocator.buffer(capacity: reply.count)
            buffer.writeBytes(reply)
            context.writeAndFlush(
                Self.wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer)),
                promise: nil)
        }
    }

    /// The server stays silent while another socket on the machine sends a forged answer with the right id to the
    /// resolver's port: the resolver's socket is connected to the server, so the forgery never arrives.
    @Test func anAnswerFromAnotherSourceIsNotBelieved() async throws {
        let attacker = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { attacker.close(promise: nil) }
        let channel = try await peer { _ in nil }
        defer { channel.close(promise: nil) }
        try await channel.pipeline.addHandler(Forger(attacker: attacker), position: .first).get()
        let resolver = try DNSResolver(
            host: "127.0.0.1", port: channel.localAddress!.port!, timeout: .milliseconds(300))
        let error = await #expect(throws: ServiceKitError.self) {
            try await resolver.addresses(of: "user-service")
        }
        #expect(error?.code == .timeout)
    }

    /// Sees each query at the real server and has the attacker answer it: the query's id, A 6.6.6.6.
    final class Forger: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let attacker: any Channel
        init(attacker: any Channel) { self.attacker = attacker }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            let query = Array(envelope.data.readableBytesView)
            let question = Array(query[12...])
            let forged =
                Array(query[0..<2]) + [0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0] + question + [
                    0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 6, 6, 6, 6,
                ]
            var buffer = attacker.allocator.buffer(capacity: forged.count)
            buffer.writeBytes(forged)
            attacker.writeAndFlush(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer), promise: nil)
            context.fireChannelRead(data)
        }
    }

    @Test func silenceIsATimeout() async throws {
        let channel = try await peer { _ in nil }
        defer { channel.close(promise: nil) }
        let resolver = try DNSResolver(
            host: "127.0.0.1", port: channel.localAddress!.port!, timeout: .milliseconds(200))
        let error = await #expect(throws: ServiceKitError.self) {
            try await resolver.addresses(of: "user-service")
        }
        #expect(error?.code == .timeout)
    }

    @Test func aTruncatedAnswerIsMalformedNotACrash() async throws {
        // The query's id, the response bit, one answer announced and no bytes of it.
        let channel = try await peer { query in Array(query[0..<2]) + [0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0] }
        defer { channel.close(promise: nil) }
        let resolver = try DNSResolver(host: "127.0.0.1", port: channel.localAddress!.port!)
        let error = await #expect(throws: ServiceKitError.self) {
            try await resolver.addresses(of: "user-service")
        }
        #expect(error?.code == .malformedAnswer)
    }

    @Test func aPointerLoopIsMalformedNotAHang() async throws {
        // One answer whose name is a compression pointer to itself.
        let channel = try await peer { query in
            Array(query[0..<2]) + [0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0] + [
                0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 127, 0, 0, 1,
            ]
        }
        defer { channel.close(promise: nil) }
        let resolver = try DNSResolver(host: "127.0.0.1", port: channel.localAddress!.port!)
        let error = await #expect(throws: ServiceKitError.self) {
            try await resolver.addresses(of: "user-service")
        }
        #expect(error?.code == .malformedAnswer)
    }
}

@Suite(.timeLimit(.minutes(5)))
struct DNSResolverSendFailureTests {
    /// A query that cannot even be sent (the port is 0) throws instead of trapping on an unfulfilled promise.
    @Test func aQueryThatCannotBeSentThrows() async throws {
        let resolver = try DNSResolver(host: "127.0.0.1", port: 0)
        await #expect(throws: (any Error).self) { try await resolver.addresses(of: "user-service") }
    }
}
