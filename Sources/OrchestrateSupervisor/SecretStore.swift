import Foundation

/// Secrets for `orchestrate up`: `.orchestrate/secrets/NAME` (or `NAME.KEY` for a key other than `value`), else the
/// supervisor's environment variable of the secret's name in upper case (`jwt-secret` → `JWT_SECRET`), else made
/// at random on first run and written there (mode 0600), so a fresh clone runs without setup. Never from the spec.
public struct SecretStore: Sendable {
    public let directory: String
    public let environment: [String: String]

    public init(directory: String, environment: [String: String]) {
        self.directory = directory
        self.environment = environment
    }

    /// The value, and the file name when it was generated just now.
    public func value(name: String, key: String?) throws -> (String, generated: String?) {
        let file = key.map { $0 == "value" ? name : "\(name).\($0)" } ?? name
        let path = directory + "/" + file
        // Neither the directory nor a secret may be a link: a planted one would make a secret of another file (or
        // write a generated one there).
        for (candidate, kind) in [(directory, S_IFDIR), (path, S_IFREG)] {
            var status = stat()
            if lstat(candidate, &status) == 0, status.st_mode & S_IFMT != kind {
                throw SupervisorError(
                    .secret,
                    "\(candidate) is a symbolic link or not a \(kind == S_IFDIR ? "directory" : "file"): remove it")
            }
        }
        if let data = FileManager.default.contents(atPath: path) {
            guard let text = String(data: data, encoding: .utf8) else {
                throw SupervisorError(.secret, "\(path) is not UTF-8 text")
            }
            return (text.trimmingCharacters(in: .newlines), nil)
        }
        let variable = file.uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }
        if let value = environment[String(variable)], !value.isEmpty { return (value, nil) }
        var generator = SystemRandomNumberGenerator()
        let value = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        do {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
            // Created exclusively and never through a link, 0600 from the start.
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw SupervisorError(.secret, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(descriptor) }
            let bytes = Array(value.utf8)
            guard bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else {
                throw SupervisorError(.secret, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
        } catch let error as SupervisorError {
            throw error
        } catch {
            throw SupervisorError(.secret, "cannot create \(directory)", underlying: error)
        }
        return (value, file)
    }
}
