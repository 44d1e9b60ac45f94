import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import OrchestrateSupervisor
import OrchestrateTestSupport
import Synchronization
import Testing

/// The forward at a service's address while a replica leaves rotation and another takes its place, as `up --watch`
/// swaps them: real Hummingbird replicas on 127.0.0.2 and 127.0.0.3, real clients.
@Suite(.timeLimit(.minutes(2))) struct ServiceForwardTests {
    /// A kept-alive connection that was quiet when its replica left rotation stays open, and its next request is
    /// answered by the replica now ready. (Closing it instead races the request a client's pool sends on it.)
    @Test func aQuietKeptAliveConnectionMovesToTheReadyReplica() async throws {
        try await withReplicas { directory, forwardPort, _ in
            try await withRawHTTP(port: forwardPort) { connection in
                #expect(try await connection.ask("GET /who HTTP/1.1\r\nHost: web\r\n\r\n").body == "old")
                directory.setReady(true, service: "web", address: "127.0.0.3")
                directory.setReady(false, service: "web", address: "127.0.0.2")
                // Bounded: 50 × 100 ms. The old replica is let go of at once: nothing was underway.
                for _ in 0..<50 where directory.connections(to: "127.0.0.2") > 0 {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(directory.connections(to: "127.0.0.2") == 0)
                // Quiet for longer than the forward's idle limit, and still open.
                try await Task.sleep(for: .milliseconds(1_500))
                #expect(try await connection.ask("GET /who HTTP/1.1\r\nHost: web\r\n\r\n").body == "new")
                #expect(try await connection.ask("HEAD /who HTTP/1.1\r\nHost: web\r\n\r\n").status == 204)
                #expect(
                    try await connection.ask("POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello").body
                        == "new:hello")
                #expect(directory.connections(to: "127.0.0.3") == 1)
            }
        }
    }

    /// A connection moved off its replica that then says nothing is closed after `releasedCloseAfter`, as the
    /// replica's own idle limit would have closed it: the forward holds nothing open for ever.
    @Test func aReleasedConnectionThatSaysNothingIsClosedInTheEnd() async throws {
        try await withReplicas(releasedCloseAfter: .milliseconds(500)) { directory, forwardPort, _ in
            try await withRawHTTP(port: forwardPort) { connection in
                let answer = try await connection.ask("GET /who HTTP/1.1\r\nHost: web\r\n\r\n")
                #expect(answer.body == "old")
                directory.setReady(true, service: "web", address: "127.0.0.3")
                directory.setReady(false, service: "web", address: "127.0.0.2")
                // The read ends when the forward closes it (about 0.5 s); the suite's time limit bounds it.
                await #expect(throws: RawHTTP.ClosedEarly.self) { _ = try await connection.received(count: 1) }
            }
        }
    }

    /// A request underway when its replica leaves rotation is answered by that replica, however long it is quiet.
    @Test func aRequestUnderwayIsLeftToFinish() async throws {
        try await withReplicas { directory, forwardPort, old in
            try await withRawHTTP(port: forwardPort) { connection in
                try await connection.send("GET /slow HTTP/1.1\r\nHost: web\r\n\r\n")
                // The swap comes once the old replica has the request. Bounded: 100 × 50 ms.
                for _ in 0..<100 where old.slowBegun.values.isEmpty {
                    try await Task.sleep(for: .milliseconds(50))
                }
                try #require(old.slowBegun.values.count == 1)
                directory.setReady(true, service: "web", address: "127.0.0.3")
                directory.setReady(false, service: "web", address: "127.0.0.2")
                #expect(try await connection.answer().body == "old, late")
                // The answer's end lets go of the old replica, before any other request. Bounded: 50 × 100 ms.
                for _ in 0..<50 where directory.connections(to: "127.0.0.2") > 0 {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(directory.connections(to: "127.0.0.2") == 0)
                // The request that follows the answer goes to the ready replica.
                #expect(try await connection.ask("GET /who HTTP/1.1\r\nHost: web\r\n\r\n").body == "new")
            }
        }
    }

    /// Clients sending back to back on a pool of kept-alive connections while the replicas swap: every request is
    /// answered, every client ends up on the new replica, and the old one is left with no connection while the pool's
    /// stay open.
    ///
    /// Each loop runs until 20 answers in a row came from the new replica, and then stops, so what is checked does not
    /// depend on how far the other loops had got when loop 0 swapped the replicas (the forward notices within 100 ms).
    @Test func noRequestIsLostAcrossASwap() async throws {
        try await withReplicas { directory, forwardPort, _ in
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            defer { _ = client.shutdown() }
            let failures = Counted()
            let settled = Counted()
            try await withThrowingTaskGroup(of: Void.self) { loops in
                for loop in 0..<4 {
                    loops.addTask {
                        var newInARow = 0
                        // Bounded: 1,000 requests a loop at most; a loop stops after 20 new answers in a row.
                        for index in 0..<1_000 where newInARow < 20 {
                            let post = (index + loop) % 3 == 0
                            var request = HTTPClientRequest(
                                url: "http://127.0.0.1:\(forwardPort)/\(post ? "echo" : "who")")
                            if post {
                                request.method = .POST
                                request.body = .bytes(ByteBuffer(string: "n\(index)"))
                            }
                            do {
                                let response = try await client.execute(request, timeout: .seconds(10))
                                let body = String(buffer: try await response.body.collect(upTo: 1 << 16))
                                if response.status != .ok { failures.add("\(response.status)") }
                                newInARow = body.hasPrefix("new") ? newInARow + 1 : 0
                            } catch {
                                failures.add("\(error)")
                            }
                            if index == 60, loop == 0 {
                                directory.setReady(true, service: "web", address: "127.0.0.3")
                                directory.setReady(false, service: "web", address: "127.0.0.2")
                            }
                        }
                        if newInARow >= 20 { settled.add("loop \(loop)") }
                    }
                }
                try await loops.waitForAll()
            }
            #expect(failures.values == [])
            #expect(settled.values.sorted() == ["loop 0", "loop 1", "loop 2", "loop 3"])
            // Bounded: 50 × 100 ms. A pool connection last used before the swap is let go of at the forward's next look.
            for _ in 0..<50 where directory.connections(to: "127.0.0.2") > 0 {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(directory.connections(to: "127.0.0.2") == 0)
        }
    }

    /// A connection that is not HTTP/1 (here a binary echo protocol) is never moved mid-stream: once its replica is
    /// out of rotation and it has been quiet for the idle limit, it is closed, and the replica left with none.
    @Test func aConnectionThatIsNotHTTPIsClosedOnceQuiet() async throws {
        let port = try ChildProcess.freePort()
        let directory = Self.directory(service: "echo", port: port)
        let echo = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.pipeline.addHandler(Echo()) }
            .bind(host: "127.0.0.2", port: port).get()
        defer { echo.close(promise: nil) }
        let forward = try await ServiceForward.start(
            service: "echo", host: "127.0.0.1", port: try ChildProcess.freePort(), directory: directory)
        try await withRawHTTP(port: forward.port) { connection in
            try await connection.send("\u{0}\u{1}binary\r\n\r\n")
            #expect(try await connection.received(count: 12) == "\u{0}\u{1}binary\r\n\r\n")
            directory.setReady(true, service: "echo", address: "127.0.0.3")
            directory.setReady(false, service: "echo", address: "127.0.0.2")
            // The read ends when the forward closes it (about 1 s); the suite's time limit bounds it.
            await #expect(throws: RawHTTP.ClosedEarly.self) { _ = try await connection.received(count: 1) }
        }
        for _ in 0..<50 where directory.connections(to: "127.0.0.2") > 0 {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(directory.connections(to: "127.0.0.2") == 0)
        await forward.stop()
    }

    /// Two replicas of `service` on `port`: 127.0.0.2 ready, 127.0.0.3 not yet.
    private static func directory(service: String, port: Int) -> ServiceDirectory {
        ServiceDirectory(
            project: "forward",
            replicas: [
                .init(service: service, index: 0, address: "127.0.0.2", port: port, isReady: true),
                .init(service: service, index: 1, address: "127.0.0.3", port: port, isReady: false),
            ])
    }

    /// Replica "old" ready on 127.0.0.2 and "new", not yet ready, on 127.0.0.3, both on the same port, with a forward
    /// for the service on 127.0.0.1. The body gets the directory, the forward's port and "old".
    private func withReplicas(
        releasedCloseAfter: Duration = .seconds(60), _ body: (ServiceDirectory, Int, Replica) async throws -> Void
    ) async throws {
        let port = try ChildProcess.freePort()
        let directory = Self.directory(service: "web", port: port)
        let old = try await Replica.start(name: "old", address: "127.0.0.2", port: port)
        let new = try await Replica.start(name: "new", address: "127.0.0.3", port: port)
        let forward = try await ServiceForward.start(
            service: "web", host: "127.0.0.1", port: try ChildProcess.freePort(), directory: directory,
            releasedCloseAfter: releasedCloseAfter)
        do {
            try await body(directory, forward.port, old)
        } catch {
            await forward.stop()
            await old.stop()
            await new.stop()
            throw error
        }
        await forward.stop()
        await old.stop()
        await new.stop()
    }
}

/// A Hummingbird server that says its name: `GET /who` (`HEAD /who`: 204), `GET /slow` (after 1.5 s), `POST /echo`.
private struct Replica {
    let task: Task<Void, any Error>
    /// One entry for each `GET /slow` it has begun to answer.
    let slowBegun: Counted
    /// A thousand requests a test: only what is wrong is logged.
    private static let quiet: Logger = {
        var logger = Logger(label: "replica")
        logger.logLevel = .error
        return logger
    }()

    static func start(name: String, address: String, port: Int) async throws -> Replica {
        let router = Router()
        let slowBegun = Counted()
        router.get("/who") { _, _ in name }
        router.head("/who") { _, _ in HTTPResponse.Status.noContent }
        router.get("/slow") { _, _ in
            slowBegun.add("slow")
            try await Task.sleep(for: .milliseconds(1_500))
            return "\(name), late"
        }
        router.post("/echo") { request, _ in
            "\(name):" + String(buffer: try await request.body.collect(upTo: 1 << 16))
        }
        let (running, started) = AsyncStream.makeStream(of: Void.self)
        let application = Application(
            router: router, configuration: .init(address: .hostname(address, port: port)),
            onServerRunning: { _ in started.yield() }, logger: Self.quiet)
        let task = Task { try await application.runService() }
        for await _ in running { break }
        return Replica(task: task, slowBegun: slowBegun)
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Sends back what it receives.
private final class Echo: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.writeAndFlush(data, promise: nil) }
}

/// Strings gathered from several tasks.
private final class Counted: Sendable {
    private let store = Mutex<[String]>([])
    func add(_ value: String) { store.withLock { $0.append(value) } }
    var values: [String] { store.withLock { $0 } }
}

/// One kept-alive HTTP/1 connection to `port`, spoken by hand so the test sees exactly when it is closed.
private func withRawHTTP(port: Int, _ body: (RawHTTP) async throws -> Void) async throws {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    try await channel.executeThenClose { inbound, outbound in
        try await body(RawHTTP(iterator: inbound.makeAsyncIterator(), outbound: outbound))
    }
}

private final class RawHTTP {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var received = ByteBuffer()

    init(
        iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) {
        self.iterator = iterator
        self.outbound = outbound
    }

    func send(_ request: String) async throws { try await outbound.write(ByteBuffer(string: request)) }

    /// Sends `request` and reads its answer.
    func ask(_ request: String) async throws -> (status: Int, body: String) {
        try await send(request)
        return try await answer(toHead: request.hasPrefix("HEAD"))
    }

    /// The next `count` bytes, as text.
    func received(count: Int) async throws -> String {
        while received.readableBytes < count {
            guard var chunk = try await iterator.next() else { throw ClosedEarly() }
            received.writeBuffer(&chunk)
        }
        return received.readString(length: count) ?? ""
    }

    /// The next answer, framed by its `Content-Length` (no body after HEAD).
    func answer(toHead: Bool = false) async throws -> (status: Int, body: String) {
        while true {
            let text = String(buffer: received)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound]
                let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
                let length =
                    toHead
                    ? 0
                    : head.split(separator: "\r\n").compactMap { line -> Int? in
                        let parts = line.split(separator: ":", maxSplits: 1)
                        guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                        return Int(parts[1].trimmingCharacters(in: .whitespaces))
                    }.first ?? 0
                let headBytes = text[..<end.upperBound].utf8.count
                if received.readableBytes - headBytes >= length {
                    received.moveReaderIndex(forwardBy: headBytes)
                    let body = received.readString(length: length) ?? ""
                    received.discardReadBytes()
                    return (status, body)
                }
            }
            guard var chunk = try await iterator.next() else { throw ClosedEarly() }
            received.writeBuffer(&chunk)
        }
    }

    struct ClosedEarly: Error {}
}
