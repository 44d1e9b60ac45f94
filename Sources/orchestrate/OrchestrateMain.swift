import OrchestrateCLI

@main
struct OrchestrateMain {
    static func main() async {
        await Orchestrate.runFromCommandLine()
    }
}
