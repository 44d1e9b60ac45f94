import Foundation

/// What a product's replicas run: a hard link to the built binary in `.orchestrate/bin` (`NAME.INODE`), not the
/// build's own output path. So a build under `up --watch` never links over a binary that is executing (which costs
/// this machine's linker about 2 s of system time on the shop's 190 MB debug binaries: BENCHMARKS.md, "watch"),
/// and a replica restarted while a build runs, or after one failed, runs the last good binary.
///
/// Before a build the products it will link are taken out of the build's way (their output path unlinked; the
/// replicas keep the inode through their link); after a failed one the old binary is put back, so `swift build`
/// and `up --no-build` find it. Only regular files are linked or unlinked, never through a symbolic link.
struct ProductSnapshots: Sendable {
    /// `.orchestrate/bin`, made by `up` (0700).
    let directory: String
    /// Where `swift build` puts the products.
    let products: String

    /// Makes `directory` (or finds it a real directory) and empties it of the links an earlier run left.
    static func prepare(directory: String, products: String) -> ProductSnapshots? {
        var status = stat()
        if lstat(directory, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFDIR else { return nil }
        } else if mkdir(directory, 0o700) != 0 {
            return nil
        }
        let snapshots = ProductSnapshots(directory: directory, products: products)
        snapshots.removeAll(except: [])
        return snapshots
    }

    /// The path the product's replicas run: its snapshot, or the product itself when a link cannot be made (another
    /// file system, or not a regular file).
    func snapshot(_ product: String) -> String {
        let path = products + "/" + product
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return path }
        let link = "\(directory)/\(product).\(status.st_ino)"
        guard Foundation.link(path, link) == 0 || errno == EEXIST else { return path }
        return link
    }

    /// The replicas with each product's replica running its snapshot (programs that are not products untouched).
    func running(_ replicas: [LocalPlan.Replica]) -> [LocalPlan.Replica] {
        replicas.map { replica in
            guard replica.executable == nil || replica.executable?.hasPrefix(directory + "/") == true else {
                return replica
            }
            var replica = replica
            replica.executable = snapshot(replica.product)
            return replica
        }
    }

    /// Takes the product's output out of the build's way, when replicas run it through a snapshot.
    func vacate(_ product: String) {
        let path = products + "/" + product
        var status = stat()
        guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return }
        var linked = stat()
        guard lstat("\(directory)/\(product).\(status.st_ino)", &linked) == 0, linked.st_ino == status.st_ino else {
            return
        }
        unlink(path)
    }

    /// After a failed build: the product's last snapshot back at its output path, if the build left none there.
    func restore(_ product: String, from snapshot: String) {
        let path = products + "/" + product
        var status = stat()
        guard lstat(path, &status) != 0, snapshot.hasPrefix(directory + "/") else { return }
        _ = Foundation.link(snapshot, path)
    }

    /// Removes every snapshot no replica runs any more.
    func removeAll(except running: Set<String>) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let path = directory + "/" + name
            var status = stat()
            guard !running.contains(path), lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
                continue
            }
            unlink(path)
        }
    }
}
