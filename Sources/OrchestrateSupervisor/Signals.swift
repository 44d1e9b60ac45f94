import Dispatch
import Foundation

/// SIGINT and SIGTERM as an async sequence, for the supervisor's shutdown: the default actions are turned off
/// while it listens, so Ctrl-C starts an orderly stop instead of killing the supervisor (its children are in
/// groups of their own, so the terminal's Ctrl-C does not reach them directly).
public final class SignalListener: @unchecked Sendable {
    public let signals: AsyncStream<Int32>
    // Set once in init, cancelled in deinit: never shared mutably.
    private let sources: [any DispatchSourceSignal]

    public init() {
        let numbers = [SIGINT, SIGTERM]
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        signals = stream
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    deinit {
        for source in sources { source.cancel() }
    }
}
