import ArgumentParser
import Foundation
import OrchestrateSupervisor

/// Where a running `orchestrate up` keeps its state: `.orchestrate/` beside the spec file.
struct StateOptions: ParsableArguments {
    @Option(name: [.customShort("f"), .long], help: "The spec file whose run to address.",
            completion: .file(extensions: ["yaml", "yml"]))
    var file = "services.yaml"

    var stateDirectory: String { Self.stateDirectory(of: file) }

    static func stateDirectory(of file: String) -> String {
        URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent().path + "/.orchestrate"
    }

    /// The running supervisor's state, or exit 1 saying none runs.
    func runningState() throws -> StateFile {
        guard let state = StateFile.read(stateDirectory + "/state.json"), ProcessInfoReader.isAlive(state.supervisorPID) else {
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

enum StatusFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show every replica of the running shop: address, state, readiness, restarts, uptime, PID.")

    @OptionGroup var options: StateOptions

    @Option(help: "table or json.")
    var format: StatusFormat = .table

    func run() throws {
        let replicas = try options.send(ControlRequest(command: .status)).replicas ?? []
        print(Self.render(replicas, format: format), terminator: "")
    }

    static func render(_ replicas: [ReplicaStatus], format: StatusFormat) -> String {
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return String(decoding: (try? encoder.encode(replicas)) ?? Data(), as: UTF8.self) + "\n"
        case .table:
            let header = ["SERVICE", "REPLICA", "ADDRESS", "STATE", "READY", "RESTARTS", "UPTIME", "PID", "DETAIL"]
            let rows = replicas.map { replica in
                [
                    replica.service, String(replica.replica),
                    replica.address + (replica.port.map { ":\($0)" } ?? ""), replica.state.rawValue,
                    replica.ready ? "yes" : "no", String(replica.restarts),
                    replica.uptimeSeconds.map(uptime) ?? "-", replica.pid.map(String.init) ?? "-", replica.detail,
                ]
            }
            let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
            return ([header] + rows).map { row in
                row.indices.map { column in
                    column == row.count - 1 ? row[column] : row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
                }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
            }.joined(separator: "\n") + "\n"
        }
    }

    static func uptime(_ seconds: Double) -> String {
        let whole = Int(seconds)
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m\(whole % 60)s" }
        return "\(whole / 3600)h\(whole / 60 % 60)m"
    }
}

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

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop a service's replicas (SIGTERM, then SIGKILL after its grace period).")

    @Argument(help: "The service.") var service: String
    @OptionGroup var options: StateOptions

    func run() throws {
        try options.act(.stop, on: service)
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start", abstract: "Start a service that `orchestrate stop` stopped.")

    @Argument(help: "The service.") var service: String
    @OptionGroup var options: StateOptions

    func run() throws {
        try options.act(.start, on: service)
    }
}

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
            POSIX.printError("orchestrate: the supervisor (PID \(state.supervisorPID)) is still stopping after \(timeout) s")
            throw ExitCode.failure
        }
        print("stopped")
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print a service's log (.orchestrate/logs/NAME.log); -f follows it.")

    @Argument(help: "The service, or `orchestrate` for nothing but the supervisor's own lines.") var service: String
    @Flag(name: [.customShort("f"), .long], help: "Keep printing lines as they are written (Ctrl-C ends).")
    var follow = false
    @Option(name: [.customShort("n"), .long], help: "Start with the last N lines (default: all).")
    var lines: Int?
    // -f is --follow here, as in `tail -f` and `docker logs -f`; the spec file is --file only.
    @Option(name: .long, help: "The spec file whose run to address.", completion: .file(extensions: ["yaml", "yml"]))
    var file = "services.yaml"

    func run() async throws {
        let directory = StateOptions.stateDirectory(of: file) + "/logs"
        let path = "\(directory)/\(service).log"
        guard let handle = FileHandle(forReadingAtPath: path) else {
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
                .filter { $0.hasSuffix(".log") }.map { String($0.dropLast(4)) }.sorted()
            POSIX.printError("orchestrate: no log for \(service) in \(directory)"
                + (known.isEmpty ? " (has orchestrate up run here?)" : "; logs: \(known.joined(separator: ", "))"))
            throw ExitCode.failure
        }
        defer { try? handle.close() }
        var text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        if let lines {
            text = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().suffix(lines)
                .map { $0 + "\n" }.joined()
        }
        FileHandle.standardOutput.write(Data(text.utf8))
        guard follow else { return }
        while !Task.isCancelled {
            let more = handle.readDataToEndOfFile()
            if more.isEmpty {
                try await Task.sleep(for: .milliseconds(200))
            } else {
                FileHandle.standardOutput.write(more)
            }
        }
    }
}
