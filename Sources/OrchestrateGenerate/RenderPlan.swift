import Dispatch

/// One target's output as independent renderings and a last step that puts their texts together.
///
/// `Generator` runs the jobs of every target in one parallel map, so no file waits for another target's files
/// and the big single files (compose.yaml, nginx.conf, the HTTPRoutes) render beside the per-service files
/// instead of after them; then each plan's `assemble` runs, also in parallel. Every job renders text, so the map
/// is typed end to end.
struct RenderPlan: Sendable {
    typealias Job = @Sendable () -> String

    var jobs: [Job]
    /// Turns the jobs' texts, in the jobs' order, into the target's files.
    var assemble: @Sendable ([String]) -> [GeneratedFile]

    /// A plan of whole files, one job each.
    static func files(_ files: [(path: String, render: Job)]) -> RenderPlan {
        let paths = files.map(\.path)
        return RenderPlan(jobs: files.map(\.render)) { texts in
            zip(paths, texts).map { GeneratedFile(path: $0, contents: $1) }
        }
    }

    /// Runs the plans' jobs on every core, then their assembly; the files come out in the plans' order.
    static func run(_ plans: [RenderPlan]) -> [GeneratedFile] {
        let texts = ParallelRendering.map(plans.flatMap(\.jobs)) { $0() }
        var start = 0
        let parts: [(plan: RenderPlan, texts: [String])] = plans.map { plan in
            defer { start += plan.jobs.count }
            return (plan, Array(texts[start..<(start + plan.jobs.count)]))
        }
        return ParallelRendering.map(parts) { $0.plan.assemble($0.texts) }.flatMap { $0 }
    }
}
