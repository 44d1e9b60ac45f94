import Foundation
import OrchestrateTestSupport
import Synchronization
import Testing

@testable import OrchestrateSupervisor

/// The batches a watcher yields, collected as they come.
final class WatchBatches: Sendable {
    private let seen = Mutex<[Set<String>]>([])

    func collect(_ watcher: FileWatcher) -> Task<Void, Never> {
        Task { for await batch in watcher.changes { self.seen.withLock { $0.append(batch) } } }
    }

    var all: Set<String> { seen.withLock { $0.reduce(into: Set<String>()) { $0.formUnion($1) } } }
}

/// What `up --watch` reads: which products a file belongs to (from the real `swift package describe` of this
/// package), and which files changed (real files, real inotify).
@Suite(.timeLimit(.minutes(5))) struct WatchInputTests {
    @Test(.requires("swift", ExternalTool.find("swift") != nil))
    func aSharedTargetAffectsEveryProductBuiltFromIt() async throws {
        let swift = try #require(ExternalTool.find("swift")).path
        let root = ExternalTool.packageRoot.path
        let described = ForegroundCommand.run(
            // `--ignore-lock`: `swift test` holds the package's lock while this runs.
            [swift, "package", "--ignore-lock", "--package-path", root, "describe", "--type", "json"], capture: true)
        try #require(described.status == 0, "\(described.output)")
        let sources = try PackageSources.parse(Data(described.output.utf8))
        #expect(sources.packageDirectory == root)
        let serviceKit = sources.products(affectedBy: root + "/Sources/ServiceKit/ServiceClient.swift")
        #expect(
            serviceKit.isSuperset(of: [
                "UserService", "OrderService", "PaymentService", "NotificationService", "APIGateway",
            ]),
            "\(serviceKit)")
        #expect(!serviceKit.contains("orchestrate"), "the CLI is free of the service stack")
        #expect(sources.products(affectedBy: root + "/Sources/UserServiceCore/Anything.swift") == ["UserService"])
        #expect(sources.products(affectedBy: root + "/Package.swift") == Set(sources.products.keys))
        #expect(sources.isManifest(root + "/Package.swift"))
        #expect(sources.products(affectedBy: root + "/docs/up.md").isEmpty)
        // A directory whose name only starts like a target's is not that target.
        #expect(sources.products(affectedBy: root + "/Sources/ServiceKitX/File.swift").isEmpty)
    }

    @Test func changedFilesArriveInBatchesAndNothingOutsideIsFollowed() async throws {
        let directory = try ExternalTool.temporaryDirectory("watch")
        let outside = try ExternalTool.temporaryDirectory("watch-outside")
        defer {
            try? FileManager.default.removeItem(at: directory)
            try? FileManager.default.removeItem(at: outside)
        }
        let root = directory.path
        try FileManager.default.createDirectory(atPath: root + "/Sources/App", withIntermediateDirectories: true)
        try "let a = 1\n".write(toFile: root + "/Sources/App/main.swift", atomically: false, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: root + "/.build", withIntermediateDirectories: true)
        // A link to a directory elsewhere: the watcher never goes through it.
        try FileManager.default.createSymbolicLink(
            atPath: root + "/Sources/elsewhere", withDestinationPath: outside.path)
        let watcher = try FileWatcher(roots: [root], quiet: .milliseconds(50))
        let batches = WatchBatches()
        let collecting = batches.collect(watcher)
        #expect(await eventually(.seconds(30)) { watcher.isWatching })

        // Written in place, written by rename (as editors save), and a new directory with a file in it.
        try "let a = 2\n".write(toFile: root + "/Sources/App/main.swift", atomically: false, encoding: .utf8)
        try "let b = 1\n".write(toFile: root + "/Sources/App/other.swift", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: root + "/Sources/Lib", withIntermediateDirectories: true)
        try "let c = 1\n".write(toFile: root + "/Sources/Lib/lib.swift", atomically: false, encoding: .utf8)
        // Not changes: build output, an editor's swap file, a file behind the link.
        try "x".write(toFile: root + "/.build/out.o", atomically: false, encoding: .utf8)
        try "x".write(toFile: root + "/Sources/App/.main.swift.swp", atomically: false, encoding: .utf8)
        try "x".write(toFile: outside.path + "/secret.swift", atomically: false, encoding: .utf8)
        let expected: Set<String> = [
            root + "/Sources/App/main.swift", root + "/Sources/App/other.swift", root + "/Sources/Lib/lib.swift",
        ]
        #expect(await eventually(.seconds(30)) { batches.all.isSuperset(of: expected) }, "\(batches.all)")
        // A later change in the new directory is seen too (it is watched now).
        try "let c = 2\n".write(toFile: root + "/Sources/Lib/lib2.swift", atomically: false, encoding: .utf8)
        #expect(await eventually(.seconds(30)) { batches.all.contains(root + "/Sources/Lib/lib2.swift") })
        await watcher.stop()
        await collecting.value
        let all = batches.all
        #expect(!all.contains { $0.contains("/.build/") || $0.hasSuffix(".swp") || $0.contains("secret") }, "\(all)")
        // The temporary file of an atomic write came and went: not reported.
        #expect(all.allSatisfy { FileManager.default.fileExists(atPath: $0) }, "\(all)")
    }
}
