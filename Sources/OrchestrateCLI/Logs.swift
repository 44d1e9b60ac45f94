import ArgumentParser
import Foundation
import OrchestrateSupervisor

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
            POSIX.printError(
                "orchestrate: no log for \(service) in \(directory)"
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
