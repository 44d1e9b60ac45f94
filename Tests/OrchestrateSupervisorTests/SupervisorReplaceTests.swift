import DNSWire
import Foundation
import OrchestrateSpec
import OrchestrateTestSupport
import Synchronization
import Testing

@testable import OrchestrateSupervisor

/// What `up --watch` does to running services, with the fake launcher and prober: a replica replaced by a new one
/// that is ready before the old one stops, a replacement that never gets ready and changes nothing, replicas added
/// and removed.
extension SupervisorTests {
    func webAddresses(_ harness: Harness) async -> [String] {
        await harness.supervisor.status().filter { $0.service == "web" }.map(\.address)
    }

    @Test func aReplacedReplicaStopsOnlyOnceItsReplacementIsReady() async throws {
        try await withSupervisor { harness in
            await harness.supervisor.start()
            #expect(await eventually { harness.supervisor.allReady() })
            let old = await webAddresses(harness)
            let pool = AddressPool(addresses: .linux, taken: await harness.supervisor.replicas().map(\.address))
            let replicas = await harness.supervisor.replicas().filter { $0.service == "web" }
            let moved = try replicas.map { try pool.moved($0) }
            #expect(Set(moved.map(\.address)).isDisjoint(with: old))
            #expect(moved.allSatisfy { $0.environment["HOST"] == $0.address })
            // Watches DNS all along: a web replica is always listed.
            let fewest = Mutex(Int.max)
            let watching = Task {
                while !Task.isCancelled {
                    let count = addresses(harness.directory, "web").count
                    fewest.withLock { $0 = min($0, count) }
                    try? await Task.sleep(for: .milliseconds(1))
                }
            }
            try await harness.supervisor.replace("web", with: moved)
            #expect(await webAddresses(harness) == moved.map(\.address))
            #expect(await eventually { Set(addresses(harness.directory, "web")) == Set(moved.map(\.address)) })
            #expect(await eventually { harness.launcher.running("Web").count == 2 })
            watching.cancel()
            #expect(fewest.withLock { $0 } >= 1, "a web replica was listed in DNS throughout")
            #expect(
                await eventually {
                    harness.launcher.events.withLock { $0 }.filter { $0.hasPrefix("exit Web@") }.count == 2
                })
            let events = harness.launcher.events.withLock { $0 }
            for (was, new) in zip(old, moved.map(\.address)) {
                let started = try #require(events.firstIndex(of: "start Web@\(new)"))
                let exited = try #require(events.firstIndex { $0.hasPrefix("exit Web@\(was) ") })
                #expect(started < exited, "\(events)")
            }
            // A swap is not a crash: no restart counted.
            #expect(await harness.supervisor.status().filter { $0.service == "web" }.allSatisfy { $0.restarts == 0 })
            #expect(harness.log.captured.contains { $0.contains("on \(old[0]) (replaced): stopped") })
        }
    }

    @Test func aReplacementThatIsNeverReadyChangesNothing() async throws {
        try await withSupervisor { harness in
            await harness.supervisor.start()
            #expect(await eventually { harness.supervisor.allReady() })
            let old = await webAddresses(harness)
            let pool = AddressPool(addresses: .linux, taken: await harness.supervisor.replicas().map(\.address))
            let moved = try await harness.supervisor.replicas().filter { $0.service == "web" }.map {
                try pool.moved($0)
            }
            harness.prober.failingReadiness.withLock { _ = $0.insert(moved[0].address) }
            await #expect(throws: Supervisor.ReplaceFailure.self) {
                try await harness.supervisor.replace("web", with: moved, readyTimeout: .milliseconds(300))
            }
            #expect(await webAddresses(harness) == old)
            #expect(Set(addresses(harness.directory, "web")) == Set(old))
            #expect(await eventually { harness.launcher.running("Web").count == 2 })
            #expect(!harness.launcher.running("Web").contains { $0.name == "Web@\(moved[0].address)" })
            #expect(harness.launcher.launches("Web") == 3, "the second replica was never replaced")
        }
    }

    @Test func replicasAreAddedAndRemovedWhileTheRestRuns() async throws {
        try await withSupervisor { harness in
            await harness.supervisor.start()
            #expect(await eventually { harness.supervisor.allReady() })
            let running = await harness.supervisor.replicas()
            let pool = AddressPool(addresses: .linux, taken: running.map(\.address))
            var third = try #require(running.last { $0.service == "web" })
            third.index = 3
            third = try pool.moved(third)
            var shape = LocalPlan(
                project: "test", serviceAddresses: [:], replicas: running + [third], waves: [], generatedSecrets: [])
            shape.waves = [["store", "once"], ["web"]]
            await harness.supervisor.add([third], shape: shape)
            #expect(await eventually { addresses(harness.directory, "web").count == 3 })
            #expect(await eventually { harness.supervisor.allReady() })
            await harness.supervisor.remove("web", indices: [2, 3], shape: shape)
            #expect(addresses(harness.directory, "web").count == 1)
            #expect(await eventually { harness.launcher.running("Web").count == 1 })
            #expect(await harness.supervisor.status().filter { $0.service == "web" }.map(\.replica) == [1])
            // The other services never moved.
            #expect(harness.launcher.launches("Store") == 1)
        }
    }
}
