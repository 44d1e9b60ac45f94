import Foundation

/// Runs blocking work (a child process waited for, a pipe read to its end) on a thread of its own and awaits it.
///
/// Swift Testing runs tests on the cooperative pool, which has one thread per core: two on a two-core machine.
/// Two tests blocked in `waitUntilExit` there stall every other test, and a test that waits for something with a
/// deadline (the supervisor's) then fails for no fault of its own.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = "test-blocking"
        thread.start()
    }
}
