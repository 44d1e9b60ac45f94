import Foundation

/// Runs a command in the foreground, for `orchestrate up`'s build step: its output goes straight to the terminal
/// (the compiler's progress and messages as the user knows them), and the call waits for its exit status.
public enum ForegroundCommand {
    /// The exit status, or 127 when the program cannot be started; `capture` collects standard output instead.
    public static func run(_ words: [String], capture: Bool = false) -> (status: Int32, output: String) {
        var pipeEnds: [Int32] = [-1, -1]
        if capture {
            guard pipe(&pipeEnds) == 0 else { return (127, "") }
        }
        let spawned = Spawn.start(
            words, environment: nil, output: capture ? .descriptor(pipeEnds[1], alsoClose: pipeEnds[0]) : .inherit,
            ownGroup: false)
        if capture { close(pipeEnds[1]) }
        guard case .success(let pid) = spawned else {
            if capture { close(pipeEnds[0]) }
            return (127, "")
        }
        var output: [UInt8] = []
        if capture {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = chunk.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                output += chunk[0..<count]
            }
            close(pipeEnds[0])
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        return (Spawn.exitCode(status), String(decoding: output, as: UTF8.self))
    }
}
