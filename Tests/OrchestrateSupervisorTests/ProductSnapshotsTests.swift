import Foundation
import OrchestrateTestSupport
import Testing

@testable import OrchestrateSupervisor

/// `.orchestrate/bin` under `up --watch`, with what someone else planted there: a symbolic link or a file in the
/// place of the directory, links in it pointing elsewhere, a product that is a link. Nothing outside is ever
/// removed, linked or followed.
@Suite struct ProductSnapshotsTests {
    let root: URL
    let products: URL
    let outside: URL

    init() throws {
        root = try ExternalTool.temporaryDirectory("snapshots")
        products = root.appendingPathComponent("products")
        outside = root.appendingPathComponent("outside")
        for directory in [products, outside, root.appendingPathComponent(".orchestrate")] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        try "#!/bin/sh\n".write(to: products.appendingPathComponent("Store"), atomically: false, encoding: .utf8)
        try "keep me\n".write(to: outside.appendingPathComponent("Store.1"), atomically: false, encoding: .utf8)
    }

    var bin: String { root.appendingPathComponent(".orchestrate/bin").path }
    var victim: String { outside.appendingPathComponent("Store.1").path }

    @Test func aLinkInPlaceOfTheDirectoryIsRefusedAndNotFollowed() throws {
        #expect(symlink(outside.path, bin) == 0)
        #expect(ProductSnapshots.prepare(directory: bin, products: products.path) == nil)
        #expect(FileManager.default.fileExists(atPath: victim), "prepare empties the directory: not through a link")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside.path) == ["Store.1"])
        try? FileManager.default.removeItem(at: root)
    }

    @Test func aFileInPlaceOfTheDirectoryIsRefusedAndLeftAsItIs() throws {
        try "not a directory\n".write(toFile: bin, atomically: false, encoding: .utf8)
        #expect(ProductSnapshots.prepare(directory: bin, products: products.path) == nil)
        #expect(try String(contentsOfFile: bin, encoding: .utf8) == "not a directory\n")
        try? FileManager.default.removeItem(at: root)
    }

    @Test func linksInTheDirectoryAreRemovedNeverTheirTargets() throws {
        #expect(mkdir(bin, 0o700) == 0)
        #expect(symlink(victim, bin + "/Store.2") == 0)
        let snapshots = try #require(ProductSnapshots.prepare(directory: bin, products: products.path))
        #expect(FileManager.default.fileExists(atPath: victim))
        let path = snapshots.snapshot("Store")
        #expect(path.hasPrefix(bin + "/Store."), "\(path)")
        snapshots.removeAll(except: [])
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me\n")
        try? FileManager.default.removeItem(at: root)
    }

    @Test func aProductThatIsALinkIsRunInPlaceNeverLinkedNorVacated() throws {
        let store = products.appendingPathComponent("Store").path
        try FileManager.default.removeItem(atPath: store)
        #expect(symlink(victim, store) == 0)
        let snapshots = try #require(ProductSnapshots.prepare(directory: bin, products: products.path))
        #expect(snapshots.snapshot("Store") == store)
        #expect(try FileManager.default.contentsOfDirectory(atPath: bin) == [])
        snapshots.vacate("Store")
        snapshots.restore("Store", from: victim)
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: store)) == victim)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me\n")
        try? FileManager.default.removeItem(at: root)
    }
}
