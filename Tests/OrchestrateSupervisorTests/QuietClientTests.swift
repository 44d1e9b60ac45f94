import Foundation
import NIOCore
import OrchestrateSupervisor
import OrchestrateTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The control socket and the DNS server's TCP side against clients that connect and say nothing: they are dropped,
/// so none can hold a connection open forever. The control socket is 0600 from the moment it exists.
@Suite(.timeLimit(.minutes(2))) struct QuietClientTests {
    /// Connects, sends nothing, and returns once the server closes (read returns 0) or after `limit`. Bounded at 30 s
    /// against a 300 ms idle limit: only a server that never drops the client fails it, not a loaded machine.
    func closedByServer(_ descriptor: Int32, limit: Int = 300) -> Bool {
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        for _ in 0..<limit {  // bounded: limit × 100 ms
            let count = recv(descriptor, &byte, 1, 0)
            if count == 0 { return true }
            if count < 0, errno != EAGAIN, errno != EWOULDBLOCK { return true }
        }
        return false
    }

    @Test func theControlSocketIsPrivateAndDropsASilentClient() async throws {
        let directory = try ExternalTool.temporaryDirectory("control")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("control.sock").path
        let before = umask(0o022)
        umask(before)
        let server = try await ControlServer.start(path: path, requestTimeout: .milliseconds(300)) { _ in
            ControlResponse(ok: true)
        }
        var status = stat()
        #expect(lstat(path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        let after = umask(before)
        #expect(after == before, "the process umask was left changed")
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() where index < buffer.count - 1 { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(connected == 0)
        let closed = try await offThePool { [self] in closedByServer(descriptor) }
        #expect(closed, "a silent client kept its control connection")
        // A client that does send its request still gets the answer.
        let answer = try ControlClient.request(ControlRequest(command: .status), at: path)
        #expect(answer.ok)
        await server.stop()
    }

    @Test func theDNSServerDropsASilentTCPClient() async throws {
        let server = try await DNSServer.start(
            directory: ServiceDirectory(project: "p", replicas: []), tcpIdleTimeout: .milliseconds(300))
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(server.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        // Off the cooperative pool: the blocking reads must not hold a thread the rest of the suite runs on.
        let closed = try await offThePool { [self] in closedByServer(descriptor) }
        #expect(closed, "a silent client kept its DNS connection")
        await server.stop()
    }
}
