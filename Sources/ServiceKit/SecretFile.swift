#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads a small secret file (`/run/secrets/NAME`) with POSIX calls.
enum SecretFile {
    static let maximumSize = 64 * 1024

    static func read(_ path: String) throws -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ServiceKitError(.secret, subject: path, String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= maximumSize {
            let count = chunk.withUnsafeMutableBytes { buffer in
                #if canImport(Glibc)
                    Glibc.read(descriptor, buffer.baseAddress, buffer.count)
                #else
                    Darwin.read(descriptor, buffer.baseAddress, buffer.count)
                #endif
            }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw ServiceKitError(.secret, subject: path, String(cString: strerror(errno))) }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        guard bytes.count <= maximumSize else {
            throw ServiceKitError(.secret, subject: path, "it is larger than 64 KiB")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ServiceKitError(.secret, subject: path, "it is not UTF-8")
        }
        return text
    }
}
