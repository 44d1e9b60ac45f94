import Foundation
import OrchestrateContract
import OrchestrateSpec

/// An edit of services.yaml while `up --watch` runs: validated first (an invalid spec is shown and changes
/// nothing), then planned as at start, and only the difference applied: services added and removed, replicas
/// added and removed, and the replicas whose configuration changed (environment, probes, arguments, …) replaced
/// one at a time behind readiness. A service whose entry did not change is not touched.
extension UpSession {
    func applySpecEdit(_ watch: WatchSettings, log: SupervisorLog) async {
        let (loaded, diagnostics) = watch.loadSpec()
        guard let spec = loaded else {
            specNote("services.yaml is invalid; nothing changed:")
            for line in diagnostics.split(separator: "\n", omittingEmptySubsequences: false) { specNote(String(line)) }
            return
        }
        if let refusal = refusal(of: spec) {
            specNote("services.yaml: \(refusal); nothing changed (stop and start `orchestrate up` for it)")
            return
        }
        guard let replanning, let supervisor = supervisors.last, let current = plan else { return }
        var next: LocalPlan
        do {
            next = try makePlan(
                spec, dnsPort: replanning.dnsPort, naming: replanning.naming, keeping: current.serviceAddresses)
        } catch {
            specNote("services.yaml cannot run: \(error); nothing changed")
            return
        }
        if let infrastructure = replanning.infrastructure { next = infrastructure.apply(to: next, spec: spec) }
        if let endpoint = replanning.otlpEndpoint { next = Self.exportingTraces(next, to: endpoint, spec: spec) }
        let missing = Set(next.replicas.filter { $0.executable == nil }.map(\.product)).sorted().filter {
            !FileManager.default.isExecutableFile(atPath: configuration.productsDirectory + "/" + $0)
        }
        if !missing.isEmpty {
            guard await buildNewProducts(missing, watch: watch, log: log) else { return }
        }
        let routes = watch.routeTable(spec)
        let routesChanged = routes != configuration.routeTable
        if routesChanged, let routes {
            do {
                try routes.write(
                    toFile: configuration.stateDirectory + "/routes.json", atomically: true, encoding: .utf8)
            } catch {
                specNote("cannot write routes.json: \(error); nothing changed")
                return
            }
        }
        changesUnderWay += 1
        if let snapshots { next.replicas = snapshots.running(next.replicas) }
        let running = await supervisor.replicas()
        configuration.spec = spec
        configuration.routeTable = routes
        var summary: [String] = []
        // Names first: a new service's name resolves before it starts.
        var names = next
        names.replicas = running
        rewriteHosts(names)

        let before = Set(running.map(\.service))
        let after = Set(next.replicas.map(\.service))
        for service in before.subtracting(after).sorted() {
            let indices = Set(running.filter { $0.service == service }.map(\.index))
            await supervisor.remove(service, indices: indices, shape: next)
            summary.append("removed \(service)")
        }
        for service in next.replicas.map(\.service).uniqued() {
            let old = running.filter { $0.service == service }
            let new = next.replicas.filter { $0.service == service }
            guard before.contains(service) else {
                await add(new, shape: next, to: supervisor)
                summary.append("added \(service)")
                continue
            }
            let oldIndices = Set(old.map(\.index))
            let newIndices = Set(new.map(\.index))
            if !oldIndices.subtracting(newIndices).isEmpty {
                await supervisor.remove(service, indices: oldIndices.subtracting(newIndices), shape: next)
            }
            let changed = new.filter { replica in
                guard let was = old.first(where: { $0.index == replica.index }) else { return false }
                return Self.configuration(of: was) != Self.configuration(of: replica)
                    || (routesChanged && spec.gateway?.service.value == service)
            }
            if !changed.isEmpty {
                await replace(service, with: changed, why: "its entry in services.yaml changed", on: supervisor)
                summary.append("\(service) restarted")
            }
            let added = new.filter { !oldIndices.contains($0.index) }
            if !added.isEmpty { await add(added, shape: next, to: supervisor) }
            if oldIndices.count != newIndices.count {
                summary.append("\(service) scaled \(oldIndices.count)→\(newIndices.count)")
            }
        }
        await supervisor.reshape(next)
        await reconcileForwards(next)
        var now = next
        now.replicas = await supervisor.replicas()
        plan = now
        rewriteHosts(now)
        changesUnderWay -= 1
        await pruneSnapshots(on: supervisor)
        specNote(
            summary.isEmpty
                ? "services.yaml is valid; nothing that runs changed"
                : "services.yaml applied: \(summary.joined(separator: "; "))")
    }

