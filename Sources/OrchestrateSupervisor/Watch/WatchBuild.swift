import Foundation
import Synchronization

/// One `swift build` of the products a batch of changes affects (one at a time: SwiftPM locks `.build`), its
/// progress in the log, and on failure the compiler's first errors with file:line:column.
struct WatchBuild: Sendable {
    struct Outcome: Sendable {
        var succeeded: Bool
        /// The compiler's errors, first first, each once: `Sources/Catalog/Catalog.swift:12:5: error: …`.
        var errors: [String]
        /// Why it could not run or what it exited with, when it failed.
        var failure: String?
    }

    /// The `swift` program (absolute).
    var swift: String
    var packageDirectory: String
    var environment: [String: String]
    var launcher: any ProcessLauncher

    /// The arguments for the products: `--product` for one (`swift build` takes only one), every product otherwise
    /// (what is unchanged is not rebuilt, so that costs only the planning).
    func arguments(products: Set<String>, allProducts: Int) -> [String] {
        var arguments = ["build", "--package-path", packageDirectory]
        if products.count == 1, allProducts > 1, let product = products.first { arguments += ["--product", product] }
        return arguments
    }

    /// Runs the build; `progress` gets the lines worth showing (what compiles and links, errors, the summary).
    func run(products: Set<String>, allProducts: Int, progress: @escaping @Sendable (String) -> Void) async
        -> Outcome
    {
        let errors = ErrorLines(directory: packageDirectory)
        let request = LaunchRequest(
            executable: swift, arguments: arguments(products: products, allProducts: allProducts),
            environment: environment, workingDirectory: packageDirectory)
        let process: any LaunchedProcess
        do {
            process = try await launcher.launch(request) { line in
                if let error = errors.take(line) {
                    progress(error)
                } else if Self.isProgress(line) {
                    progress(line)
                }
            }
        } catch {
            return Outcome(succeeded: false, errors: [], failure: "cannot run \(swift): \(error)")
        }
        let status = await process.exitStatus()
        let succeeded = status.code == 0
        return Outcome(succeeded: succeeded, errors: errors.all, failure: succeeded ? nil : "swift build: \(status)")
    }

    static func isProgress(_ line: String) -> Bool {
        line.hasPrefix("Build ") || line.hasPrefix("error:")
            || (line.hasPrefix("[") && (line.contains("] Compiling ") || line.contains("] Linking ")))
    }

    /// The compiler's `FILE:LINE:COLUMN: error: …` lines, each once (swift-frontend repeats them), paths made
    /// relative to the package.
    final class ErrorLines: Sendable {
        private let directory: String
        private let lines = Mutex<[String]>([])

        init(directory: String) { self.directory = directory }

        var all: [String] { lines.withLock { $0 } }

        /// Keeps the line when it is an error; returns it (its path relative) when it is one not seen before.
        func take(_ line: String) -> String? {
            guard line.contains(": error: ") else { return nil }
            var shown = line
            if shown.hasPrefix(directory + "/") { shown.removeFirst(directory.count + 1) }
            return lines.withLock { lines in
                guard !lines.contains(shown) else { return nil }
                lines.append(shown)
                return shown
            }
        }
    }
}
