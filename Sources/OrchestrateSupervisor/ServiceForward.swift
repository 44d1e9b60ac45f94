public import NIOCore
public import NIOPosix
import Synchronization

/// A TCP forwarder to a service's ready replicas, as a Kubernetes Service is: each new connection goes to the next
/// ready replica (round robin) and bytes are copied both ways, half-closes included.
///
/// `up` runs one at each service's stable address (`127.0.2.N:PORT`, what its name resolves to) and one at
/// `localhost:PORT` for each public service. When a replica leaves rotation (it stopped being ready, or `up --watch`
/// is retiring it), its connections move off it without a request being lost:
/// - an HTTP/1 connection, the moment every request on it has had its whole answer (see `HTTPExchanges`), lets go of
///   the replica but stays open to the client; the client's next request on it goes to a ready replica. Closing it
///   instead would race a request the client's pool was sending on it at that moment, and most clients do not retry.
/// - any other connection is closed once it has been quiet for `idleCloseAfter` (no bytes either way).
/// A client's connection that was moved off its replica and then sends nothing for `releasedCloseAfter` (60 s, as
/// long as the idle limits of common servers: nginx 75 s, ServiceKit 30 s) is closed, as its replica would have
/// closed it: no connection is held open for ever.
/// A request still underway is left to finish.
public final class ServiceForward: Sendable {
    private let server: NIOAsyncChannel<Accepted, Never>
    private let task: Task<Void, Never>
    public let host: String
    public let port: Int

    /// A client's connection, read through its `ClientObserver`.
    struct Accepted: Sendable {
        let connection: NIOAsyncChannel<ClientChunk, ByteBuffer>
        let link: LinkState
    }

