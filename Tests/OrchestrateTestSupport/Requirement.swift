public import Testing

extension Trait where Self == ConditionTrait {
    /// For a test that needs something from outside the package (a validator, a server, root): the test runs when
    /// it is there, and shows as skipped when it is not, so a missing tool never reads as a pass.
    ///
    /// Where the tools are required (`CI`, or `ORCHESTRATE_REQUIRE_TOOLS` as scripts/test sets it) the test always
    /// runs, and its own `#require` of the thing fails it with a message naming what is missing.
    ///
    /// - Parameters:
    ///   - what: What is needed, for the skip's comment.
    ///   - available: Whether it is there; evaluated when the test is about to run.
    public static func requires(_ what: String, _ available: @autoclosure @escaping @Sendable () -> Bool) -> Self {
        .enabled(
            if: ExternalTool.isRequired || available(),
            Comment(rawValue: "needs \(what), which is missing here; scripts/test installs it"))
    }
}
