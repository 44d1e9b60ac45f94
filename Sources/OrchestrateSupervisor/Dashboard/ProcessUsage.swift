import Foundation
import Synchronization

/// CPU and resident memory of processes, from /proc (Linux): what the dashboard shows per replica. CPU is the share
/// of one core used between two readings of the same process, so the first reading of a process has none.
public final class ProcessUsage: Sendable {
    public struct Reading: Sendable, Codable, Equatable {
        /// Percent of one core since the previous reading; nil on the first.
        public var cpuPercent: Double?
        public var residentBytes: Int64
    }

    private struct Sample {
        var ticks: Int64
        var at: ContinuousClock.Instant
    }

    private let samples = Mutex([Int32: Sample]())
    private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    private let pageSize = Int64(sysconf(Int32(_SC_PAGESIZE)))

    public init() {}

    /// The process's usage now, or nil when it is gone (or this is not Linux).
    public func read(_ pid: Int32) -> Reading? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let statm = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8),
            let ticks = Self.cpuTicks(stat),
            let residentPages = statm.split(separator: " ").dropFirst().first.flatMap({ Int64($0) })
        else { return nil }
        let now = ContinuousClock.now
        let previous = samples.withLock { samples in
            defer { samples[pid] = Sample(ticks: ticks, at: now) }
            return samples[pid]
        }
        var percent: Double?
        if let previous, ticks >= previous.ticks {
            let elapsed = now - previous.at
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if seconds > 0 { percent = Double(ticks - previous.ticks) / ticksPerSecond / seconds * 100 }
        }
        return Reading(cpuPercent: percent, residentBytes: residentPages * pageSize)
    }

    /// Forgets processes not in `alive`, so the table does not grow with every restart.
    public func keep(only alive: Set<Int32>) {
        samples.withLock { samples in samples = samples.filter { alive.contains($0.key) } }
    }

    /// utime + stime from /proc/PID/stat: fields 14 and 15, counted after the command name, which is in
    /// parentheses and may itself hold spaces and parentheses.
    static func cpuTicks(_ stat: String) -> Int64? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After ")": state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
        guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return nil }
        return user + system
    }
}
