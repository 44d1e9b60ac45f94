import CSupervisorSpawn
import Foundation
import Synchronization

/// What to start: a program, its arguments and its whole environment (nothing is inherited).
public struct LaunchRequest: Sendable, Equatable {
    public var executable: String
    public var arguments: [String]
    public var environment: [String: String]
    public var workingDirectory: String?
    /// The user to run as, when not the supervisor's own (PostgreSQL refuses to run as root).
    public var user: ProcessUser?
    /// A file the process sees as its /etc/hosts (its own mount namespace), so it resolves the services' names.
    public var hostsFile: String?

    public init(
        executable: String, arguments: [String], environment: [String: String], workingDirectory: String? = nil,
        user: ProcessUser? = nil, hostsFile: String? = nil
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.user = user
        self.hostsFile = hostsFile
    }
}

/// A user and group to run a process as.
public struct ProcessUser: Sendable, Equatable, Codable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32

    public init(name: String, uid: UInt32, gid: UInt32) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }

    /// The account `name` from the user database, or nil when there is none.
    public static func named(_ name: String) -> ProcessUser? {
        guard let entry = getpwnam(name) else { return nil }
        return ProcessUser(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }
}

/// How a process ended.
public enum ProcessExit: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// The status a restart policy looks at: the exit code, or 128 + the signal as a shell reports it.
    public var code: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): "exit \(code)"
        case .signaled(let signal): "killed by \(Signals.name(signal))"
        }
    }
}

/// A started process, the leader of its own process group.
public protocol LaunchedProcess: AnyObject, Sendable {
    var pid: Int32 { get }
    /// Sends `signal` to the whole group: the process and anything it started.
    func signalGroup(_ signal: Int32)
    /// Returns when the process has exited (at once if it already has).
    func exitStatus() async -> ProcessExit
}

/// Starts processes. The supervisor only ever talks to this, so its logic is tested with a fake.
public protocol ProcessLauncher: Sendable {
    /// Starts the process; each line it writes to standard output or error goes to `output`.
    func launch(_ request: LaunchRequest, output: @escaping @Sendable (String) -> Void) async throws
        -> any LaunchedProcess
}

enum Signals {
    static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGKILL: "SIGKILL"
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGSEGV: "SIGSEGV"
        case SIGABRT: "SIGABRT"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGBUS: "SIGBUS"
        default: "signal \(signal)"
        }
    }
}

/// The real launcher: each child in its own process group (so the group is killed, grandchildren included), with
/// its output read line by line through a pipe. On Linux each child also gets `PR_SET_PDEATHSIG` = SIGKILL: if the
/// supervisor dies, even by SIGKILL, the kernel kills the children. The parent-death signal is tied to the thread
/// that forked, so each child is forked from a thread of its own that lives exactly as long as the child (it waits
/// for it); that thread then reaps it. On macOS there is no parent-death signal: there the state file is what lets
/// the next `orchestrate up` reclaim children a killed supervisor left behind.
public struct NativeLauncher: ProcessLauncher {
    public init() {}

    public func launch(_ request: LaunchRequest, output: @escaping @Sendable (String) -> Void) async throws
        -> any LaunchedProcess
    {
        var pipeEnds: [Int32] = [0, 0]
        guard orchestrate_pipe(&pipeEnds) == 0 else {
            throw SupervisorError(.launch, "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        let process = NativeProcess()
        let started: Result<Int32, SupervisorError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                let pid = Self.spawn(request, outputDescriptor: writeEnd)
                close(writeEnd)
                guard pid > 0 else {
                    close(readEnd)
                    continuation.resume(
                        returning: .failure(
                            SupervisorError(
                                .launch, "cannot start \(request.executable): \(String(cString: strerror(-pid)))")))
                    return
                }
                process.started(pid: pid)
                continuation.resume(returning: .success(pid))
                let reader = Thread { Self.pump(readEnd, to: output) }
                reader.name = "orchestrate-log-\(pid)"
                reader.start()
                // Wait without reaping: while the leader is a zombie its group ID cannot be reused, so whatever it
                // left running in its group is killed here, and only then is it reaped.
                var info = siginfo_t()
                while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0, errno == EINTR {}
                process.reaping()
                kill(-pid, SIGKILL)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0, errno == EINTR {}
                let exited = status & 0x7f == 0
                process.finished(exited ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f))
            }
            thread.name = "orchestrate-child"
            thread.stackSize = 256 * 1024
            thread.start()
        }
        _ = try started.get()
        return process
    }

    private static func spawn(_ request: LaunchRequest, outputDescriptor: Int32) -> Int32 {
        let arguments = ([request.executable] + request.arguments).map { strdup($0) } + [nil]
        defer { for argument in arguments { free(argument) } }
        let environment = request.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for entry in environment { free(entry) } }
        #if os(Linux)
            let deathSignal = SIGKILL
        #else
            let deathSignal: Int32 = 0
        #endif
        let hostsFile = request.hostsFile.flatMap { strdup($0) }
        defer { free(hostsFile) }
        return arguments.withUnsafeBufferPointer { argv in
            environment.withUnsafeBufferPointer { envp in
                orchestrate_spawn(
                    request.executable, argv.baseAddress, envp.baseAddress, request.workingDirectory,
                    outputDescriptor, deathSignal, request.user.map { uid_t($0.uid) } ?? uid_t.max,
                    request.user.map { gid_t($0.gid) } ?? gid_t.max, hostsFile)
            }
        }
    }

    /// Reads until end of file, handing over each line (a last line without a newline too; very long lines in
    /// pieces of 64 KiB, so a process cannot make the supervisor hold unbounded memory).
    private static func pump(_ descriptor: Int32, to output: @Sendable (String) -> Void) {
        defer { close(descriptor) }
        var pending: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            pending.append(contentsOf: buffer[0..<count])
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                output(String(decoding: pending[..<newline], as: UTF8.self))
                pending.removeSubrange(...newline)
            }
            if pending.count > 64 * 1024 {
                output(String(decoding: pending, as: UTF8.self))
                pending.removeAll(keepingCapacity: true)
            }
        }
        if !pending.isEmpty { output(String(decoding: pending, as: UTF8.self)) }
    }
}

final class NativeProcess: LaunchedProcess {
    private struct State {
        var pid: Int32 = 0
        var status: ProcessExit?
        var isReaping = false
        var waiters: [CheckedContinuation<ProcessExit, Never>] = []
    }

    private let state = Mutex(State())

    var pid: Int32 { state.withLock { $0.pid } }

    func started(pid: Int32) {
        state.withLock { $0.pid = pid }
    }

    func reaping() {
        state.withLock { $0.isReaping = true }
    }

    func finished(_ status: ProcessExit) {
        let waiters = state.withLock { state in
            state.status = status
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    func signalGroup(_ signal: Int32) {
        // Once reaped, the PID may belong to someone else: never signal then (the waiting thread marks the process
        // as reaping while the exited leader still holds its PID, kills the rest of the group, then reaps).
        state.withLock { state in
            if !state.isReaping, state.pid > 0 { kill(-state.pid, signal) }
        }
    }

    func exitStatus() async -> ProcessExit {
        await withCheckedContinuation { continuation in
            let done: ProcessExit? = state.withLock { state in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }
}
