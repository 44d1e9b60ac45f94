import ArgumentParser
import Foundation
import OrchestrateSupervisor

enum StatusFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show every replica `orchestrate up` runs: address, state, readiness, restarts, uptime, PID.")

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
                    column == row.count - 1
                        ? row[column] : row[column].padding(toLength: widths[column], withPad: " ", startingAt: 0)
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