    /// Says it in the log, and in the dashboard's log view under `services.yaml`.
    private func specNote(_ text: String) {
        announce(text, service: "services.yaml")
    }

    /// What an edit cannot change while `up` runs, if the edit changes it.
    private func refusal(of spec: Spec) -> String? {
        let old = configuration.spec
        if spec.name.value != old.name.value { return "the project's name changed" }
        if configuration.infrastructure == .native {
            let databases = { (spec: Spec) in Set(spec.services.compactMap { $0.database?.name.value }) }
            if databases(spec) != databases(old) || (spec.broker == nil) != (old.broker == nil) {
                return "its databases or broker changed, which `--infra native` provisions at start"
            }
        }
        return nil
    }

    /// What makes a replica the same one: everything but its address (and `HOST`, which says it).
    static func configuration(of replica: LocalPlan.Replica) -> LocalPlan.Replica {
        var replica = replica
        replica.address = ""
        replica.environment[ServiceVariable.host] = nil
        return replica
    }

    /// Adds replicas on free addresses.
    private func add(_ replicas: [LocalPlan.Replica], shape: LocalPlan, to supervisor: Supervisor) async {
        guard let pool = addressPool else { return }
        var moved: [LocalPlan.Replica] = []
        for replica in replicas {
            guard let placed = try? pool.moved(replica) else {
                specNote("no free address for \(replica.service)-\(replica.index): 127.0.0.0/24 is full")
                continue
            }
            moved.append(placed)
        }
        await supervisor.add(moved, shape: shape)
    }

    /// A product services.yaml now names that was never built: built before anything changes.
    private func buildNewProducts(_ products: [String], watch: WatchSettings, log: SupervisorLog) async -> Bool {
        guard let swift = watch.swift else {
            specNote("services.yaml names \(products.joined(separator: ", ")), which is not built; nothing changed")
            return false
        }
        specNote("building \(products.joined(separator: ", ")), new in services.yaml")
        let build = WatchBuild(
            swift: swift, packageDirectory: configuration.projectDirectory, environment: configuration.environment,
            launcher: configuration.launcher)
        let outcome = await build.run(products: Set(products), allProducts: 0) { line in
            log.output(line, replica: "build", service: "build")
        }
        guard outcome.succeeded,
            products.allSatisfy({
                FileManager.default.isExecutableFile(atPath: configuration.productsDirectory + "/" + $0)
            })
        else {
            specNote(
                "cannot build \(products.joined(separator: ", ")) (\(outcome.failure ?? "no such product")); nothing changed"
            )
            return false
        }
        return true
    }

    /// The forwarders the plan wants: each service's stable address, and `localhost:PORT` for public ones.
    private func reconcileForwards(_ plan: LocalPlan) async {
        let stable = Dictionary(
            plan.serviceEndpoints.map { ($0.service, ($0.address, $0.port)) }, uniquingKeysWith: { first, _ in first })
        for (service, forward) in stableForwards
        where stable[service].map({ $0.0 != forward.host || $0.1 != forward.port }) ?? true {
            await forward.stop()
            stableForwards[service] = nil
        }
        for (service, (address, port)) in stable where stableForwards[service] == nil {
            await forwardStableAddress(service: service, address: address, port: port)
        }
        let local = Dictionary(publicPorts().map { ($0.service, $0.port) }, uniquingKeysWith: { first, _ in first })
        for (service, forward) in localForwards where local[service] != forward.port {
            await forward.stop()
            localForwards[service] = nil
        }
        for (service, port) in local where localForwards[service] == nil {
            await forwardLocalhost(service: service, port: port)
        }
    }

    /// The replicas' /etc/hosts, for the services and replicas of `plan`.
    func rewriteHosts(_ plan: LocalPlan) {
        guard let replanning, case .hostsFile = replanning.naming else { return }
        do {
            try PrivateHosts.write(
                PrivateHosts.text(machine: replanning.machineHosts, plan: plan), to: replanning.hostsPath)
        } catch {
            specNote("cannot rewrite \(replanning.hostsPath): \(error)")
        }
    }
}

extension Sequence where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen: Set<Element> = []
        return filter { seen.insert($0).inserted }
    }
}
