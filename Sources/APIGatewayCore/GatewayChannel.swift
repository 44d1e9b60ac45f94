import Foundation
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import ServiceKit
import Synchronization

/// The gateway's HTTP/1 connections, for Hummingbird's server (which binds, and stops accepting and drains on
/// shutdown): NIO's HTTP codec with the `ServerLimits` header limit, `ResponseOrdering` (pipelined requests, and the
/// close of a connection once its answer is written when the server is quiescing), and a `ProxyHandler`.
struct GatewayChannel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let proxy: GatewayProxy

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = proxy.limits.maxHeaderBytes
            limits.maxHeaderListSize = proxy.limits.maxHeaderBytes
            limits.maxHeaderFieldCount = 256
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
            try channel.pipeline.syncOperations.addHandler(ResponseOrdering())
            try channel.pipeline.syncOperations.addHandler(
                ProxyHandler(proxy: proxy, loop: proxy.loops.state(for: channel.eventLoop)))
            return Value(channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        try? await value.channel.closeFuture.get()
    }
}

/// Each event loop's `LoopState`, made the first time a connection arrives on it.
final class LoopStates: Sendable {
    private let states = Mutex<[ObjectIdentifier: NIOLoopBound<LoopState>]>([:])

    func state(for eventLoop: any EventLoop) -> LoopState {
        let key = ObjectIdentifier(eventLoop)
        if let bound = states.withLock({ $0[key] }) { return bound.value }
        let bound = NIOLoopBound(LoopState(eventLoop: eventLoop), eventLoop: eventLoop)
        states.withLock { $0[key] = $0[key] ?? bound }
        return states.withLock { $0[key]! }.value
    }
}

/// Tokens this gateway has verified, with the caller each names, until they expire: a client sends the same token
/// with every request, and verifying it again costs a task and a signature check each time. Bounded: past
/// `capacity` tokens, the oldest half is forgotten (and verified again when next seen).
final class VerifiedTokens: Sendable {
    private struct Entry {
        var caller: Caller
        var expires: Date
        var added: UInt64
    }

    private let entries = Mutex<(map: [String: Entry], counter: UInt64)>(([:], 0))
    let capacity: Int

    init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// The caller of `authorization`'s token, if it was verified and has not expired.
    func caller(for authorization: String?) -> Caller? {
        guard let authorization else { return nil }
        let now = Date()
        return entries.withLock { state -> Caller? in
            guard let entry = state.map[authorization] else { return nil }
            guard entry.expires > now else {
                state.map[authorization] = nil
                return nil
            }
            return entry.caller
        }
    }

    func store(_ authorization: String, _ caller: Caller, until expires: Date) {
        entries.withLock { state in
            if state.map.count >= capacity {
                let cutoff = state.counter - UInt64(capacity / 2)
                state.map = state.map.filter { $0.value.added > cutoff }
            }
            state.counter += 1
            state.map[authorization] = Entry(caller: caller, expires: expires, added: state.counter)
        }
    }
}
