public import Foundation

/// A validator the tests run for real (check-jsonschema, docker-compose, kubernetes-validate, kubectl, nginx);
/// scripts/test installs them, the Python ones into `.build-venv` and `.build-compose-venv`.
public enum ExternalTool {
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
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
    public static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil) async throws -> (
        Int32, Data
    ) {
        let (status, output, _) = try await runCapturingErrors(executable, arguments, in: directory)
        return (status, output)
    }

    /// Runs the tool and returns its exit status, standard output and standard error; it is waited for on a thread
    /// of its own, off the test's cooperative pool. With `input` its standard input is a pipe holding those bytes
    /// (else it inherits the test's); with `environment` those variables are added to the test's own.
    public static func runCapturingErrors(
        _ executable: URL, _ arguments: [String], in directory: URL? = nil, environment: [String: String]? = nil,
        input: Data? = nil
    ) async throws -> (Int32, Data, String) {
        try await offThePool {
            try runBlocking(executable, arguments, in: directory, environment: environment, input: input)
        }
    }

    /// Standard error goes to a file, not a second pipe: reading one pipe to its end while the tool fills the other
    /// would hang both.
    private static func runBlocking(
        _ executable: URL, _ arguments: [String], in directory: URL?, environment: [String: String]?, input: Data?
    ) throws -> (Int32, Data, String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tool-stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let errorHandle = try FileHandle(forWritingTo: errorFile)
        let output = Pipe()
        let standardInput = input.map { _ in Pipe() }
        process.standardOutput = output
        process.standardError = errorHandle
        if let standardInput { process.standardInput = standardInput }
        try process.run()
        if let input, let standardInput {
            standardInput.fileHandleForWriting.write(input)
            try standardInput.fileHandleForWriting.close()
        }
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