    public static func start(
        service: String, host: String, port: Int, directory: ServiceDirectory,
        idleCloseAfter: Duration = .seconds(1), releasedCloseAfter: Duration = .seconds(60),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ServiceForward {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let state = LinkState(service: service, directory: directory)
                    try channel.pipeline.syncOperations.addHandler(ClientObserver(state))
                    let connection = try NIOAsyncChannel<ClientChunk, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                    return Accepted(connection: connection, link: state)
                }
            }
        let counter = Counter()
        let task = Task<Void, Never> {
            await withDiscardingTaskGroup { connections in
                try? await server.executeThenClose { inbound in
                    for try await accepted in inbound {
                        connections.addTask {
                            await forward(
                                accepted, directory: directory, limits: (idleCloseAfter, releasedCloseAfter),
                                counter: counter)
                        }
                    }
                }
            }
        }
        return ServiceForward(server: server, task: task, host: host, port: port)
    }

    private init(server: NIOAsyncChannel<Accepted, Never>, task: Task<Void, Never>, host: String, port: Int) {
        self.server = server
        self.task = task
        self.host = host
        self.port = port
    }

    public func stop() async {
        try? await server.channel.close()
        task.cancel()
        await task.value
    }

    private struct LeftUnready: Error {}
    private struct NoReadyReplica: Error {}

    /// A leg to the next ready replica of the service, on the client connection's event loop (where its answers are
    /// read for `LinkState`).
    private static func nextLeg(
        _ state: LinkState, on eventLoop: any EventLoop, directory: ServiceDirectory, counter: Counter
    ) async throws -> Leg {
        let ready = directory.all.filter { $0.service == state.service && $0.isReady }
        guard !ready.isEmpty else { throw NoReadyReplica() }
        return try await Leg(to: ready[counter.next() % ready.count], on: eventLoop, state: state)
    }

    private static func forward(
        _ accepted: Accepted, directory: ServiceDirectory, limits: (idle: Duration, released: Duration),
        counter: Counter
    ) async {
        let connection = accepted.connection
        let state = accepted.link
        let eventLoop = connection.channel.eventLoop
        var opened: Leg?
        do {
            let first = try await nextLeg(state, on: eventLoop, directory: directory, counter: counter)
            opened = first
            try await eventLoop.submit { state.attach(first) }.get()
            try await connection.executeThenClose { clientIn, clientOut in
                try await withThrowingTaskGroup(of: Void.self) { outer in
                    outer.addTask {
                        try await watch(state, on: eventLoop, directory: directory, limits: limits)
                    }
                    outer.addTask {
                        try await withThrowingTaskGroup(of: Void.self) { legs in
                            var leg = first
                            legs.addTask { try await run(first, to: clientOut, directory: directory) }
                            var writer = try await first.writer()
                            for try await chunk in clientIn {
                                if chunk.startsNewLeg {
                                    // The replica left rotation with nothing underway: this request goes to the
                                    // next one ready.
                                    leg.release()
                                    let previous = leg
                                    let next = try await nextLeg(
                                        state, on: eventLoop, directory: directory, counter: counter)
                                    legs.addTask {
                                        try await run(next, after: previous, to: clientOut, directory: directory)
                                    }
                                    writer = try await next.writer()
                                    try await eventLoop.submit { state.attach(next) }.get()
                                    leg = next
                                }
                                try await writer.write(chunk.bytes)
                            }
                            eventLoop.execute { state.clientFinished() }
                            writer.finish()
                            try await legs.waitForAll()
                        }
                    }
                    // The connection is over (the watch only ever ends by throwing): the watch has nothing to guard.
                    _ = try await outer.next()
                    outer.cancelAll()
                }
            }
        } catch {
            // The first leg, in case its task never ran (closing a closed channel does nothing).
            try? await opened?.channel.channel.close()
            try? await connection.channel.close()
        }
    }

    /// Copies a leg's answers to the client, once the leg before it (if any) has copied all of its own: a client that
    /// pipelines gets its answers in order. A released leg ends quietly; one the replica ended half-closes the
    /// client's connection, as the replica did.
    private static func run(
        _ leg: Leg, after previous: Leg? = nil, to clientOut: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        directory: ServiceDirectory
    ) async throws {
        directory.connectionChanged(to: leg.replica.address, by: 1)
        defer {
            directory.connectionChanged(to: leg.replica.address, by: -1)
            leg.markFinished()
        }
        try await leg.channel.executeThenClose { upstreamIn, upstreamOut in
            leg.attached(upstreamOut)
            await previous?.finished()
            do {
                for try await chunk in upstreamIn { try await clientOut.write(chunk) }
            } catch  where leg.isReleased {
                return
            }
            if !leg.isReleased { clientOut.finish() }
        }
    }

    /// Releases the replica once it is out of rotation and nothing is underway (HTTP/1), or closes the connection
    /// once it has been quiet for `idleCloseAfter` (anything else) or, released, for `releasedCloseAfter`. It looks
    /// (on the connection's event loop) when the directory changes, when the connection moves to another leg or
    /// carries bytes while its replica is out of rotation, and when a time limit it waits for is due: an idle
    /// connection costs nothing while its replica stays ready.
    private static func watch(
        _ state: LinkState, on eventLoop: any EventLoop, directory: ServiceDirectory,
        limits: (idle: Duration, released: Duration)
    ) async throws {
        func nanoseconds(_ duration: Duration) -> UInt64 {
            UInt64(duration.components.seconds) * 1_000_000_000
                + UInt64(duration.components.attoseconds / 1_000_000_000)
        }
        let (idle, released) = (nanoseconds(limits.idle), nanoseconds(limits.released))
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let observer = directory.observe { wake.yield() }
        defer { directory.stopObserving(observer) }
        try await eventLoop.submit { state.wake = { wake.yield() } }.get()
        var timer: Scheduled<Void>?
        defer { timer?.cancel() }
        wake.yield()
        // The stream ends only when the task is cancelled: the connection is over.
        for await _ in wakes {
            timer?.cancel()
            timer = nil
            switch try await eventLoop.submit({ state.check(idle: idle, released: released) }).get() {
            case .nothing(let recheckAfter):
                if let recheckAfter {
                    timer = eventLoop.scheduleTask(in: .nanoseconds(Int64(recheckAfter))) { wake.yield() }
                }
            case .release(let leg):
                leg.release()
                wake.yield()  // for the released connection's own limit
            case .close:
                throw LeftUnready()
            }
        }
        throw CancellationError()
    }
}

/// A chunk from the client, and whether it begins a request that must go to a new leg.
struct ClientChunk: Sendable {
    var bytes: ByteBuffer
    var startsNewLeg: Bool
}

/// What a client's connection has carried and which leg it is on. Confined to the connection's event loop (every
/// leg runs there too); `@unchecked Sendable` only so the tasks can hand it to `eventLoop.submit`.
final class LinkState: @unchecked Sendable {
    enum Verdict {
        /// Nothing to do; look again after this many nanoseconds (nil: when woken).
        case nothing(recheckAfter: UInt64?)
        case release(Leg)
        case close
    }
    private enum Position {
        case on(Leg)
        /// The leg was released: the next chunk begins a request for a new one.
        case released
        /// A new leg is being opened for the request under way.
        case opening
    }

    let service: String
    private let directory: ServiceDirectory
    private var exchanges: HTTPExchanges?
    private var position = Position.opening
    private var lastActivity = NIODeadline.now().uptimeNanoseconds
    private var clientDone = false
    /// The watch's wake-up, for what only the connection sees: a new leg, and bytes while its replica is out of
    /// rotation (an exchange that ends, a connection found not to be HTTP/1).
    var wake: (() -> Void)?
    /// The last check found the replica out of rotation and the connection still on it.
    private var onLeftReplica = false

    init(service: String, directory: ServiceDirectory) {
        self.service = service
        self.directory = directory
    }

    private var tracked: HTTPExchanges {
        if let exchanges { return exchanges }
        let created = HTTPExchanges()  // its decoders' channels belong to this thread: the event loop's
        exchanges = created
        return created
    }

