import ArgumentParser
import Crypto
import DNSWire
import Foundation
import OrchestrateSpec
import OrchestrateSupervisor

/// `orchestrate resolve NAME`: what the running supervisor's DNS server answers, as `dig` would show it.
struct Resolve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Ask the running orchestrate up's DNS server for a name's A and SRV records.",
        discussion: """
            Prints the ready replicas' addresses and the SRV records (port and per-replica target), the same \
            answers `dig @127.0.0.1 -p PORT NAME` gets. Exits 1 when the name is unknown (NXDOMAIN).

            Examples:
              orchestrate resolve user-service
              orchestrate resolve user-service.shop.local
            """)

    @Argument(help: "A service name, NAME.<project>.local, or <replica>.NAME.<project>.local.") var name: String
    @OptionGroup var options: StateOptions

    func run() throws {
        let state = try options.runningState()
        var any = false
        for type in [DNSMessage.RecordType.a, .srv] {
            let response: DNSMessage.Response
            do {
                response = try Self.query(name: name, type: type, port: state.dnsPort)
            } catch {
                POSIX.printError("orchestrate: \(error)")
                throw ExitCode.failure
            }
            if response.responseCode == 3 {
                POSIX.printError("orchestrate: \(name): no such name (NXDOMAIN)")
                throw ExitCode.failure
            }
            for record in response.records {
                any = true
                switch record {
                case .a(let address): print("\(name)\tA\t\(address)")
                case .srv(let priority, let weight, let port, let target):
                    print("\(name)\tSRV\t\(priority) \(weight) \(port) \(target)")
                }
            }
        }
        if !any { print("\(name): no ready replica") }
    }

    static func query(name: String, type: DNSMessage.RecordType, port: Int) throws -> DNSMessage.Response {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw CLIError(.query, "cannot create a socket") }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let id = UInt16.random(in: 0...UInt16.max)
        let message = try DNSMessage.query(id: id, name: name, type: type)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(descriptor, message, message.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard sent == message.count else { throw CLIError(.query, "cannot send to 127.0.0.1:\(port)") }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count > 0 else { throw CLIError(.query, "no answer from the DNS server on 127.0.0.1:\(port)") }
        let response = try DNSMessage.parse(Array(buffer[0..<count]))
        guard response.id == id else { throw CLIError(.query, "an answer to another query") }
        return response
    }
}
