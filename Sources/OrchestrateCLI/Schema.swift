import ArgumentParser

/// `orchestrate schema`: the JSON Schema of services.yaml, for an editor in any repository.
struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema of services.yaml.",
        discussion: """
            The schema this orchestrate validates against (draft-07), so an editor can check services.yaml in any \
            repository. `orchestrate validate` checks more than the schema can say (names that must exist, cycles, \
            ports, routes).

            Examples:
              orchestrate schema > .orchestrate-schema.json
                (then, first line of services.yaml: # yaml-language-server: $schema=.orchestrate-schema.json)
            """
    )

    func run() {
        print(BuiltinSchema.json, terminator: "")
    }
}
