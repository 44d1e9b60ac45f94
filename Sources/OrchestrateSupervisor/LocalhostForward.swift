public import NIOCore
public import NIOPosix
import Synchronization

/// `localhost:PORT` for a public service, as compose's published ports are: each connection goes to a ready
/// replica (round robin) and bytes are copied both ways.
public final class LocalhostForward: Sendable {
    private let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let task: Task<Void, Never>
    public let port: Int

    public static func start(
        service: String, port: Int, directory: ServiceDirectory, host: String = "127.0.0.1",
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> LocalhostForward {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
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
                            await forward(connection, to: target, group: group)
                        }
                    }
                }
            }
        }
        return LocalhostForward(server: server, task: task, port: port)
    }

    private init(
        server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, task: Task<Void, Never>, port: Int
    ) {
        self.server = server
        self.task = task
        self.port = port
    }

    public func stop() async {
        try? await server.channel.close()
        task.cancel()
        await task.value
    }

    private static func forward(
        _ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, to target: ServiceDirectory.Replica,
        group: any EventLoopGroup
    ) async {
        do {
            let upstream = try await ClientBootstrap(group: group)
                .channelOption(.allowRemoteHalfClosure, value: true)
                .connectTimeout(.seconds(2))
                .connect(host: target.address, port: target.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true))
                    }
                }
            try await connection.executeThenClose { clientIn, clientOut in
                try await upstream.executeThenClose { upstreamIn, upstreamOut in
                    try await withThrowingTaskGroup(of: Void.self) { copies in
                        copies.addTask {
                            for try await chunk in clientIn { try await upstreamOut.write(chunk) }
                            upstreamOut.finish()
                        }
                        copies.addTask {
                            for try await chunk in upstreamIn { try await clientOut.write(chunk) }
                            clientOut.finish()
                        }
                        try await copies.waitForAll()
                    }
                }
            }
        } catch {
            try? await connection.channel.close()
        }
    }
}

private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
}
