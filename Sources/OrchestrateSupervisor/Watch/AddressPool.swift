import OrchestrateContract
import Synchronization

/// The loopback addresses replicas bind, and which are taken: where a replica `up --watch` starts beside another,
/// or adds, gets its own.
public final class AddressPool: Sendable {
    private let addresses: LoopbackAddresses
    private let taken: Mutex<Set<String>>

    public init(addresses: LoopbackAddresses, taken: some Sequence<String>) {
        self.addresses = addresses
        self.taken = Mutex(Set(taken))
    }

    /// The lowest free address, now taken.
    public func take() throws -> String {
        try taken.withLock { taken in
            var position = 0
            while true {
                let address = try addresses.address(position)
                if taken.insert(address).inserted { return address }
                position += 1
            }
        }
    }

    public func release(_ address: String) {
        _ = taken.withLock { $0.remove(address) }
    }

    /// The replica moved to a free address (its `HOST` with it).
    public func moved(_ replica: LocalPlan.Replica) throws -> LocalPlan.Replica {
        var replica = replica
        replica.address = try take()
        if replica.environment[ServiceVariable.host] != nil {
            replica.environment[ServiceVariable.host] = replica.address
        }
        return replica
    }
}
