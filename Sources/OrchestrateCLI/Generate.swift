import ArgumentParser
import OrchestrateGenerate
import OrchestrateSpec

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `orchestrate generate`: docker-compose, Kubernetes and gateway files from the spec, or a drift check.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write docker-compose, Kubernetes and gateway files from services.yaml.",
        discussion: """
            Lists every file it writes. An invalid spec gets the diagnostics of `orchestrate validate` and \
            nothing is written. With --check nothing is written either: a unified diff shows what would change, \
            and the exit status is 1 when anything would (for CI). Output is deterministic.

            Examples:
              orchestrate generate
              orchestrate generate kubernetes -o deploy
              orchestrate generate all --check
              orchestrate generate compose --templates my-templates
            """
    )

    @Argument(help: "What to generate: compose, kubernetes, gateway or all.")
    var target: GenerateTarget = .all

    @Option(name: [.customShort("f"), .long], help: "The spec file.", completion: .file(extensions: ["yaml", "yml"]))
    var file = "services.yaml"

    @Option(name: [.customShort("o"), .long], help: "The directory to write into.", completion: .directory)
    var output = "."

    @Flag(help: "Write nothing; print a diff of what would change and exit 1 if anything would.")
    var check = false

    @Option(help: "A directory of NAME.mustache files, each replacing the built-in template of that name.")
    var templates: String?

    @Option(help: "How to print spec problems: text, json or github.")
    var format: DiagnosticFormat = .text

    @Option(help: "Colour text output: auto, always or never.")
    var color: ColorMode = .auto

    func run() throws {
        let spec = try LoadSpec.load(file, format: format, color: color, failure: "nothing was generated")
        let templateSet: TemplateSet
        do {
            templateSet = try TemplateSet(overrides: templates.map(OutputDirectory.readTemplates) ?? [:])
        } catch {
            POSIX.printError("orchestrate: \(error)")
            throw ExitCode.usage
        }
        let files = Generator(templates: templateSet).generate(spec, target: target.generatorTarget)
        let directory = OutputDirectory(path: output)
        if check {
            let drift = files.compactMap { directory.diff(for: $0) }
            print(drift.joined(), terminator: "")
            if !drift.isEmpty {
                POSIX.printError(
                    "orchestrate: \(drift.count) of \(files.count) files differ from \(file); run orchestrate generate \(target.rawValue)"
                )
                throw ExitCode.failure
            }
            print("\(files.count) files match \(file)")
            return
        }
        for generated in files {
            do {
                let changed = try directory.write(generated)
                print("\(changed ? "wrote    " : "unchanged") \(directory.display(generated.path))")
            } catch {
                POSIX.printError("orchestrate: \(error)")
                throw ExitCode.usage
            }
        }
    }
}

/// The targets as command-line words.
enum GenerateTarget: String, ExpressibleByArgument, CaseIterable {
    case compose, kubernetes, gateway, all

    var generatorTarget: Generator.Target { Generator.Target(rawValue: rawValue) ?? .all }
}
