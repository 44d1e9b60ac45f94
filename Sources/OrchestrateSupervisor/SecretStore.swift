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
            guard
                FileManager.default.createFile(
                    atPath: path, contents: Data(value.utf8), attributes: [.posixPermissions: 0o600])
            else { throw SupervisorError(.secret, "cannot write \(path)") }
        } catch let error as SupervisorError {
            throw error
        } catch {
            throw SupervisorError(.secret, "cannot create \(directory)", underlying: error)
        }
        return (value, file)
    }
}
