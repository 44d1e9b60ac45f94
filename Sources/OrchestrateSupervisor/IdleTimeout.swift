import NIOCore

/// Closes a connection that has sent and received nothing for `timeout`: a client that connects to the control
/// socket or the DNS server over TCP and then says nothing cannot hold a connection (and its memory) forever.
enum IdleTimeout {
    /// The two handlers that do it, first in a connection's pipeline.
    static func handlers(after timeout: TimeAmount) -> [any ChannelHandler] {
        [IdleStateHandler(allTimeout: timeout), CloseWhenIdle()]
    }

    private final class CloseWhenIdle: ChannelInboundHandler, Sendable {
        typealias InboundIn = NIOAny

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent {
                context.close(promise: nil)
            } else {
                context.fireUserInboundEventTriggered(event)
            }
        }
    }
}
