import Foundation
public import OTLPSpan
import Synchronization

/// The dashboard's OTLP decoder, `orchestrate-otlp`, as a child process fed one export at a time over a pipe: a frame
/// of a 4-byte big-endian length and the bytes, answered by one JSON line. A separate process keeps SwiftProtobuf out
/// of `orchestrate` (a 9.5 MB smaller binary, no protobuf in the CLI's build). Started on the first
/// export, started again if it exits; it exits by itself when this process's end of the pipe closes.
public final class OTLPDecoderProcess: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private struct Child {
        var pid: pid_t
        var input: Int32
        var output: Int32
        var buffered: [UInt8] = []
    }

    public let path: String
    private let queue = DispatchQueue(label: "orchestrate.otlp-decoder")
    private let child = Mutex<Child?>(nil)
    private let timeout: Int32

    /// - Parameter timeoutMilliseconds: How long one answer may take before the decoder is killed and restarted.
    public init(path: String, timeoutMilliseconds: Int32 = 5000) {
        self.path = path
        self.timeout = timeoutMilliseconds
    }

    /// The spans of one export.
    public func decode(_ bytes: [UInt8]) async -> Result<[ReceivedSpan], Failure> {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: self.decodeNow(bytes)) }
        }
    }

    public func stop() {
        queue.sync { child.withLock { Self.end(&$0) } }
    }

    private struct Answer: Decodable {
        var spans: [ReceivedSpan]?
        var error: String?
    }

    private func decodeNow(_ bytes: [UInt8]) -> Result<[ReceivedSpan], Failure> {
        child.withLock { child in
            if let running = child, waitpid(running.pid, nil, WNOHANG) != 0 {
                close(running.input)
                close(running.output)
                child = nil
            }
            if child == nil {
                Self.end(&child)
                do {
                    child = try Self.launch(path)
                } catch {
                    return .failure(Failure(description: "cannot start \(path): \(error)"))
                }
            }
            let length = UInt32(bytes.count)
            let frame =
                [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
                + bytes
            guard Self.writeAll(child!.input, frame), let line = Self.readLine(&child!, timeout: timeout)
            else {
                Self.end(&child)
                return .failure(Failure(description: "the decoder did not answer; it is restarted for the next export"))
            }
            guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(line)) else {
                return .failure(Failure(description: "the decoder's answer is not JSON"))
            }
            if let spans = answer.spans { return .success(spans) }
            return .failure(Failure(description: answer.error ?? "no spans"))
        }
    }

    /// Spawned with `Spawn` (posix_spawn: a clean signal mask, its own process group) over close-on-exec pipes.
    private static func launch(_ path: String) throws(SupervisorError) -> Child {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { throw SupervisorError(.launch, "pipe: \(errno)") }
        guard pipe(&fromChild) == 0 else {
            close(toChild[0])
            close(toChild[1])
            throw SupervisorError(.launch, "pipe: \(errno)")
        }
        // Close-on-exec, so no other child holds them (the dup2s give the decoder its own copies).
        for descriptor in toChild + fromChild { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        let started = Spawn.start(
            [path], environment: [:], output: .pipes(input: toChild[0], output: fromChild[1]), ownGroup: true)
        // The child's ends are its own now: with them closed here, it sees the end of its input when this side closes.
        close(toChild[0])
        close(fromChild[1])
        switch started {
        case .success(let pid):
            return Child(pid: pid, input: toChild[1], output: fromChild[0])
        case .failure(let error):
            close(toChild[1])
            close(fromChild[0])
            throw error
        }
    }

    private static func end(_ child: inout Child?) {
        guard let running = child else { return }
        close(running.input)  // the decoder exits at the end of its input
        kill(running.pid, SIGTERM)
        waitpid(running.pid, nil, 0)
        close(running.output)
        child = nil
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    /// One line of the child's output, within `timeout` milliseconds of waiting for each read.
    private static func readLine(_ child: inout Child, timeout: Int32) -> [UInt8]? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            if let newline = child.buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(child.buffered[..<newline])
                child.buffered.removeFirst(newline + 1)
                return line
            }
            var entry = pollfd(fd: child.output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, timeout)
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { return nil }
            let descriptor = child.output
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return nil }
            child.buffered += chunk[..<count]
        }
    }
}
