import Foundation
import OrchestrateTestSupport
import Testing

/// The `orchestrate` built beside this test bundle, run as a user runs it.
enum OrchestrateBinary {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the `orchestrate` built beside this test bundle, in the package root, without colour; it is waited for
    /// on a thread of its own, off the test's cooperative pool.
    static func orchestrate(
        _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], in directory: URL? = nil
    ) async throws -> Run {
        let executable = try #require(
            [binary, packageRoot.appendingPathComponent(".build/debug/orchestrate")].first {
                FileManager.default.isExecutableFile(atPath: $0.path)
            })
        return try await offThePool { try run(executable, arguments, stdin: stdin, environment: environment, in: directory) }
    }

    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("orchestrate")
    }

    private static func run(
        _ executable: URL, _ arguments: [String], stdin: String?, environment: [String: String], in directory: URL?
    ) throws -> Run {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory ?? OrchestrateBinary.packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let errors = Pipe()
        let input = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = input
        try process.run()
        input.fileHandleForWriting.write(Data((stdin ?? "").utf8))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self))
    }
}

/// Runs `orchestrate` in the package root, or in `directory`.
func orchestrate(
    _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], in directory: URL? = nil
) async throws -> OrchestrateBinary.Run {
    try await OrchestrateBinary.orchestrate(arguments, stdin: stdin, environment: environment, in: directory)
}
