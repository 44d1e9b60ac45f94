import Foundation
import OrchestrateSpec

/// `up --watch`: a change to a product's sources rebuilds the products it affects (one `swift build` per batch of
/// changes) and swaps their services one replica at a time behind readiness; a failed build changes nothing. An
/// edit of services.yaml is validated, then only its difference is applied. A `command:` service restarts (the same
/// way) when a file under its directory changes.
extension UpSession {
    /// Starts watching the project's directory and every directory a product is built from.
    func startWatching(_ watch: WatchSettings, log: SupervisorLog) async throws(SupervisorError) {
        var sources: PackageSources?
        if let swift = watch.swift, configuration.spec.services.contains(where: { $0.product != nil }) {
            sources = await describePackage(swift: swift)
        }
        packageSources = sources
        let project = configuration.projectDirectory
        let roots =
            [project] + (sources?.directories ?? []).filter { !$0.hasPrefix(project + "/") && $0 != project }.sorted()
        let watcher = try FileWatcher(roots: roots, quiet: watch.quiet)
        for _ in 0..<1000 where !watcher.isWatching {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let loop = Task {
            for await batch in watcher.changes { await self.changed(batch, watch: watch, log: log) }
        }
        started("the file watcher") {
            loop.cancel()
            await watcher.stop()
        }
        let products = sources.map { "the sources of \($0.products.count) products, " } ?? ""
        note(
            "watching \(products)services.yaml and the commands' directories for changes (\(roots.joined(separator: ", ")))"
        )
    }

    /// `swift package describe --type json`, read; nil (said in the log) when it fails: sources are then not
    /// watched, the rest is. It runs on a thread of its own (0.2 s to seconds, while SwiftPM resolves): the session
    /// answers status, swaps and stops meanwhile.
    func describePackage(swift: String) async -> PackageSources? {
        let words = [swift, "package", "--package-path", configuration.projectDirectory, "describe", "--type", "json"]
        let described = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: ForegroundCommand.run(words, capture: true)) }
        }
        guard described.status == 0, let sources = try? PackageSources.parse(Data(described.output.utf8)) else {
            note("cannot read the package (swift package describe exited \(described.status)): sources are not watched")
            return nil
        }
        return sources
    }

    /// One batch of changed files.
    func changed(_ batch: Set<String>, watch: WatchSettings, log: SupervisorLog) async {
        guard state == .running else { return }
        var batch = batch
        // The kernel dropped events (its queue overflowed): anything may have changed.
        if batch.contains(configuration.projectDirectory) {
            batch.insert(watch.specPath)
            batch.formUnion((packageSources?.directories ?? []).map { $0 + "/" })
            batch.insert(configuration.projectDirectory + "/")
        }
        if batch.contains(watch.specPath) { await applySpecEdit(watch, log: log) }
        var swaps: [(service: String, why: String)] = []
        if let swift = watch.swift, var sources = packageSources {
            if batch.contains(where: sources.isManifest), let described = await describePackage(swift: swift) {
                sources = described
                packageSources = described
            }
            swaps += await rebuild(batch, sources: sources, swift: swift, log: log)
        }
        swaps += commandServices(changedBy: batch, watch: watch).map { ($0, "files under its directory changed") }
        // Services swap side by side, each one replica at a time.
        await withTaskGroup(of: Void.self) { group in
            for (service, why) in swaps { group.addTask { await self.swap(service, why: why) } }
        }
    }

    /// Builds the running products the batch affects; the services whose binary the build changed.
    private func rebuild(_ batch: Set<String>, sources: PackageSources, swift: String, log: SupervisorLog) async
        -> [(service: String, why: String)]
    {
        let running = Set(configuration.spec.services.filter(\.watches).compactMap(\.product?.value))
        let products = batch.reduce(into: Set<String>()) { $0.formUnion(sources.products(affectedBy: $1)) }
            .intersection(running)
        guard !products.isEmpty else { return [] }
        let changed = batch.filter { sources.products(affectedBy: $0).isEmpty == false }.map { path in
            path.hasPrefix(configuration.projectDirectory + "/")
                ? String(path.dropFirst(configuration.projectDirectory.count + 1)) : path
        }.sorted()
        announce(
            "building \(products.sorted().joined(separator: ", ")) (\(changed.prefix(3).joined(separator: ", "))"
                + "\(changed.count > 3 ? ", …" : ""))")
        let before = Dictionary(uniqueKeysWithValues: products.map { ($0, binaryStamp($0)) })
        let runningNow = await supervisors.last?.replicas() ?? []
        for product in products { snapshots?.vacate(product) }
        let build = WatchBuild(
            swift: swift, packageDirectory: sources.packageDirectory, environment: configuration.environment,
            launcher: configuration.launcher)
        let began = ContinuousClock.now
        let outcome = await build.run(products: products, allProducts: sources.products.count) { line in
            log.output(line, replica: "build", service: "build")
        }
        guard outcome.succeeded else {
            // The build's output back where it was (a replica runs it meanwhile through its snapshot).
            for product in products {
                if let snapshot = runningNow.first(where: { $0.product == product })?.executable {
                    snapshots?.restore(product, from: snapshot)
                }
            }
            let first = outcome.errors.first.map { "; first error: \($0)" } ?? ""
            announce(
                "the build failed (\(outcome.failure ?? "no reason given"))\(first); nothing changed: every replica "
                    + "keeps running its last good build, and the next good build swaps")
            return []
        }
        announce("built in \(Self.format(ContinuousClock.now - began))")
        var swaps: [(String, String)] = []
        for product in products.sorted() {
            guard binaryStamp(product) != before[product] else {
                announce("\(product): the build made no new binary; nothing to swap")
                continue
            }
            for service in configuration.spec.services where service.product?.value == product && service.watches {
                swaps.append((service.name.value, "a new build of \(product)"))
            }
        }
        return swaps
    }

    /// What tells a new binary from the old one: its inode, size and modification time.
    private func binaryStamp(_ product: String) -> [Int] {
        var status = stat()
        guard lstat(configuration.productsDirectory + "/" + product, &status) == 0 else { return [] }
        return [
            Int(status.st_ino), Int(status.st_size), Int(status.st_mtim.tv_sec), Int(status.st_mtim.tv_nsec),
        ]
    }

    /// The `command:` services a batch of changes restarts: a file under the directory it runs in changed that is
    /// not a product's source, the package's manifest or services.yaml.
    private func commandServices(changedBy batch: Set<String>, watch: WatchSettings) -> [String] {
        let project = configuration.projectDirectory
        let sourceDirectories = packageSources?.directories ?? []
        let relevant = batch.filter { path in
            path != watch.specPath && path.hasPrefix(project + "/")
                && !sourceDirectories.contains { path.hasPrefix($0 + "/") }
                && !(packageSources?.isManifest(path) ?? false)
                && !path.hasSuffix("/Package.resolved")
        }
        guard !relevant.isEmpty else { return [] }
        return configuration.spec.services.filter { !$0.command.isEmpty && $0.watches }.map(\.name.value)
    }

    /// Says it in the log, and in the dashboard's log view under the service (the build's under `build`).
    func announce(_ text: String, service: String = "build") {
        note(text)
        log?.ring?.append(text, service: service, replica: "orchestrate")
    }

    /// Replaces the service's replicas with new ones of the same configuration, one at a time behind readiness.
    func swap(_ service: String, why: String) async {
        guard let supervisor = supervisors.last else { return }
        changesUnderWay += 1
        var current = await supervisor.replicas().filter { $0.service == service }
        if let snapshots { current = snapshots.running(current) }
        await replace(service, with: current, why: why, on: supervisor)
        changesUnderWay -= 1
        await pruneSnapshots(on: supervisor)
    }

    /// Moves each replica to a free address and replaces the running ones with them; says how it went.
    func replace(_ service: String, with replicas: [LocalPlan.Replica], why: String, on supervisor: Supervisor)
        async
    {
        guard let pool = addressPool, !replicas.isEmpty else { return }
        var moved: [LocalPlan.Replica] = []
        do {
            for replica in replicas { moved.append(try pool.moved(replica)) }
        } catch {
            for replica in moved { pool.release(replica.address) }
            note("cannot swap \(service): \(error)")
            return
        }
        let began = ContinuousClock.now
        announce(
            "swapping \(service) (\(why)): one replica at a time, each new one ready before the old one drains",
            service: service)
        do {
            try await supervisor.replace(service, with: moved)
            announce("\(service) swapped in \(Self.format(ContinuousClock.now - began))", service: service)
        } catch {
            announce("\(service): \(error); the swap stopped there", service: service)
            let running = Set(await supervisor.replicas().map(\.address))
            for replica in moved where !running.contains(replica.address) { pool.release(replica.address) }
        }
        plan?.replicas = await supervisor.replicas()
        if let plan { rewriteHosts(plan) }
    }

    /// Removes the snapshots no replica runs any more, unless a swap or an edit is still under way: services swap
    /// side by side, and one that finished first must not remove the snapshot another's next replica is about to
    /// run. The last one to finish removes them.
    func pruneSnapshots(on supervisor: Supervisor) async {
        guard let snapshots, changesUnderWay == 0 else { return }
        let running = Set(await supervisor.replicas().compactMap(\.executable))
        guard changesUnderWay == 0 else { return }
        snapshots.removeAll(except: running)
    }
}
