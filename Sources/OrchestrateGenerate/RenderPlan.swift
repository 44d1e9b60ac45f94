import Dispatch

/// One target's output as independent pieces of work and a last step that puts their results together.
///
/// `Generator` runs the jobs of every target in one parallel map, so no file waits for another target's files
/// and the big single files (compose.yaml, nginx.conf, the route table, the HTTPRoutes) render beside the
/// per-service files instead of after them; then each plan's `assemble` runs, also in parallel.
struct RenderPlan: Sendable {
    typealias Job = @Sendable () -> any Sendable

    var jobs: [Job]
    /// Turns the jobs' results, in the jobs' order, into the target's files.
    var assemble: @Sendable ([any Sendable]) -> [GeneratedFile]

    /// A plan of whole files, one job each.
    static func files(_ files: [(path: String, render: @Sendable () -> String)]) -> RenderPlan {
        let paths = files.map(\.path)
        return RenderPlan(jobs: files.map { file in { file.render() } }) { results in
            zip(paths, results).map { GeneratedFile(path: $0, contents: $1 as! String) }
        }
    }

    /// Runs the plans' jobs on every core, then their assembly; the files come out in the plans' order.
    static func run(_ plans: [RenderPlan]) -> [GeneratedFile] {
        let results = ParallelRendering.map(plans.flatMap(\.jobs)) { $0() }
        var start = 0
        let parts: [(plan: RenderPlan, results: [any Sendable])] = plans.map { plan in
            defer { start += plan.jobs.count }
            return (plan, Array(results[start..<(start + plan.jobs.count)]))
        }
        return ParallelRendering.map(parts) { $0.plan.assemble($0.results) }.flatMap { $0 }
    }
}

/// A value computed by the first job that asks for it; the others wait for it and share it.
final class SharedResult<Value: Sendable>: @unchecked Sendable {
    private let lock = DispatchSemaphore(value: 1)
    private var value: Value?
    private let compute: @Sendable () -> Value

    init(_ compute: @escaping @Sendable () -> Value) {
        self.compute = compute
    }

    func get() -> Value {
        lock.wait()
        defer { lock.signal() }
        if let value { return value }
        let computed = compute()
        value = computed
        return computed
    }
}
