/// One file `orchestrate generate` writes: where, relative to the output directory, and its exact bytes.
public struct GeneratedFile: Sendable, Equatable {
    public var path: String
    public var contents: String

    public init(path: String, contents: String) {
        self.path = path
        self.contents = contents
    }
}
