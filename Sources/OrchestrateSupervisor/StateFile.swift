import Foundation
import Synchronization

/// `.orchestrate/state.json`: who is running, so `status`/`down` find the supervisor and the next `up` can reclaim
/// processes an earlier run left behind (a supervisor killed on a system without a parent-death signal).
public struct StateFile: Codable, Sendable, Equatable {
    public struct Process: Codable, Sendable, Equatable {
        public var service: String
        public var replica: Int
        public var pid: Int32
        public var executable: String
        /// When it started (clock ticks after boot, `/proc/PID/stat` field 22): with the executable, what tells
        /// this process from a later one that reused its PID. A state file without it reclaims nothing.
        public var startTime: UInt64?

        public init(service: String, replica: Int, pid: Int32, executable: String, startTime: UInt64?) {
            self.service = service
            self.replica = replica
            self.pid = pid
            self.executable = executable
            self.startTime = startTime
        }
    }

    public var supervisorPID: Int32
    public var dnsPort: Int
    public var controlSocket: String
    public var processes: [Process]

    public init(supervisorPID: Int32, dnsPort: Int, controlSocket: String, processes: [Process] = []) {
        self.supervisorPID = supervisorPID
        self.dnsPort = dnsPort
        self.controlSocket = controlSocket
        self.processes = processes
    }

    public static func read(_ path: String) -> StateFile? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(StateFile.self, from: data)
    }

    /// Written to a temporary file and renamed, so a reader never sees half a file.
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// Keeps the state file current as replicas start and exit.
public final class StateRecorder: Sendable {
    private let path: String
    private let state: Mutex<StateFile>

    public init(path: String, initial: StateFile) throws {
        self.path = path
        state = Mutex(initial)
        try initial.write(to: path)
    }

    /// A replica's process started. Two processes may share a replica's index for a while (`up --watch` starts the
    /// new one before it stops the old), so each is recorded, and forgotten, by its PID.
    func started(service: String, index: Int, pid: Int32, executable: String) {
        update { state in
            state.processes.removeAll { $0.pid == pid }
            state.processes.append(
                StateFile.Process(
                    service: service, replica: index, pid: pid, executable: executable,
                    startTime: ProcessInfoReader.startTime(of: pid)))
        }
    }

    /// A replica's process exited.
    func exited(pid: Int32) {
        update { state in state.processes.removeAll { $0.pid == pid } }
    }

    private func update(_ change: (inout StateFile) -> Void) {
        state.withLock { state in
            change(&state)
            state.processes.sort { ($0.service, $0.replica, $0.pid) < ($1.service, $1.replica, $1.pid) }
            try? state.write(to: path)
        }
    }

    public func remove() {
        state.withLock { _ in _ = unlink(path) }
    }
}

/// What a running process is, read from /proc (Linux): to tell a process of ours from one that reused its PID.
public enum ProcessInfoReader {
    /// The path of the program a live process runs, or nil (gone, not ours to read, or not Linux).
    public static func executable(of pid: Int32) -> String? {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return nil }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        var path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
        return path
    }

    /// When a live process started, in clock ticks after boot (`/proc/PID/stat` field 22), or nil.
    public static func startTime(of pid: Int32) -> UInt64? {
        guard pid > 0, let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        // The command name (field 2) is in parentheses and may hold spaces or `)`: count from the last `)`.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (the state), so field 22 is fields[19].
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// Whether `process` of a state file is still that very process: same executable, same start time.
    public static func isStill(_ process: StateFile.Process) -> Bool {
        guard let recorded = process.startTime else { return false }
        return executable(of: process.pid) == process.executable && startTime(of: process.pid) == recorded
    }

    /// The short command name (`/proc/PID/comm`).
    public static func command(of pid: Int32) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/comm") else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Running (a zombie, exited but not yet reaped by its parent, is not).
    public static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return true }
        return !String(decoding: stat, as: UTF8.self).contains(") Z ")
    }
}
