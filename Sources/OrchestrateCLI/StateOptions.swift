import ArgumentParser
import Foundation
import OrchestrateSupervisor

/// Where a running `orchestrate up` keeps its state: `.orchestrate/` beside the spec file.
struct StateOptions: ParsableArguments {
    @Option(
        name: [.customShort("f"), .long], help: "The spec file whose run to address.",
        completion: .file(extensions: ["yaml", "yml"]))
    var file = "services.yaml"

    var stateDirectory: String { Self.stateDirectory(of: file) }

    static func stateDirectory(of file: String) -> String {
        URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent().path + "/.orchestrate"
    }

    /// The running supervisor's state, or exit 1 saying none runs.
    func runningState() throws -> StateFile {
        guard let state = StateFile.read(stateDirectory + "/state.json"), ProcessInfoReader.isAlive(state.supervisorPID)
        else {
            POSIX.printError("orchestrate: no orchestrate up is running for \(file) (start one with `orchestrate up`)")
            throw ExitCode.failure
        }
        return state
    }

    /// restart, stop or start NAME, then the service's rows as `status` prints them.
    func act(_ command: ControlRequest.Command, on service: String) throws {
        let replicas = try send(ControlRequest(command: command, service: service)).replicas ?? []
        print(Status.render(replicas, format: .table), terminator: "")
    }

    func send(_ request: ControlRequest) throws -> ControlResponse {
        let state = try runningState()
        let response: ControlResponse
        do {
            response = try ControlClient.request(request, at: state.controlSocket)
        } catch {
            POSIX.printError("orchestrate: \(error)")
            throw ExitCode.failure
        }
        guard response.ok else {
            POSIX.printError("orchestrate: \(response.error ?? "the supervisor refused")")
            throw ExitCode.failure
        }
        return response
    }
}
