import Foundation
import Synchronization

/// Where the supervisor's and the children's lines go: the terminal, each line prefixed with the replica's name
/// (coloured per service on a terminal), and `.orchestrate/logs/SERVICE.log`, prefixed the same way without colour.
/// Lines are written whole under a lock, so the replicas' output interleaves by line, never inside one.
public final class SupervisorLog: Sendable {
    private struct State {
        var files: [String: Int32] = [:]
    }

    private let directory: String?
    private let useColor: Bool
    private let width: Int
    private let colors: [String: String]
    private let writeToTerminal: Bool
    private let state = Mutex(State())
    /// Lines also kept in memory when set (the tests read them).
    private let capture: Mutex<[String]>?
    /// Every line also goes here, for the dashboard.
    public let ring: LogRing?

    /// - Parameters:
    ///   - directory: `.orchestrate/logs`, created if missing; nil writes no files.
    ///   - services: Every service name, for the colours and the width of the prefix column.
    public init(
        directory: String?, services: [String], maximumReplicas: Int, useColor: Bool, terminal: Bool = true,
        capture: Bool = false, ring: LogRing? = nil
    ) {
        self.ring = ring
        self.directory = directory
        self.useColor = useColor
        writeToTerminal = terminal
        width = max("orchestrate".count, (services.map(\.count).max() ?? 0) + 1 + String(maximumReplicas).count)
        let palette = ["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"]
        colors = Dictionary(uniqueKeysWithValues: services.enumerated().map { ($1, palette[$0 % palette.count]) })
        self.capture = capture ? Mutex([]) : nil
        if let directory {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
    }

    /// A line a replica wrote.
    public func output(_ line: String, replica: String, service: String) {
        write(line, prefix: replica, service: service, color: colors[service])
        ring?.append(line, service: service, replica: replica)
    }

    /// Something the supervisor did to or saw of a replica (also in that service's log file).
    public func event(_ text: String, replica: String, service: String) {
        write(text, prefix: "orchestrate", service: service, color: "1", subject: replica)
        ring?.append("\(replica) \(text)", service: service, replica: "orchestrate")
    }

    /// Something the supervisor says about the whole run.
    public func note(_ text: String) {
        write(text, prefix: "orchestrate", service: nil, color: "1")
    }

    public var captured: [String] { capture?.withLock { $0 } ?? [] }

    private func write(_ text: String, prefix: String, service: String?, color: String?, subject: String? = nil) {
        let padded = prefix.padding(toLength: width, withPad: " ", startingAt: 0)
        let body = subject.map { "\($0) \(text)" } ?? text
        let plain = "\(padded) | \(body)\n"
        let shown = useColor && color != nil ? "\u{1B}[\(color!)m\(padded) |\u{1B}[0m \(body)\n" : plain
        state.withLock { state in
            if writeToTerminal { Self.writeAll(1, Array(shown.utf8)) }
            capture?.withLock { $0.append(plain) }
            guard let service, let directory else { return }
            let descriptor: Int32
            if let open = state.files[service] {
                descriptor = open
            } else {
                descriptor = Foundation.open(
                    "\(directory)/\(service).log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
                guard descriptor >= 0 else { return }
                state.files[service] = descriptor
            }
            Self.writeAll(descriptor, Array(plain.utf8))
        }
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
        var remaining = bytes[...]
        while !remaining.isEmpty {
            let written = remaining.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            remaining = remaining.dropFirst(written)
        }
    }

    /// Closes the log files.
    public func close() {
        state.withLock { state in
            for descriptor in state.files.values { Foundation.close(descriptor) }
            state.files = [:]
        }
    }
}
