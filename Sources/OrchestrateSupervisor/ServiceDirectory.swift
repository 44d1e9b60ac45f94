public import DNSWire
import Synchronization

/// Which replicas of which services run where, and which are ready: what the supervisor's DNS server answers from.
///
/// Names it answers (lowercase, a trailing dot ignored):
/// - `NAME` and `NAME.<project>.local`: A, one record per *ready* replica;
/// - `_http._tcp.NAME` and `_http._tcp.NAME.<project>.local` (or `NAME` asked for SRV): SRV, one record per ready
///   replica, with its port and the target `<index>.NAME.<project>.local`;
/// - `<index>.NAME.<project>.local`: A, that replica, ready or not (an SRV target must resolve).
/// A known name with nothing ready, or asked for another type, has no records (NOERROR); any other name is
/// NXDOMAIN.
public final class ServiceDirectory: Sendable {
    public struct Replica: Sendable, Equatable {
        public var service: String
        public var index: Int
        public var address: String
        public var port: Int
        public var isReady: Bool

        public init(service: String, index: Int, address: String, port: Int, isReady: Bool = false) {
            self.service = service
            self.index = index
            self.address = address
            self.port = port
            self.isReady = isReady
        }
    }

    public let project: String
    private let replicas = Mutex<[Replica]>([])
    /// Connections the forwarders hold open to each replica address: what a replica being replaced drains.
    private let open = Mutex<[String: Int]>([:])
    /// Told of every change to the replicas (one added, removed, or made ready or not): each forwarded connection
    /// looks again at once, rather than polling.
    private let observers = Mutex<(next: UInt64, all: [UInt64: @Sendable () -> Void])>((0, [:]))

    public init(project: String, replicas: [Replica] = []) {
        self.project = project.lowercased()
        self.replicas.withLock { $0 = replicas }
    }

    public var all: [Replica] { replicas.withLock { $0 } }

    /// Adds the replica, or replaces the one of the same service at the same address. Two replicas of a service may
    /// share an index for a while: the one `up --watch` starts in place of another, until the old one is retired.
    public func upsert(_ replica: Replica) {
        replicas.withLock { replicas in
            if let index = replicas.firstIndex(where: {
                $0.service == replica.service && $0.address == replica.address
            }) {
                replicas[index] = replica
            } else {
                replicas.append(replica)
            }
        }
        changed()
    }

    /// Marks a replica ready (its readiness probe passes) or not (it fails, or the replica stopped).
    public func setReady(_ ready: Bool, service: String, address: String) {
        replicas.withLock { replicas in
            for position in replicas.indices
            where replicas[position].service == service && replicas[position].address == address {
                replicas[position].isReady = ready
            }
        }
        changed()
    }

    /// A forwarder opened (+1) or closed (-1) a connection to the address.
    func connectionChanged(to address: String, by change: Int) {
        open.withLock { $0[address, default: 0] += change }
    }

    /// The connections forwarders hold open to the address.
    public func connections(to address: String) -> Int {
        open.withLock { $0[address] ?? 0 }
    }

    /// Forgets a replica that no longer runs (retired by a swap, or its service scaled down or removed).
    public func remove(service: String, address: String) {
        replicas.withLock { $0.removeAll { $0.service == service && $0.address == address } }
        changed()
    }

    /// Calls `body` after each change to the replicas, until `stopObserving` with what this returns.
    func observe(_ body: @escaping @Sendable () -> Void) -> UInt64 {
        observers.withLock { observers in
            defer { observers.next += 1 }
            observers.all[observers.next] = body
            return observers.next
        }
    }

    func stopObserving(_ token: UInt64) {
        _ = observers.withLock { $0.all.removeValue(forKey: token) }
    }

    private func changed() {
        for body in observers.withLock({ Array($0.all.values) }) { body() }
    }

    /// The answer to a question for `name` of `type`.
    public func answer(name: String, type: UInt16) -> (DNSMessage.ResponseCode, [DNSMessage.Record]) {
        var name = name.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        let suffix = ".\(project).local"
        var isSRVName = false
        if name.hasPrefix("_http._tcp.") {
            name.removeFirst("_http._tcp.".count)
            isSRVName = true
        }
        if name.hasSuffix(suffix) { name.removeLast(suffix.count) }
        let snapshot = all
        // `<index>.NAME`: one replica.
        if !isSRVName, let dot = name.firstIndex(of: "."), let index = Int(name[..<dot]) {
            let service = String(name[name.index(after: dot)...])
            // During a swap two replicas share the index: the ready one answers.
            let named = snapshot.filter { $0.service == service && $0.index == index }
            guard let replica = named.first(where: \.isReady) ?? named.first else {
                return (.nameError, [])
            }
            return (.noError, type == DNSMessage.RecordType.a.rawValue || type == 255 ? [.a(replica.address)] : [])
        }
        let members = snapshot.filter { $0.service == name }.sorted { $0.index < $1.index }
        guard !members.isEmpty else { return (.nameError, []) }
        let ready = members.filter(\.isReady)
        switch type {
        case DNSMessage.RecordType.a.rawValue where !isSRVName:
            return (.noError, ready.map { .a($0.address) })
        case DNSMessage.RecordType.srv.rawValue:
            return (
                .noError,
                ready.map {
                    .srv(priority: 0, weight: 1, port: UInt16($0.port), target: "\($0.index).\($0.service)\(suffix)")
                }
            )
        case 255:
            return (.noError, isSRVName ? [] : ready.map { .a($0.address) })
        default:
            return (.noError, [])
        }
    }

    /// The reply to a raw query: nil when it is not one to answer (a response, several questions, garbage).
    public func reply(to query: [UInt8]) -> [UInt8]? {
        guard let question = DNSMessage.question(in: query) else { return nil }
        guard question.recordClass == 1 || question.recordClass == 255 else {
            return DNSMessage.answer(to: question, records: [], code: .refused)
        }
        let (code, records) = answer(name: question.name, type: question.type)
        return DNSMessage.answer(to: question, records: records, code: code, ttl: 1)
    }
}
