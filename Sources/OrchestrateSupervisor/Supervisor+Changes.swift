import OrchestrateSpec
import Synchronization

/// What `up --watch` changes while everything runs: a service's replicas replaced by new ones (a new build, a new
/// environment), replicas and services added and removed. Each change touches only the services it names.
extension Supervisor {
    /// Why a replacement stopped before it finished: the replicas that run were left as they were.
    public struct ReplaceFailure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Replaces the service's replicas with `replicas`, one at a time: each new replica starts beside the old one (on
    /// its own address), and only once it is ready is the old one taken out of rotation, drained (its forwarded
    /// connections closed, for at most its grace period) and stopped. A new replica that fails or is not ready
    /// within `readyTimeout` is stopped and the replacement ends there: what still runs keeps running. New replicas
    /// start with a fresh restart count, so a swap never counts toward the crash-loop backoff.
    ///
    /// - Parameter replicas: One per replica of the service, by index, each on an address no replica uses.
    public func replace(_ service: String, with replicas: [LocalPlan.Replica], readyTimeout: Duration = .seconds(120))
        async throws(ReplaceFailure)
    {
        guard let current = runners[service] else { throw ReplaceFailure(description: "no service named \(service)") }
        for replacement in replicas {
            guard let position = current.firstIndex(where: { $0.replica.index == replacement.index }) else { continue }
            let old = runners[service]?[position] ?? current[position]
            let oldState = await old.state
            let new = Self.runner(for: replacement, executableDirectory: executableDirectory, context: context)
            // A replica stopped by the user stays stopped: it is replaced without starting.
            guard oldState != .stopped else {
                swap(service, position: position, old: old, new: new)
                retire(old, service: service, drained: false)
                continue
            }
            await new.start()
            let deadline = ContinuousClock.now + readyTimeout
            while true {
                let seen = board.version
                if await new.isReady { break }
                let state = await new.state
                guard state != .failed, state != .stopped, ContinuousClock.now < deadline, !isShuttingDown else {
                    let detail = await new.status().detail
                    await new.stop(reason: "not ready; the old replica keeps serving")
                    forget(new.replica)
                    throw ReplaceFailure(
                        description: "\(new.name) was not ready (\(detail)); \(old.name) keeps running")
                }
                await readinessChange(after: seen, deadline: deadline)
            }
            swap(service, position: position, old: old, new: new)
            retire(old, service: service, drained: true)
        }
    }

    /// Adds replicas (a service scaled up, or a new service); each starts once its service's dependencies are ready.
    public func add(_ replicas: [LocalPlan.Replica], shape plan: LocalPlan) {
        adopt(shape: plan)
        var services: [String] = []
        for replica in replicas {
            let runner = Self.runner(for: replica, executableDirectory: executableDirectory, context: context)
            runners[replica.service, default: []].append(runner)
            members.withLock { $0[replica.service, default: []].append(replica.address) }
            if !services.contains(replica.service) { services.append(replica.service) }
        }
        for service in services {
            starters.append(Task { await self.startWhenDependenciesReady(service) })
        }
    }

    /// Stops and forgets the service's replicas with these indices (a service scaled down, or removed).
    public func remove(_ service: String, indices: Set<Int>, shape plan: LocalPlan) async {
        let leaving = (runners[service] ?? []).filter { indices.contains($0.replica.index) }
        runners[service]?.removeAll { indices.contains($0.replica.index) }
        members.withLock { $0[service]?.removeAll { address in leaving.contains { $0.replica.address == address } } }
        if runners[service]?.isEmpty == true {
            runners[service] = nil
            members.withLock { $0[service] = nil }
        }
        for runner in leaving { context.directory.setReady(false, service: service, address: runner.replica.address) }
        await withTaskGroup(of: Void.self) { group in
            for runner in leaving { group.addTask { await runner.stop(reason: "removed from services.yaml") } }
        }
        for runner in leaving { forget(runner.replica) }
        adopt(shape: plan)
    }

    /// The order, dependencies, waves and entry points of the plan now in force.
    public func reshape(_ plan: LocalPlan) {
        adopt(shape: plan)
    }

    private func adopt(shape plan: LocalPlan) {
        (names, dependencies, entryPoints) = Self.shape(of: plan)
        waves = plan.waves
        board.poke()
    }

    private func swap(_ service: String, position: Int, old: ReplicaRunner, new: ReplicaRunner) {
        runners[service]?[position] = new
        members.withLock { members in
            if let slot = members[service]?.firstIndex(of: old.replica.address) {
                members[service]?[slot] = new.replica.address
            }
        }
        retiring.append(old)
    }

    /// Takes the old replica out of rotation, then drains and stops it in the background, so the next replica's
    /// swap starts at once.
    private func retire(_ old: ReplicaRunner, service: String, drained: Bool) {
        let directory = context.directory
        let grace = old.replica.supervision.stopGracePeriod
        Task {
            await old.retire()
            if drained {
                // The forwarders send it nothing new; each closes its connection to it once quiet.
                let deadline = ContinuousClock.now + grace
                while directory.connections(to: old.replica.address) > 0, ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            await old.stop(reason: "replaced")
            self.retired(old)
        }
    }

    private func retired(_ old: ReplicaRunner) {
        retiring.removeAll { $0 === old }
        forget(old.replica)
    }

    /// Forgets a replica that no longer runs: out of DNS and off the board, its address free again.
    private func forget(_ replica: LocalPlan.Replica) {
        context.directory.remove(service: replica.service, address: replica.address)
        board.remove(service: replica.service, address: replica.address)
        addressPool?.release(replica.address)
    }

    /// Where the addresses of replicas this supervisor retires go back to.
    public func setAddressPool(_ pool: AddressPool) {
        addressPool = pool
    }

    /// The plan's replicas as they run now (their addresses, after swaps).
    public func replicas() async -> [LocalPlan.Replica] {
        var replicas: [LocalPlan.Replica] = []
        for name in names {
            for runner in runners[name, default: []] { replicas.append(runner.replica) }
        }
        return replicas
    }
}
