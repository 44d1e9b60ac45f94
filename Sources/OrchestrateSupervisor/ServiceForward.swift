public import NIOCore
public import NIOPosix
import Synchronization

/// A TCP forwarder to a service's ready replicas, as a Kubernetes Service is: each new connection goes to the next
/// ready replica (round robin) and bytes are copied both ways, half-closes included.
///
/// `up` runs one at each service's stable address (`127.0.2.N:PORT`, what its name resolves to) and one at
/// `localhost:PORT` for each public service. A connection to a replica that is no longer ready is closed once it has
/// been quiet for `idleCloseAfter` (no bytes either way), so a client's pooled keep-alive connection does not keep
/// sending requests to it; a busy connection is left to finish.
public final class ServiceForward: Sendable {
    private let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let task: Task<Void, Never>
    public let host: String
    public let port: Int

    public static func start(
        service: String, host: String, port: Int, directory: ServiceDirectory,
        idleCloseAfter: Duration = .seconds(1), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> ServiceForward {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true))
                }
            }
        let counter = Counter()
        let task = Task<Void, Never> {
            await withDiscardingTaskGroup { connections in
                try? await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        connections.addTask {
                            let ready = directory.all.filter { $0.service == service && $0.isReady }
                            guard !ready.isEmpty else {
                                try? await connection.channel.close()
                                return
                            }
                            let target = ready[counter.next() % ready.count]
                            await forward(
                                connection, to: target, directory: directory, idleCloseAfter: idleCloseAfter,
                                group: group)
                        }
                    }
                }
            }
        }
        return ServiceForward(server: server, task: task, host: host, port: port)
    }

    private init(
        server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, task: Task<Void, Never>, host: String,
        port: Int
    ) {
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

    private static func forward(
        _ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, to target: ServiceDirectory.Replica,
        directory: ServiceDirectory, idleCloseAfter: Duration, group: any EventLoopGroup
    ) async {
        do {
            let upstream = try await ClientBootstrap(group: group)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(2))
                .connect(host: target.address, port: target.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
            directory.connectionChanged(to: target.address, by: 1)
            defer { directory.connectionChanged(to: target.address, by: -1) }
            let lastActivity = Activity()
            let quiet =
                UInt64(idleCloseAfter.components.seconds) * 1_000_000_000
                + UInt64(idleCloseAfter.components.attoseconds / 1_000_000_000)
            try await connection.executeThenClose { clientIn, clientOut in
                try await upstream.executeThenClose { upstreamIn, upstreamOut in
                    try await withThrowingTaskGroup(of: Void.self) { copies in
                        copies.addTask {
                            for try await chunk in clientIn {
                                lastActivity.touch()
                                try await upstreamOut.write(chunk)
                            }
                            upstreamOut.finish()
                        }
                        copies.addTask {
                            for try await chunk in upstreamIn {
                                lastActivity.touch()
                                try await clientOut.write(chunk)
                            }
                            clientOut.finish()
                        }
                        // The replica's readiness, looked up in memory a few times a second: once it is out of
                        // rotation, a quiet connection to it is closed (throwing cancels the copies).
                        copies.addTask {
                            while true {
                                try await Task.sleep(for: .milliseconds(250))
                                let ready = directory.all.contains {
                                    $0.service == target.service && $0.address == target.address && $0.isReady
                                }
                                if !ready, lastActivity.quietFor >= quiet { throw LeftUnready() }
                            }
                        }
                        // Both directions done (or one failed): the watch has nothing left to guard.
                        _ = try await copies.next()
                        _ = try await copies.next()
                        copies.cancelAll()
                    }
                }
            }
        } catch {
            try? await connection.channel.close()
        }
    }
}

/// When bytes last went through a connection, either way.
private final class Activity: Sendable {
    private let last = Atomic<UInt64>(NIODeadline.now().uptimeNanoseconds)
    func touch() { last.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed) }
    /// Nanoseconds since then.
    var quietFor: UInt64 { NIODeadline.now().uptimeNanoseconds &- last.load(ordering: .relaxed) }
}

private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
}
