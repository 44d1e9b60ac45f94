/// Waits for a condition, polling every `interval` for at most `timeout`.
///
/// The bound is generous on purpose: it only ends a wait for something that should happen, and when every suite
/// starts at once on two cores the whole test process can be starved for seconds (CI saw trivial suites take
/// 5.5 s, and three supervisor tests ran out of a 5 s bound while waiting for a replica to start).
public func eventually(
    _ timeout: Duration = .seconds(30), every interval: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Runs `body` with a resource and always runs `close` afterwards, also when `body` throws (a failed `#require`):
/// a database pool or connection that is never shut down trips an assertion that takes the whole test process down.
public func closing<Resource, Result>(
    _ resource: Resource, close: (Resource) async -> Void, _ body: (Resource) async throws -> Result
) async throws -> Result {
    do {
        let result = try await body(resource)
        await close(resource)
        return result
    } catch {
        await close(resource)
        throw error
    }
}
