/// Successes and failures over the last `window`, in time slices, so old calls stop counting without storing
/// every call.
struct RollingWindow: Sendable {
    private struct Bucket: Sendable {
        var slice = Int.min
        var successes = 0
        var failures = 0
    }

    private let sliceLength: Duration
    private var buckets: [Bucket]

    init(window: Duration, buckets: Int) {
        sliceLength = window / buckets
        self.buckets = Array(repeating: Bucket(), count: buckets)
    }

    private func slice(at time: Duration) -> Int {
        Int(time / sliceLength)
    }

    mutating func record(success: Bool, at time: Duration) {
        let current = slice(at: time)
        let index = ((current % buckets.count) + buckets.count) % buckets.count
        if buckets[index].slice != current { buckets[index] = Bucket(slice: current) }
        if success { buckets[index].successes += 1 } else { buckets[index].failures += 1 }
    }

    /// Calls and failures in the window that ends at `time`.
    func totals(at time: Duration) -> (calls: Int, failures: Int) {
        let current = slice(at: time)
        var calls = 0
        var failures = 0
        for bucket in buckets where bucket.slice > current - buckets.count && bucket.slice <= current {
            calls += bucket.successes + bucket.failures
            failures += bucket.failures
        }
        return (calls, failures)
    }

    mutating func reset() {
        buckets = Array(repeating: Bucket(), count: buckets.count)
    }
}
