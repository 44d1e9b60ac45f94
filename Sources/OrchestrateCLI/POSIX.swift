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
    /// Writes `bytes` to `path`, never through a symbolic link (O_NOFOLLOW); `exclusive` creates it or fails.
    static func writeFile(_ path: String, _ bytes: [UInt8], exclusive: Bool = false) -> Bool {
        let descriptor = open(
            path, O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC) | O_NOFOLLOW | O_CLOEXEC, 0o644)
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

    /// What is at a path, without following a symbolic link there.
    enum Entry: Equatable {
        case missing
        case regularFile
        case directory
        /// A symbolic link, a FIFO, a device or a socket: nothing orchestrate reads or writes through.
        case other(String)
    }

    static func entry(_ path: String) -> Entry {
        var status = stat()
        guard lstat(path, &status) == 0 else { return errno == ENOENT ? .missing : .other(lastError()) }
        switch status.st_mode & S_IFMT {
        case S_IFREG: return .regularFile
        case S_IFDIR: return .directory
        case S_IFLNK: return .other("a symbolic link")
        case S_IFIFO: return .other("a FIFO")
        default: return .other("not a regular file")
        }
    }

    /// The bytes of a regular file, read without following a symbolic link and without blocking on a FIFO; nil when
    /// there is none or it is anything else.
    static func readRegularFile(_ path: String) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Self.read(descriptor, into: $0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += chunk[0..<count]
        }
        return bytes
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
