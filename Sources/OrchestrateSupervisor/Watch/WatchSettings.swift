public import OrchestrateSpec

/// What `up --watch` needs from the command: how to read services.yaml again, and how to build.
public struct WatchSettings: Sendable {
    /// services.yaml (absolute): an edit of it is validated and applied.
    public var specPath: String
    /// Reads and validates services.yaml: the spec, or nil with the diagnostics to show (file:line:column).
    public var loadSpec: @Sendable () -> (spec: Spec?, diagnostics: String)
    /// The gateway's route table for a spec (what `.orchestrate/routes.json` holds).
    public var routeTable: @Sendable (Spec) -> String?
    /// `swift` (absolute), which builds the products; nil when `up` builds nothing (`--no-build`, or a project of
    /// commands only).
    public var swift: String?
    /// How long files must be quiet before a batch of changes is acted on (an editor's save, a checkout).
    public var quiet: Duration = .milliseconds(50)

    public init(
        specPath: String, swift: String?, loadSpec: @escaping @Sendable () -> (spec: Spec?, diagnostics: String),
        routeTable: @escaping @Sendable (Spec) -> String?
    ) {
        self.specPath = specPath
        self.swift = swift
        self.loadSpec = loadSpec
        self.routeTable = routeTable
    }
}
