import Foundation
import OrchestrateContract
public import ServiceKit

/// A message as a broker stores it: named string fields, in the order written.
public typealias EventFields = [(name: String, value: String)]

/// A message handed to a consumer group member: its broker id, its fields and how many times it has been delivered
/// (1 the first time; more after it was claimed again).
public struct StreamDelivery: Sendable {
    public var id: String
    public var fields: [String: String]
    public var deliveries: Int

    public init(id: String, fields: [String: String], deliveries: Int) {
        self.id = id
        self.fields = fields
        self.deliveries = deliveries
    }
}

/// An append-only stream with consumer groups: what Redis Streams offer and the embedded event log imitates. Each
/// user (the outbox relay, a consumer) has its own instance, and uses it one call at a time.
///
/// Semantics, the same on both: a group reads each message of a stream once (`readNew`); a read message stays pending
/// for the group until acknowledged; a pending message idle longer than a given time can be claimed by another member
/// (`claimIdle`), which counts one more delivery; a group created on a stream reads it from its beginning.
public protocol EventBroker: Sendable {
    /// Where it is, for logs (no password).
    var address: String { get }
    /// Appends messages to a stream in the given order; returns their ids.
    func append(stream: String, messages: [EventFields]) async throws -> [String]
    /// Creates the group on the stream (and the stream) when it does not exist yet.
    func createGroup(stream: String, group: String) async throws
    /// Up to `count` messages the group has not read yet, now delivered to `consumer`; waits up to `wait` for one.
    func readNew(stream: String, group: String, consumer: String, count: Int, wait: Duration) async throws
        -> [StreamDelivery]
    /// Up to `count` pending messages idle for at least `minimumIdle`, now delivered to `consumer`.
    func claimIdle(stream: String, group: String, consumer: String, minimumIdle: Duration, count: Int) async throws
        -> [StreamDelivery]
    /// Acknowledges messages: they are no longer pending for the group.
    func acknowledge(stream: String, group: String, ids: [String]) async throws
    /// Messages the group has not finished: not read yet plus pending.
    func backlog(stream: String, group: String) async throws -> Int
    /// Deletes the messages every group of the stream has read and acknowledged, so the broker's memory stays
    /// bounded; returns how many went. A stream without groups is left whole (nobody has read it). A group created
    /// later reads from what is left.
    func trim(stream: String) async throws -> Int
    /// The messages of a stream from its start (tests and tools; bounded by `limit`).
    func messages(stream: String, limit: Int) async throws -> [StreamDelivery]
    func close() async
}

/// The broker named by `BROKER_URL`: Redis Streams for `redis://…`, the embedded SQLite event log for `sqlite://PATH`
/// or, when unset, `.orchestrate/data/events.sqlite`.
public struct BrokerLocation: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case redis(url: String)
        case sqlite(path: String)
    }

    public var kind: Kind
    /// Redis's password from `BROKER_PASSWORD` (never printed); one in the URL wins.
    var password: String?

    public init(url: String?, password: String? = nil) throws(ServiceKitError) {
        self.password = password
        guard let url, !url.isEmpty else {
            kind = .sqlite(path: ".orchestrate/data/events.sqlite")
            return
        }
        if url.hasPrefix("redis://") {
            _ = try RedisClient(url: url, password: password)  // checks the URL now, at start
            kind = .redis(url: url)
        } else if url.hasPrefix("sqlite://") {
            let path = String(url.dropFirst("sqlite://".count))
            guard !path.isEmpty else {
                throw ServiceKitError.configuration(
                    ServiceVariable.brokerURL, "sqlite:// needs a file path (sqlite://.orchestrate/data/events.sqlite)")
            }
            kind = .sqlite(path: path)
        } else {
            throw ServiceKitError.configuration(
                ServiceVariable.brokerURL, "must be redis://HOST:PORT or sqlite://PATH, not \"\(url.prefix(40))\"")
        }
    }

    /// A new broker connection for one user.
    public func connect() async throws -> any EventBroker {
        switch kind {
        case .redis(let url): try RedisStreamsBroker(client: RedisClient(url: url, password: password))
        case .sqlite(let path): try await SQLiteEventLog.open(path: path)
        }
    }
}

/// A relay's or consumer's connection to the broker: opened when first needed, dropped after a failure so the next
/// use reconnects.
struct BrokerConnection {
    let location: BrokerLocation
    private var current: (any EventBroker)?

    init(location: BrokerLocation) {
        self.location = location
    }

    /// The connection, and whether it was opened just now.
    mutating func open() async throws -> (broker: any EventBroker, fresh: Bool) {
        if let current { return (current, false) }
        let broker = try await location.connect()
        current = broker
        return (broker, true)
    }

    mutating func drop() async {
        await current?.close()
        current = nil
    }
}

extension Duration {
    /// The duration in whole milliseconds, as Redis takes block and idle times.
    var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
