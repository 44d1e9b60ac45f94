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

    /// Runs the `orchestrate` built beside this test bundle, in the package root, without colour, with `stdin`
    /// (empty when nil) as its standard input; waited for off the test's cooperative pool.
    static func orchestrate(
        _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], in directory: URL? = nil
    ) async throws -> Run {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("orchestrate")
        let executable = try #require(
            [beside, packageRoot.appendingPathComponent(".build/debug/orchestrate")].first {
                FileManager.default.isExecutableFile(atPath: $0.path)
            })
        let (status, out, err) = try await ExternalTool.runCapturingErrors(
            executable, arguments, in: directory ?? packageRoot, environment: environment,
            input: Data((stdin ?? "").utf8))
        return Run(status: status, stdout: String(decoding: out, as: UTF8.self), stderr: err)
    }
}

/// Runs `orchestrate` in the package root, or in `directory`.
func orchestrate(
    _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], in directory: URL? = nil
) async throws -> OrchestrateBinary.Run {
    try await OrchestrateBinary.orchestrate(arguments, stdin: stdin, environment: environment, in: directory)
}
