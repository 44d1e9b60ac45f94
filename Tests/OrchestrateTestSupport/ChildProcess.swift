import CSupervisorSpawn
public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A program the tests start and stop: a shop service, a database server.
///
/// Started with posix_spawn and a clean signal mask (the test process blocks signals on its threads, and a child
/// inherits the mask: without a clean one it would ignore SIGTERM), its output appended to a log file. Foundation's
/// Process is not used for them: it sees its child end as the end of a socket the child inherits, and a long-lived
/// child that inherited that socket too (from a spawn on another thread) kept it from noticing for as long as it
/// ran. These children, for the same reason, inherit nothing but standard input, output and error.
public final class ChildProcess: @unchecked Sendable {
    public let pid: Int32
    public let logPath: String
    private var exitStatus: Int32?

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    public init(
        _ executable: String, _ arguments: [String] = [], environment: [String: String], logPath: String
    ) throws {
        self.logPath = logPath
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        // Nothing else of the test process (see the type's comment for why).
        _ = orchestrate_spawn_close_from(&fileActions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var cArguments = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for entry in cEnvironment { free(entry) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &fileActions, &attributes, &cArguments, &cEnvironment)
        guard status == 0 else {
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(status)))")
        }
        pid = child
    }

    /// The exit status (or 128 + signal), waiting at most `timeout`; nil while it still runs.
    public func wait(timeout: Duration) async -> Int32? {
        if let exitStatus { return exitStatus }
        let end = ContinuousClock.now + timeout
        repeat {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result < 0, errno == ECHILD { return nil }
            if result == pid {
                let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                exitStatus = code
                return code
            }
            try? await Task.sleep(for: .milliseconds(20))
        } while ContinuousClock.now < end
        return nil
    }

    public func signal(_ signal: Int32) {
        if exitStatus == nil { kill(pid, signal) }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; returns the exit status.
    @discardableResult
    public func stop(grace: Duration = .seconds(10)) async -> Int32? {
        signal(SIGTERM)
        if let status = await wait(timeout: grace) { return status }
        signal(SIGKILL)
        return await wait(timeout: .seconds(5))
    }

    /// `stop` for a synchronous `defer`: SIGTERM, SIGKILL after `grace`, and the exit reaped before it returns.
    @discardableResult
    public func stopNow(grace: Duration = .seconds(5)) -> Int32? {
        if let exitStatus { return exitStatus }
        kill(pid, SIGTERM)
        let end = ContinuousClock.now + grace
        var killed = false
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                return exitStatus
            }
            // Not a child of ours any more (reaped elsewhere): there is nothing to wait for, and looping on it would
            // hold this thread, one of the two in the cooperative pool, for good.
            if result < 0, errno != EINTR { return nil }
            if !killed, ContinuousClock.now >= end {
                kill(pid, SIGKILL)
                killed = true
            }
            usleep(10_000)
        }
    }

    /// What it has written so far.
    public var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago, for a child to listen on.
    ///
    /// Taken below the kernel's ephemeral range, never from it: a port from the range (what binding port 0 gives)
    /// can be taken as the source port of any outgoing connection in the moment before the child binds it, and a
    /// test that opens thousands of connections beside the others made that happen in CI (`Address already in
    /// use`). Ports are drawn at random and never handed out twice by one test process.
    public static func freePort() throws -> Int {
        let lowest = 10_000
        let below = min(ephemeralRangeStart(), 32_768)
        guard below - lowest > 1_000 else { return try boundPort(0) }
        for _ in 0..<200 {
            let candidate = Int.random(in: lowest..<below)
            guard handedOut.withLock({ $0.insert(candidate).inserted }) else { continue }
            if let port = try? boundPort(candidate) { return port }
        }
        throw SpawnError(description: "no free port in \(lowest)..<\(below) after 200 tries")
    }

    private static let handedOut = Mutex<Set<Int>>([])

    /// The first port of `net.ipv4.ip_local_port_range` (32768 when it cannot be read).
    private static func ephemeralRangeStart() -> Int {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        return text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32_768
    }

    /// Binds `port` (0: any) on 127.0.0.1 without SO_REUSEADDR, so a port still in TIME_WAIT counts as taken, and
    /// gives back the port bound.
    private static func boundPort(_ port: Int) throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw SpawnError(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
            }
        }
        guard bound else { throw SpawnError(description: "bind: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// dig, run through popen (Foundation's Process hung beside a long-lived child in async tests). Three tries of 3 s:
/// with every suite running at once on two cores, one second was not always enough for an answer (CI).
public enum Dig {
    /// dig's output, trimmed. Arguments are fixed words from the tests, so the shell line needs no quoting.
    public static func run(_ dig: URL, port: Int, _ arguments: [String]) async -> String {
        (try? await offThePool { runBlocking(dig, port: port, arguments) }) ?? ""
    }

    private static func runBlocking(_ dig: URL, port: Int, _ arguments: [String]) -> String {
        let command = ([dig.path, "@127.0.0.1", "-p", String(port), "+time=3", "+tries=3"] + arguments).joined(
            separator: " ")
        guard let pipe = popen(command, "r") else { return "" }
        var output = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            output += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        pclose(pipe)
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
