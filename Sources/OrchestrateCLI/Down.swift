import ArgumentParser
import Foundation
import OrchestrateSupervisor

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop the running orchestrate up and every service, in reverse dependency order.")

    @OptionGroup var options: StateOptions

    @Option(help: "How long to wait for everything to stop, in seconds.")
    var timeout = 120

    func run() throws {
        let state = try options.runningState()
        _ = try options.send(ControlRequest(command: .down))
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ProcessInfoReader.isAlive(state.supervisorPID), ContinuousClock.now < deadline {
            usleep(50_000)
        }
        guard !ProcessInfoReader.isAlive(state.supervisorPID) else {
            POSIX.printError(
                "orchestrate: the supervisor (PID \(state.supervisorPID)) is still stopping after \(timeout) s")
            throw ExitCode.failure
        }
        print("stopped")
    }
}
