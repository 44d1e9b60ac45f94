import ArgumentParser
import Foundation
import OrchestrateSupervisor

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Start a service that `orchestrate stop` stopped.")

    @Argument(help: "The service.") var service: String
    @OptionGroup var options: StateOptions

    func run() throws {
        try options.act(.start, on: service)
    }
}
