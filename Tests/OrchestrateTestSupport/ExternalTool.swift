public import Foundation

/// A validator the tests run for real (check-jsonschema, docker-compose, kubernetes-validate, kubectl, nginx);
/// scripts/test installs them, the Python ones into `.build-venv` and `.build-compose-venv`.
public enum ExternalTool {
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Whether a missing tool fails the run: always in CI and under scripts/test, which installs the tools.
    public static var isRequired: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["CI"] != nil || environment["ORCHESTRATE_REQUIRE_TOOLS"] != nil
    }

    /// The executable from a virtualenv of the package (`.build-venv`, `.build-compose-venv`), then from PATH
    /// and the sbin directories; nil when it is nowhere.
    public static func find(_ name: String, venv: String = ".build-venv") -> URL? {
        let local = packageRoot.appendingPathComponent("\(venv)/bin/\(name)")
        if FileManager.default.isExecutableFile(atPath: local.path) { return local }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    /// Runs the tool and returns its exit status and standard output; standard error is discarded.
    public static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil) async throws -> (Int32, Data) {
        let (status, output, _) = try await runCapturingErrors(executable, arguments, in: directory)
        return (status, output)
    }

    /// Runs the tool and returns its exit status, standard output and standard error; it is waited for on a thread
    /// of its own, off the test's cooperative pool.
    public static func runCapturingErrors(_ executable: URL, _ arguments: [String], in directory: URL? = nil)
        async throws -> (Int32, Data, String)
    {
        try await offThePool { try runBlocking(executable, arguments, in: directory) }
    }

    private static func runBlocking(_ executable: URL, _ arguments: [String], in directory: URL?) throws
        -> (Int32, Data, String)
    {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("tool-stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let errorHandle = try FileHandle(forWritingTo: errorFile)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errorHandle
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? errorHandle.close()
        let errors = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
        return (process.terminationStatus, data, errors)
    }

    /// A fresh temporary directory; the caller removes it.
    public static func temporaryDirectory(_ name: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(name)-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }
}
