public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real `redis-server` for one test: loopback only, its own port and directory, append-only file on, so a stop and
/// start keeps the streams and consumer groups (as a production Redis with persistence does). scripts/test installs
/// it; a test that starts one carries `.requires("redis-server", RedisServer.isInstalled)`, so under CI or
/// scripts/test a missing binary fails the test, and elsewhere it shows as skipped.
public final class RedisServer: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    private let executable: URL
    /// `requirepass`, when it was started with one.
    public let password: String?
    private var process: ChildProcess?

    public var url: String { "redis://127.0.0.1:\(port)" }

    /// Whether `redis-server` is installed: the condition of `.requires("redis-server", RedisServer.isInstalled)`.
    public static var isInstalled: Bool { ExternalTool.find("redis-server") != nil }

    /// - Throws: When `redis-server` is not installed, or does not start.
    public static func start(_ name: String, password: String? = nil) async throws -> RedisServer {
        guard let executable = ExternalTool.find("redis-server") else {
            throw ChildProcess.SpawnError(
                description: "redis-server is not installed (scripts/test installs redis-server)")
        }
        let server = RedisServer(
            executable: executable, port: try ChildProcess.freePort(),
            directory: try ExternalTool.temporaryDirectory(name), password: password)
        try await server.start()
        return server
    }

    private init(executable: URL, port: Int, directory: URL, password: String?) {
        self.executable = executable
        self.port = port
        self.directory = directory
        self.password = password
    }

    /// Starts it (again) on the same port and directory; returns once it answers PING. Bounded: 10 s.
    public func start() async throws {
        let process = try ChildProcess(
            executable.path,
            [
                "--port", String(port), "--bind", "127.0.0.1", "--dir", directory.path, "--save", "", "--appendonly",
                "yes",
                "--appendfsync", "everysec", "--protected-mode", "yes", "--daemonize", "no",
            ] + (password.map { ["--requirepass", $0] } ?? []),
            environment: [:], logPath: directory.appendingPathComponent("redis.log").path)
        self.process = process
        for _ in 0..<200 {
            if ping() { return }
            if let status = await process.wait(timeout: .milliseconds(50)) {
                throw ChildProcess.SpawnError(
                    description: "redis-server exited with \(status):\n\(process.log.suffix(2000))")
            }
        }
        throw ChildProcess.SpawnError(
            description: "redis-server did not answer PING in 10 s:\n\(process.log.suffix(2000))")
    }

    /// SIGTERM: Redis flushes its append-only file and exits.
    public func stop() async {
        await process?.stop(grace: .seconds(10))
        process = nil
    }

    /// Stops it (waiting for its exit) and removes its directory; synchronous, for a `defer`.
    public func remove() {
        process?.stopNow()
        process = nil
        try? FileManager.default.removeItem(at: directory)
    }

    /// Whether it answers PING now (a plain socket, so the helper depends on nothing).
    public func ping() -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return false }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // AUTH as a RESP array, so a password with spaces stays one argument.
        let auth = password.map { "*2\r\n$4\r\nAUTH\r\n$\($0.utf8.count)\r\n\($0)\r\n" } ?? ""
        let command = auth + "PING\r\n"
        guard command.withCString({ send(descriptor, $0, strlen($0), 0) }) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        var reply = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : ""
        if password != nil, reply == "+OK\r\n" {
            let more = recv(descriptor, &buffer, buffer.count, 0)
            reply += more > 0 ? String(decoding: buffer[0..<more], as: UTF8.self) : ""
        }
        return reply.hasSuffix("+PONG\r\n")
    }
}
