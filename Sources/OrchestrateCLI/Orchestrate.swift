public import ArgumentParser

/// The `orchestrate` command: one `services.yaml` checked, turned into deployment files, and run.
public struct Orchestrate: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "orchestrate",
        abstract: "Describe a Swift microservice system in one services.yaml; check it, generate from it, run it.",
        version: "0.1.0",
        subcommands: [Validate.self]
    )

    public init() {}
}

extension Orchestrate {
    /// Parses the process arguments, runs the command and exits; the executable's whole `main`.
    public static func runFromCommandLine() async {
        await main()
    }
}
