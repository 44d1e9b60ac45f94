public import ArgumentParser
import OrchestrateContract

/// The `orchestrate` command: one `services.yaml` checked, turned into deployment files, and run.
public struct Orchestrate: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "orchestrate",
        abstract: "Describe a Swift microservice system in one services.yaml; check it, generate from it, run it.",
        version: OrchestrateVersion.current,
        subcommands: [
            Validate.self, Generate.self, Up.self, Status.self, Logs.self, Restart.self, Stop.self, Start.self,
            Init.self, Down.self, Resolve.self, Token.self, Schema.self,
        ]
    )

    public init() {}
}

extension Orchestrate {
    /// Parses the process arguments, runs the command and exits; the executable's whole `main`.
    ///
    /// Usage errors exit with 2, as the commands document (argument-parser's own default is 64).
    ///
    /// On the main actor, so a synchronous command (`validate`, `generate`) runs on the main thread: there glibc's
    /// malloc grows its main heap with a few `brk`s, where on a pool thread it grew a secondary arena with an
    /// `mprotect` per step (1,300 of them for a 1,000-service spec). Async commands leave it at their first `await`.
    @MainActor
    public static func runFromCommandLine() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                POSIX.printError(fullMessage(for: error))
                POSIX.terminate(ExitCode.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}

extension ExitCode {
    /// A usage or I/O error: the command could not do its work at all.
    static let usage = ExitCode(2)
}