    private func isReady(_ replica: ServiceDirectory.Replica) -> Bool {
        directory.all.contains { $0.service == replica.service && $0.address == replica.address && $0.isReady }
    }

    func attach(_ leg: Leg) {
        position = .on(leg)
        onLeftReplica = false
        wake?()
    }
    func clientFinished() { clientDone = true }

    /// A chunk from the client, read before anything else sees it: a request that begins with nothing underway, on
    /// a replica out of rotation, starts a new leg.
    func clientSent(_ bytes: ByteBuffer) -> ClientChunk {
        lastActivity = NIODeadline.now().uptimeNanoseconds
        var startsNewLeg = false
        switch position {
        case .on(let leg) where tracked.isBetweenExchanges && !isReady(leg.replica):
            leg.markReleased()
            position = .opening
            startsNewLeg = true
        case .released:
            position = .opening
            startsNewLeg = true
        default:
            break
        }
        tracked.clientSent(bytes)
        if onLeftReplica { wake?() }
        return ClientChunk(bytes: bytes, startsNewLeg: startsNewLeg)
    }

    func replicaSent(_ bytes: ByteBuffer) {
        lastActivity = NIODeadline.now().uptimeNanoseconds
        tracked.replicaSent(bytes)
        if onLeftReplica { wake?() }
    }

    /// What the watch does now, given the limits (nanoseconds) on a quiet opaque connection and a quiet released one.
    func check(idle: UInt64, released: UInt64) -> Verdict {
        let quietFor = NIODeadline.now().uptimeNanoseconds &- lastActivity
        onLeftReplica = false
        switch position {
        case .released:
            return quietFor >= released ? .close : .nothing(recheckAfter: released - quietFor)
        case .opening:
            return .nothing(recheckAfter: nil)  // `attach` wakes the watch
        case .on(let leg):
            guard !isReady(leg.replica) else { return .nothing(recheckAfter: nil) }
            if tracked.isBetweenExchanges, !clientDone {
                position = .released
                leg.markReleased()
                return .release(leg)
            }
            onLeftReplica = true
            guard tracked.isOpaque else { return .nothing(recheckAfter: nil) }  // the exchange's end wakes it
            return quietFor >= idle ? .close : .nothing(recheckAfter: idle - quietFor)
        }
    }
}

/// Reads the client's bytes into `LinkState` as they arrive, on the event loop, and passes them on tagged.
final class ClientObserver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ClientChunk
    private let state: LinkState
    init(_ state: LinkState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(wrapInboundOut(state.clientSent(unwrapInboundIn(data))))
    }
}

/// Reads a replica's answers into `LinkState` as they arrive, on the event loop, and passes them on.
final class AnswerObserver: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let state: LinkState
    init(_ state: LinkState) { self.state = state }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        state.replicaSent(unwrapInboundIn(data))
        context.fireChannelRead(data)
    }
}

/// One connection from the forwarder to a replica, on behalf of a client's connection.
final class Leg: Sendable {
    let replica: ServiceDirectory.Replica
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    private let released = Atomic<Bool>(false)
    private let closing = Atomic<Bool>(false)
    private let ending = Mutex<(done: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    private let state = Mutex<
        (
            writer: NIOAsyncChannelOutboundWriter<ByteBuffer>?,
            waiter: CheckedContinuation<NIOAsyncChannelOutboundWriter<ByteBuffer>, any Error>?
        )
    >((nil, nil))

    init(to replica: ServiceDirectory.Replica, on eventLoop: any EventLoop, state: LinkState) async throws {
        self.replica = replica
        channel = try await ClientBootstrap(group: eventLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .connect(host: replica.address, port: replica.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AnswerObserver(state))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
    }

    /// Its task has ended: every answer it read went to the client.
    func finished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = ending.withLock { ending in
                if !ending.done { ending.waiters.append(continuation) }
                return ending.done
            }
            if done { continuation.resume() }
        }
    }

    func markFinished() {
        let waiters = ending.withLock { ending in
            ending.done = true
            defer { ending.waiters = [] }
            return ending.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The link let go of it: its end is not the client's business.
    var isReleased: Bool { released.load(ordering: .acquiring) }
    func markReleased() { released.store(true, ordering: .releasing) }

    /// Lets go of the replica: half-closes towards it, so it sees the connection end once it has sent all it had
    /// (nothing is underway), and closes it outright a second later in case it does not.
    func release() {
        markReleased()
        guard !closing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let channel = channel.channel
        channel.close(mode: .output, promise: nil)
        channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
    }

    /// The writer to the replica, once the leg's task has opened the channel.
    func attached(_ writer: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        let waiter = state.withLock { state in
            state.writer = writer
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: writer)
    }

    func writer() async throws -> NIOAsyncChannelOutboundWriter<ByteBuffer> {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let writer = state.withLock { state in
                    if state.writer == nil { state.waiter = continuation }
                    return state.writer
                }
                if let writer { continuation.resume(returning: writer) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}

private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
}
