import Foundation
import OrchestrateTestSupport
import Testing

/// The pre-commit hook as another repository uses it, through the real `pre-commit try-repo`: with an orchestrate
/// on PATH it validates the repository's services.yaml, passing a valid one and failing a wrong one with the
/// diagnostic's file:line:column.
@Suite(.timeLimit(.minutes(10)))
struct PreCommitTests {
    @Test(.requires("pre-commit and git", ExternalTool.find("pre-commit") != nil && ExternalTool.find("git") != nil))
    func theHookValidatesAnotherRepositorysSpec() async throws {
        let preCommit = try #require(ExternalTool.find("pre-commit"), "scripts/test installs pre-commit")
        let git = try #require(ExternalTool.find("git"))
        let repository = try ExternalTool.temporaryDirectory("pre-commit")
        defer { try? FileManager.default.removeItem(at: repository) }
        let home = repository.appendingPathComponent(".pre-commit-home")
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let bin =
            FileManager.default.isExecutableFile(atPath: beside.appendingPathComponent("orchestrate").path)
            ? beside : OrchestrateBinary.packageRoot.appendingPathComponent(".build/debug")
        let environment = [
            "PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
            "PRE_COMMIT_HOME": home.path, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
        ]
        func run(_ tool: URL, _ arguments: [String]) async throws -> (Int32, String) {
            let (status, output, errors) = try await ExternalTool.runCapturingErrors(
                tool, arguments, in: repository, environment: environment)
            return (status, String(decoding: output, as: UTF8.self) + errors)
        }
        #expect(try await run(git, ["init", "-q"]).0 == 0)
        let spec = repository.appendingPathComponent("services.yaml")
        try FileManager.default.copyItem(at: ExampleProject.directory.appendingPathComponent("services.yaml"), to: spec)
        #expect(try await run(git, ["add", "services.yaml"]).0 == 0)
        let tryRepo = ["try-repo", OrchestrateBinary.packageRoot.path, "orchestrate-validate", "--all-files"]
        let (passed, passOutput) = try await run(preCommit, tryRepo)
        #expect(passed == 0, "\(passOutput)")
        #expect(passOutput.contains("orchestrate validate...") && passOutput.contains("Passed"), "\(passOutput)")

        try "version: 1\nname: x\nservices:\n  a: { product: A, dependsOn: [b] }\n".write(
            to: spec, atomically: true, encoding: .utf8)
        #expect(try await run(git, ["add", "services.yaml"]).0 == 0)
        let (failed, failOutput) = try await run(preCommit, tryRepo)
        #expect(failed == 1, "\(failOutput)")
        #expect(failOutput.contains("services.yaml:4:32: error[unknown-dependency]"), "\(failOutput)")
    }
}
