import ArgumentParser
import Foundation
import OrchestrateSpec
import OrchestrateSupervisor

/// `orchestrate init`: a first services.yaml for a Swift package, one service per executable.
struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a first services.yaml for a Swift package: one service per executable.",
        discussion: """
            Reads the package (`swift package dump-package`, which needs no dependency resolved) and writes a \
            services.yaml that validates: one service per executable product or executable target, named from it \
            (UserService → user-service), each on its own port from --first-port with the default probes \
            (GET /health, GET /ready). Comments mark what a person must decide: which services call which \
            (dependsOn), which own a database, what a gateway routes. It never overwrites a file: an existing \
            services.yaml stops it (exit 1).

            Examples:
              orchestrate init
              orchestrate init --package-path ../shop --first-port 3001
            """
    )

    @Option(help: "The package's directory.", completion: .directory)
    var packagePath = "."

    @Option(name: [.customShort("f"), .long], help: "The spec to write, relative to the package's directory.")
    var file = "services.yaml"

    @Option(help: "The port of the first service; the others follow it.")
    var firstPort = 8080

    func run() throws {
        let target = file.hasPrefix("/") ? file : packagePath + "/" + file
        guard !FileManager.default.fileExists(atPath: target) else {
            POSIX.printError(
                "orchestrate: \(target) exists; init never overwrites a file (edit it, or remove it first)")
            throw ExitCode.failure
        }
        guard (1...65_000).contains(firstPort) else {
            POSIX.printError("orchestrate: --first-port must be from 1 to 65000, not \(firstPort)")
            throw ExitCode.validationFailure
        }
        let dumped = ForegroundCommand.run(
            ["swift", "package", "--package-path", packagePath, "dump-package"], capture: true)
        guard dumped.status == 0, let package = Self.package(fromJSON: dumped.output) else {
            POSIX.printError(
                "orchestrate: cannot read the package in \(packagePath) (swift package dump-package exited \(dumped.status)); init needs a Package.swift"
            )
            throw ExitCode.failure
        }
        guard !package.executables.isEmpty else {
            POSIX.printError(
                "orchestrate: \(package.name) has no executable product or target; a service is one (or a `command:`)")
            throw ExitCode.failure
        }
        let text = Self.spec(package: package, firstPort: firstPort)
        let loaded = SpecLoader.load(Array(text.utf8))
        guard loaded.spec != nil, !loaded.hasErrors else {
            POSIX.printError("orchestrate: the spec init made does not validate, which is a bug in orchestrate:")
            for diagnostic in loaded.diagnostics { POSIX.printError("  \(diagnostic.message)") }
            throw ExitCode.failure
        }
        // Created exclusively: a file (or a symbolic link) that appeared meanwhile is left alone.
        guard POSIX.writeFile(target, Array(text.utf8), exclusive: true) else {
            POSIX.printError("orchestrate: cannot create \(target): \(POSIX.lastError()); nothing was written")
            throw ExitCode.failure
        }
        print("wrote \(target): \(package.executables.count) services; check it with `orchestrate validate \(target)`")
    }

    struct Package {
        var name: String
        var executables: [String]
    }

    /// The package's name and its executables (products, then executable targets no product names), in order.
    static func package(fromJSON text: String) -> Package? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let name = object["name"] as? String
        else { return nil }
        var executables: [String] = []
        var covered: Set<String> = []
        for product in object["products"] as? [[String: Any]] ?? [] {
            guard let productName = product["name"] as? String,
                let type = product["type"] as? [String: Any], type.keys.contains("executable")
            else { continue }
            executables.append(productName)
            covered.formUnion(product["targets"] as? [String] ?? [])
        }
        for target in object["targets"] as? [[String: Any]] ?? [] {
            guard let targetName = target["name"] as? String, target["type"] as? String == "executable",
                !covered.contains(targetName), !executables.contains(targetName)
            else { continue }
            executables.append(targetName)
        }
        return Package(name: name, executables: executables)
    }

    /// `UserService` → `user-service`; `APIGateway` → `api-gateway`; anything else becomes a DNS label.
    static func serviceName(_ product: String) -> String {
        var words: [String] = []
        var current = ""
        let characters = Array(product)
        for (index, character) in characters.enumerated() {
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            let startsWord =
                character.isUppercase && !current.isEmpty
                && (current.last?.isLowercase == true || current.last?.isNumber == true || next?.isLowercase == true)
            if !character.isLetter && !character.isNumber {
                if !current.isEmpty { words.append(current) }
                current = ""
                continue
            }
            if startsWord {
                words.append(current)
                current = ""
            }
            current.append(character)
        }
        if !current.isEmpty { words.append(current) }
        let label = words.joined(separator: "-").lowercased().filter {
            $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-")
        }
        var trimmed = Substring(label.drop { !$0.isLetter }.prefix(63))
        while trimmed.last == "-" { trimmed.removeLast() }
        return trimmed.isEmpty ? "service" : String(trimmed)
    }

    static func spec(package: Package, firstPort: Int) -> String {
        var used: Set<String> = []
        var services = ""
        for (index, product) in package.executables.enumerated() {
            var name = serviceName(product)
            var suffix = 2
            while used.contains(name) {
                name = "\(serviceName(product))-\(suffix)"
                suffix += 1
            }
            used.insert(name)
            services += """
                  \(name):
                    product: \(product)
                    port: \(firstPort + index)
                    # dependsOn: [another-service]   # the services it calls; each gives it <DEP>_URL
                    # database: { name: \(name) }   # when it owns data
                    # replicas: 2

                """
        }
        let projectName = serviceName(package.name)
        return """
            # services.yaml for \(package.name), written by `orchestrate init` from Package.swift.
            # Check it with `orchestrate validate`; run it with `orchestrate up`; see docs/getting-started.md.
            #
            # Each service is an executable of the package. It must bind HOST:PORT and answer GET /health (alive)
            # and GET /ready (can serve); write `probes:` if yours differ. Decide, then delete the comments:
            # - dependsOn: which services each one calls;
            # - database: which services own data (one database each, never shared);
            # - public: true, or routes and a gateway, for what clients outside the system reach.
            version: 1
            name: \(projectName)
            services:
            \(services)
            """
    }
}
