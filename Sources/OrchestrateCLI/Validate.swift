import ArgumentParser
import OrchestrateSpec

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `orchestrate validate`: every problem of every file in one pass; exit 0 valid, 1 invalid, 2 usage or I/O.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check services.yaml files and report every problem at once.",
        discussion: """
            Prints each problem as FILE:LINE:COLUMN: SEVERITY[CODE]: PATH: MESSAGE, with the source line, a caret \
            and a hint. Exits 0 when every file is valid, 1 when any is invalid, 2 on a usage or I/O error. \
            Warnings fail validation only with --strict. Use - to read standard input.

            Examples:
              orchestrate validate
              orchestrate validate services.yaml --format json
              orchestrate validate --strict --format github services.yaml
            """
    )

    @Argument(help: "The spec files to check.", completion: .file(extensions: ["yaml", "yml"]))
    var files: [String] = ["services.yaml"]

    @Option(help: "How to print problems: text, json or github (workflow annotations).")
    var format: DiagnosticFormat = .text

    @Option(help: "Colour text output: auto (on a terminal, unless NO_COLOR is set), always or never.")
    var color: ColorMode = .auto

    @Flag(help: "Fail on warnings too.")
    var strict = false

    @Option(help: "The name to show for standard input (-), e.g. the path an editor is checking.")
    var stdinFilename = "<stdin>"

    func run() throws {
        var renderer = DiagnosticRenderer(
            format: format,
            useColor: color.isEnabled(forDescriptor: 1, environment: ProcessInfo.processInfo.environment))
        var invalid = false
        var unreadable = false
        for file in files {
            let name = file == "-" ? stdinFilename : file
            let source: SpecSource
            do {
                source = try SpecSource.read(file, displayName: name)
            } catch {
                unreadable = true
                POSIX.printError("orchestrate: \(error)")
                continue
            }
            let result = SpecLoader.load(source.bytes)
            renderer.add(
                file: name, source: source, diagnostics: result.diagnostics, serviceCount: result.spec?.services.count)
            if result.diagnostics.failsValidation(strict: strict) { invalid = true }
        }
        print(renderer.finish(), terminator: "")
        if unreadable { throw ExitCode.usage }
        if invalid { throw ExitCode(1) }
    }
}
