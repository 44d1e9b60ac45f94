import Foundation
import OrchestrateTestSupport
import Testing

/// generate in a checkout a stranger prepared: links and odd files in the output directory are refused before
/// anything is read or written, with --check and --force too.
@Suite(.timeLimit(.minutes(5)))
struct HostileOutputTests {
    private func directories() throws -> (output: URL, outside: URL) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)")
        let output = base.appendingPathComponent("out")
        let outside = base.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        return (output, outside)
    }

    /// A committed `compose.yaml` that links to a private key: --check must not print the key into a CI log, and a
    /// write must not replace it.
    @Test func aLinkedOutputFileIsNeitherReadNorWritten() async throws {
        let (output, outside) = try directories()
        defer { try? FileManager.default.removeItem(at: output.deletingLastPathComponent()) }
        let key = outside.appendingPathComponent("id_ed25519")
        let secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-for-ci-logs\n"
        try Data(secret.utf8).write(to: key)
        try FileManager.default.createSymbolicLink(
            atPath: output.appendingPathComponent("compose.yaml").path, withDestinationPath: key.path)
        for arguments in [["--check"], [], ["--force"]] {
            let run = try await orchestrate(["generate", "compose", "-o", output.path] + arguments)
            #expect(run.status == 2, "\(arguments)")
            #expect(!run.stdout.contains("not-for-ci-logs") && !run.stderr.contains("not-for-ci-logs"))
            #expect(run.stderr.contains("compose.yaml is a symbolic link"), "\(run.stderr)")
            #expect(try String(contentsOf: key, encoding: .utf8) == secret)
        }
        #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent("Dockerfile").path))
    }

    /// A directory on the way (`k8s`) that links elsewhere, and a FIFO where a file goes (reading it would block).
    @Test func aLinkedDirectoryOrAFIFOIsRefused() async throws {
        let (output, outside) = try directories()
        defer { try? FileManager.default.removeItem(at: output.deletingLastPathComponent()) }
        try FileManager.default.createSymbolicLink(
            atPath: output.appendingPathComponent("k8s").path, withDestinationPath: outside.path)
        let linked = try await orchestrate(["generate", "kubernetes", "-o", output.path, "--force"])
        #expect(linked.status == 2)
        #expect(linked.stderr.contains("k8s is a symbolic link"), "\(linked.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path).isEmpty)
        try FileManager.default.removeItem(at: output.appendingPathComponent("k8s"))
        #expect(mkfifo(output.appendingPathComponent("Dockerfile").path, 0o644) == 0)
        let fifo = try await orchestrate(["generate", "compose", "--check", "-o", output.path])
        #expect(fifo.status == 2)
        #expect(fifo.stderr.contains("Dockerfile is a FIFO"), "\(fifo.stderr)")
    }

    /// A link committed at the name the temporary file used to have (`NAME.orchestrate-tmp`) redirects nothing:
    /// temporary files have unpredictable names and are created exclusively.
    @Test func aPlantedTemporaryLinkRedirectsNothing() async throws {
        let (output, outside) = try directories()
        defer { try? FileManager.default.removeItem(at: output.deletingLastPathComponent()) }
        #expect(try await orchestrate(["generate", "compose", "-o", output.path]).status == 0)
        let victim = outside.appendingPathComponent("authorized_keys")
        try Data("keep me\n".utf8).write(to: victim)
        try FileManager.default.createSymbolicLink(
            atPath: output.appendingPathComponent("compose.yaml.orchestrate-tmp").path, withDestinationPath: victim.path
        )
        // Change compose.yaml so it is replaced (through a temporary file), not left alone.
        let compose = output.appendingPathComponent("compose.yaml")
        try Data((try String(contentsOf: compose, encoding: .utf8) + "# drift\n").utf8).write(to: compose)
        let run = try await orchestrate(["generate", "compose", "-o", output.path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try String(contentsOf: victim, encoding: .utf8) == "keep me\n")
        #expect(!(try String(contentsOf: compose, encoding: .utf8)).contains("# drift"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: output.path).filter {
            $0.contains(".orchestrate-tmp-")
        }
        #expect(leftovers.isEmpty)
    }
}
