import ArgumentParser
import Foundation
import OrchestrateSupervisor

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop a service's replicas (SIGTERM, then SIGKILL after its grace period).")

    @Argument(help: "The service.") var service: String
    @OptionGroup var options: StateOptions

    func run() throws {
        try options.act(.stop, on: service)
    }
}
