#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The few system calls the CLI makes directly, named so they do not clash with methods called `exit` or `read`.
enum POSIX {
    static func terminate(_ status: Int32) -> Never {
        exit(status)
    }

    static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        #if canImport(Glibc)
            Glibc.read(descriptor, buffer.baseAddress, buffer.count)
        #else
            Darwin.read(descriptor, buffer.baseAddress, buffer.count)
        #endif
    }

    /// Creates or truncates a file (mode 0644), or with `exclusive` only creates one, and writes all of `bytes`.
    static func writeFile(_ path: String, _ bytes: [UInt8], exclusive: Bool = false) -> Bool {
        let descriptor = open(path, O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC) | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var remaining = bytes[...]
        while !remaining.isEmpty {
            let written = remaining.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return false }
            remaining = remaining.dropFirst(written)
        }
        return true
    }

    static func rename(_ source: String, to target: String) -> Bool {
        #if canImport(Glibc)
            Glibc.rename(source, target) == 0
        #else
            Darwin.rename(source, target) == 0
        #endif
    }

    static func remove(_ path: String) {
        unlink(path)
    }

    static func lastError() -> String {
        String(cString: strerror(errno))
    }

    /// Writes a line to standard error, retrying short writes.
    static func printError(_ message: String) {
        var bytes = Array((message + "\n").utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
