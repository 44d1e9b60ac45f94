import Foundation

/// A validator the tests run for real (check-jsonschema); scripts/test installs it into `.build-venv`.
struct ExternalTool {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Whether a missing tool fails the run: always in CI and under scripts/test, which installs the tools.
    static var isRequired: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["CI"] != nil || environment["ORCHESTRATE_REQUIRE_TOOLS"] != nil
    }

    /// The executable from `.build-venv/bin`, then from PATH; nil when it is nowhere.
    static func find(_ name: String) -> URL? {
        let venv = packageRoot.appendingPathComponent(".build-venv/bin/\(name)")
        if FileManager.default.isExecutableFile(atPath: venv.path) { return venv }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    /// Runs the tool and returns its exit status and standard output.
    static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil) throws -> (Int32, Data) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data)
    }
}
