import ArgumentParser
import Foundation
import OrchestrateSupervisor

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Restart a service's replicas one at a time, each ready before the next (also revives a failed one).")

    @Argument(help: "The service.") var service: String
    @OptionGroup var options: StateOptions

    func run() throws {
        try options.act(.restart, on: service)
    }
}
