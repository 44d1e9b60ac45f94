import Foundation

/// What an earlier `orchestrate up` left in `.orchestrate/state.json`: a supervisor still running (an error), or
/// processes a dead one left behind (stopped before anything starts).
enum LeftoverProcesses {
    /// - Throws: `UpSession.StartError` when the supervisor named there still runs.
    static func reclaim(statePath: String, say: (String) -> Void) throws(SupervisorError) {
        guard let state = StateFile.read(statePath) else { return }
        if ProcessInfoReader.isAlive(state.supervisorPID),
            ProcessInfoReader.command(of: state.supervisorPID).map({ $0.hasPrefix("orchestrate") }) == true
        {
            throw SupervisorError(
                .start,
                "orchestrate up is already running here (PID \(state.supervisorPID)); `orchestrate down` stops it")
        }
        var killed: [Int32] = []
        // Only the very processes it recorded: a PID reused since (another project's postgres, say) has another
        // start time, and is left alone.
        for process in state.processes where ProcessInfoReader.isStill(process) {
            say(
                "reclaiming \(process.service)-\(process.replica) (PID \(process.pid)), left running by an earlier orchestrate up"
            )
            signalGroup(process.pid, SIGTERM)
            killed.append(process.pid)
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while killed.contains(where: ProcessInfoReader.isAlive), ContinuousClock.now < deadline {
            usleep(50_000)
        }
        for pid in killed where ProcessInfoReader.isAlive(pid) { signalGroup(pid, SIGKILL) }
        unlink(statePath)
    }

    /// Its group (our children lead one each), or the process alone when it leads none.
    static func signalGroup(_ pid: Int32, _ signal: Int32) {
        if kill(-pid, signal) != 0, errno == ESRCH { kill(pid, signal) }
    }

    /// Every address a replica or a localhost forward will bind that is taken, with who holds it.
    static func bindConflicts(plan: LocalPlan, forwards: [(service: String, port: Int)]) -> [String] {
        let binds =
            plan.replicas.compactMap { replica in
                replica.port.map { (replica.address, $0, "\(replica.service)-\(replica.index)") }
            } + forwards.map { ("127.0.0.1", $0.port, "localhost:\($0.port) for \($0.service)") }
            + plan.serviceEndpoints.map { ($0.address, $0.port, "the address of \($0.service)") }
        return binds.compactMap { address, port, user in
            guard let error = PortCheck.bindError(address: address, port: port) else { return nil }
            if let holder = PortCheck.holder(address: address, port: port) {
                return "\(address):\(port) (for \(user)) is held by PID \(holder.pid) (\(holder.command))"
            }
            return "\(address):\(port) (for \(user)) cannot be bound: \(error)"
        }
    }
}
