import DNSWire
import Foundation
import OrchestrateSupervisor
import OrchestrateTestSupport
import ServiceKit
import Testing

/// The supervisor's DNS server, asked by dig (the real peer) over UDP and TCP, and by ServiceKit's resolver.
@Suite(.timeLimit(.minutes(5)), .serialized, .requires("dig", ExternalTool.find("dig") != nil)) struct DNSServerTests {
    static let replicas: [ServiceDirectory.Replica] = [
        .init(service: "user-service", index: 1, address: "127.0.0.2", port: 3001, isReady: true),
        .init(service: "user-service", index: 2, address: "127.0.0.3", port: 3001, isReady: true),
        .init(service: "order-service", index: 1, address: "127.0.0.4", port: 3002, isReady: false),
    ]

    func withServer(_ body: (DNSServer, ServiceDirectory, URL) async throws -> Void) async throws {
        let dig = try #require(ExternalTool.find("dig"), "dig is missing: scripts/test installs bind9-dnsutils")
        let directory = ServiceDirectory(project: "shop", replicas: Self.replicas)
        let server = try await DNSServer.start(directory: directory)
        do {
            try await body(server, directory, dig)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func lines(_ text: String) -> Set<String> { Set(text.split(separator: "\n").map(String.init)) }

    @Test func aRecordsListReadyReplicasOverUDPAndTCP() async throws {
        try await withServer { server, _, dig in
            for transport in ["+notcp", "+tcp"] {
                #expect(
                    lines(await Dig.run(dig, port: server.port, [transport, "+short", "user-service"])) == [
                        "127.0.0.2", "127.0.0.3",
                    ])
                #expect(
                    lines(await Dig.run(dig, port: server.port, [transport, "+short", "USER-SERVICE.shop.local."])) == [
                        "127.0.0.2", "127.0.0.3",
                    ])
            }
            let full = await Dig.run(dig, port: server.port, ["+noall", "+answer", "user-service"])
            // TTL of one second, so a replica that stops being ready leaves clients' caches at once.
            #expect(
                full.split(separator: "\n").allSatisfy { $0.split(whereSeparator: \.isWhitespace)[1] == "1" }, "\(full)"
            )
            #expect(await Dig.run(dig, port: server.port, ["user-service"]).contains("flags: qr aa rd"))
        }
    }

    @Test func srvGivesThePortAndResolvableTargets() async throws {
        try await withServer { server, _, dig in
            let srv = lines(await Dig.run(dig, port: server.port, ["+short", "_http._tcp.user-service", "SRV"]))
            #expect(srv == ["0 1 3001 1.user-service.shop.local.", "0 1 3001 2.user-service.shop.local."])
            #expect(await Dig.run(dig, port: server.port, ["+short", "2.user-service.shop.local"]) == "127.0.0.3")
            // ServiceKit's resolver, as a service under `orchestrate up` uses it: SRV, then the targets.
            let resolver = UpstreamResolver(dns: try DNSResolver(host: "127.0.0.1", port: server.port))
            var seen: Set<String> = []
            for _ in 0..<4 {
                let endpoint = try await resolver.endpoint(host: "user-service", port: nil)
                #expect(endpoint.port == 3001)
                seen.insert(endpoint.host)
            }
            #expect(seen == ["127.0.0.2", "127.0.0.3"])
        }
    }

    @Test func readinessDecidesWhoIsListed() async throws {
        try await withServer { server, directory, dig in
            // A known name with nothing ready: no records, but not NXDOMAIN.
            let notReady = await Dig.run(dig, port: server.port, ["order-service"])
            #expect(notReady.contains("status: NOERROR"))
            #expect(notReady.contains("ANSWER: 0"))
            directory.setReady(true, service: "order-service", address: "127.0.0.4")
            #expect(await Dig.run(dig, port: server.port, ["+short", "order-service"]) == "127.0.0.4")
            directory.setReady(false, service: "user-service", address: "127.0.0.2")
            #expect(await Dig.run(dig, port: server.port, ["+short", "user-service"]) == "127.0.0.3")
        }
    }

    @Test func unknownNamesAreNXDomainAndOtherTypesEmpty() async throws {
        try await withServer { server, _, dig in
            #expect(await Dig.run(dig, port: server.port, ["payment-service"]).contains("status: NXDOMAIN"))
            #expect(await Dig.run(dig, port: server.port, ["user-service.other.local"]).contains("status: NXDOMAIN"))
            #expect(await Dig.run(dig, port: server.port, ["9.user-service.shop.local"]).contains("status: NXDOMAIN"))
            let aaaa = await Dig.run(dig, port: server.port, ["user-service", "AAAA"])
            #expect(aaaa.contains("status: NOERROR") && aaaa.contains("ANSWER: 0"))
            #expect(
                await Dig.run(dig, port: server.port, ["-c", "CH", "user-service", "TXT"]).contains("status: REFUSED"))
        }
    }

    /// Garbage, responses and truncated messages get no answer and do not stop the server.
    @Test func malformedQueriesAreDropped() async throws {
        let directory = ServiceDirectory(project: "shop", replicas: Self.replicas)
        #expect(directory.reply(to: []) == nil)
        #expect(directory.reply(to: [0x12]) == nil)
        // Seeded, so a failure replays: the same 200 messages on every run.
        var random = SeededGenerator(seed: 0xD45)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            _ = directory.reply(to: bytes)  // must not crash
        }
        let query = try DNSMessage.query(id: 7, name: "user-service", type: .a)
        var response = query
        response[2] |= 0x80  // QR: a response, not a query
        #expect(directory.reply(to: response) == nil)
        let answer = try #require(directory.reply(to: query))
        let parsed = try DNSMessage.parse(answer)
        #expect(parsed.id == 7)
        #expect(parsed.records == [.a("127.0.0.2"), .a("127.0.0.3")])
        try await withServer { server, _, dig in
            // The server still answers after garbage over UDP.
            let sent = try await DatagramProbe.send([0xFF, 0x00, 0x01], to: server.port)
            #expect(sent)
            #expect(await Dig.run(dig, port: server.port, ["+short", "user-service"]).contains("127.0.0.2"))
        }
    }
}

/// Sends one UDP datagram to 127.0.0.1:port.
enum DatagramProbe {
    static func send(_ bytes: [UInt8], to port: Int) async throws -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(descriptor, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return sent == bytes.count
    }
}
