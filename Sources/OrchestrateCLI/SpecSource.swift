import OrchestrateSpec

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The bytes of one spec file and its lines, for showing the line a diagnostic points at.
///
/// Read with POSIX calls: the CLI stays on FoundationEssentials, because full Foundation (with ICU) costs
/// milliseconds at every start, and `validate` runs in pre-commit on every commit.
struct SpecSource {
    var name: String
    var bytes: [UInt8]

    /// Reads a spec from a path, or from standard input for `-`. A file over the size limit is not read whole:
    /// only enough of it to let the loader say it is too large.
    static func read(_ path: String, displayName: String) throws -> SpecSource {
        if path == "-" {
            return SpecSource(name: displayName, bytes: try readAll(descriptor: STDIN_FILENO, path: "standard input"))
        }
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw CLIError(.read, "cannot read \(path): \(errorText())") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw CLIError(.read, "cannot read \(path): \(errorText())")
        }
        guard (status.st_mode & S_IFMT) != S_IFDIR else {
            throw CLIError(.read, "cannot read \(path): it is a directory")
        }
        let expected = (status.st_mode & S_IFMT) == S_IFREG ? Int(status.st_size) : 0
        return SpecSource(name: displayName, bytes: try readAll(descriptor: descriptor, path: path, expected: expected))
    }

    /// Reads up to the size limit (plus one byte, so the loader can tell a file is too large) straight into the
    /// array; `expected` (a regular file's size) sizes it once instead of by doubling.
    private static func readAll(descriptor: Int32, path: String, expected: Int = 0) throws -> [UInt8] {
        let limit = SpecLoader.maximumFileSize + 1
        var bytes = [UInt8](repeating: 0, count: min(max(expected + 1, 64 * 1024), limit))
        var filled = 0
        while filled < limit {
            if filled == bytes.count { bytes += repeatElement(0, count: min(bytes.count, limit - bytes.count)) }
            let count = bytes.withUnsafeMutableBytes {
                POSIX.read(descriptor, into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...]))
            }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw CLIError(.read, "cannot read \(path): \(errorText())") }
            if count == 0 { break }
            filled += count
        }
        bytes.removeSubrange(filled...)
        return bytes
    }

    private static func errorText() -> String {
        switch errno {
        case ENOENT: "no such file"
        case EACCES: "permission denied"
        default: String(cString: strerror(errno))
        }
    }

    /// The text of a 1-based line, without its line break; nil past the end or for undecodable text.
    func line(_ number: Int) -> String? {
        var current = 1
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "\n") {
                if current == number { break }
                current += 1
                start = index + 1
            }
            index += 1
        }
        guard current == number, start <= index else { return nil }
        var slice = bytes[start..<index]
        if slice.last == UInt8(ascii: "\r") { slice = slice.dropLast() }
        if number == 1, slice.starts(with: [0xEF, 0xBB, 0xBF]) { slice = slice.dropFirst(3) }
        return String(validating: slice, as: UTF8.self)
    }
}
