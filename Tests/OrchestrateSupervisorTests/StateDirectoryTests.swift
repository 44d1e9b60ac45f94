import Foundation
import OrchestrateSupervisor
import OrchestrateTestSupport
import Testing

extension UpEndToEndTests {
    /// A checkout whose `.orchestrate` links elsewhere (or whose secret does): `up` and `token` stop before writing
    /// or reading through it, and what it points at is untouched.
    @Test func aLinkedStateDirectoryOrSecretIsRefused() async throws {
        let directory = try ExternalTool.temporaryDirectory("linked-state")
        defer { try? FileManager.default.removeItem(at: directory) }
        let project = directory.appendingPathComponent("project")
        let elsewhere = directory.appendingPathComponent("elsewhere")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
        let spec = try shopSpec(in: project)
        try FileManager.default.createSymbolicLink(
            atPath: project.appendingPathComponent(".orchestrate").path, withDestinationPath: elsewhere.path)
        let up = try ChildProcess(
            orchestrate,
            ["up", "-f", spec.path, "--no-build", "--bin-path", productsDirectory.path, "--color", "never"],
            environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path],
            logPath: directory.appendingPathComponent("up.log").path)
        #expect(await up.wait(timeout: .seconds(60)) != 0)
        #expect(up.log.contains(".orchestrate is a symbolic link or not a directory"), "\(up.log)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere.path).isEmpty)

        // A real .orchestrate whose secret links to a private file: `token` will not sign with it.
        try FileManager.default.removeItem(at: project.appendingPathComponent(".orchestrate"))
        let secrets = project.appendingPathComponent(".orchestrate/secrets")
        try FileManager.default.createDirectory(at: secrets, withIntermediateDirectories: true)
        let key = elsewhere.appendingPathComponent("id_ed25519")
        try Data("private".utf8).write(to: key)
        try FileManager.default.createSymbolicLink(
            atPath: secrets.appendingPathComponent("jwt-secret").path, withDestinationPath: key.path)
        let token = try ChildProcess(
            orchestrate, ["token", "-f", spec.path], environment: ["PATH": "/usr/bin:/bin"],
            logPath: directory.appendingPathComponent("token.log").path)
        #expect(await token.wait(timeout: .seconds(30)) != 0)
        #expect(token.log.contains("jwt-secret is a symbolic link"), "\(token.log)")
    }
}
