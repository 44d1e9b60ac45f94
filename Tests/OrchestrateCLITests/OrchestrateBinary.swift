import Foundation
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

    /// Runs the `orchestrate` built beside this test bundle, in the package root, without colour.
    static func orchestrate(
        _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], in directory: URL? = nil
    ) throws -> Run {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("orchestrate")
        let candidates = [binary, OrchestrateBinary.packageRoot.appendingPathComponent(".build/debug/orchestrate")]
        let executable = try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) })
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
) throws -> OrchestrateBinary.Run {
    try OrchestrateBinary.orchestrate(arguments, stdin: stdin, environment: environment, in: directory)
}
