import Dispatch

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
