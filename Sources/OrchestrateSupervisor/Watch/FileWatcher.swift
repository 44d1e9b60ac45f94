import Foundation
import Synchronization

/// Changes to the files under some directories, in batches: Linux's inotify, one watch per directory (a directory
/// made later is watched as it appears; a symbolic link is never followed), the events of one burst (an editor's
/// save, a `git checkout`) gathered until the files have been quiet for `quiet`.
///
/// No library in the package set watches files; inotify is the kernel's interface for it (on macOS this would be
/// FSEvents: not built).
final class FileWatcher: Sendable {
    /// Each batch of changed files (absolute paths). A batch of the roots themselves means events were lost (the
    /// kernel's queue overflowed): treat everything as changed.
    let changes: AsyncStream<Set<String>>
    private let stopped = Atomic<Bool>(false)
    private let finished: Mutex<CheckedContinuation<Void, Never>?> = Mutex(nil)
    private let done = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    /// Every root is watched (the thread has added its watches).
    var isWatching: Bool { started.load(ordering: .sequentiallyConsistent) }

    /// Names the watcher passes over: directories and files that are not sources (build output, state, version
    /// control, editors' swap and backup files).
    static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix("~") || name.hasSuffix(".swp") || name.hasSuffix(".swx")
            || name == "__pycache__" || name == "node_modules" || name.allSatisfy(\.isNumber)
    }

    /// - Throws: `SupervisorError` when inotify is not to be had (no such system call, or its limits reached).
    init(roots: [String], quiet: Duration = .milliseconds(100)) throws(SupervisorError) {
        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else {
            throw SupervisorError(.start, "cannot watch files (inotify_init1: \(String(cString: strerror(errno))))")
        }
        let (changes, continuation) = AsyncStream<Set<String>>.makeStream()
        self.changes = changes
        let quietMilliseconds = Int32(
            quiet.components.seconds * 1000 + quiet.components.attoseconds / 1_000_000_000_000_000)
        let thread = Thread { [self] in
            var watches = Watches(descriptor: descriptor)
            for root in roots { _ = watches.add(root) }
            started.store(true, ordering: .sequentiallyConsistent)
            var pending: Set<String> = []
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while !stopped.load(ordering: .relaxed) {
                var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, pending.isEmpty ? 200 : quietMilliseconds)
                if ready == 0 {
                    // A file made and gone within the batch (`sed -i`'s and editors' temporary files) is no change.
                    let changed = pending.filter { !watches.created.contains($0) || access($0, F_OK) == 0 }
                    if !changed.isEmpty { continuation.yield(changed) }
                    pending = []
                    watches.created = []
                    continue
                }
                guard ready > 0 else { continue }
                let count = read(descriptor, &buffer, buffer.count)
                guard count > 0 else { continue }
                pending.formUnion(watches.read(buffer[..<count], roots: roots))
            }
            close(descriptor)
            continuation.finish()
            self.done.store(true, ordering: .sequentiallyConsistent)
            let waiter = self.finished.withLock { waiter -> CheckedContinuation<Void, Never>? in
                defer { waiter = nil }
                return waiter
            }
            waiter?.resume()
        }
        thread.name = "orchestrate-watch"
        thread.start()
    }

    /// Stops watching; returns once the watching thread has closed its descriptor.
    func stop() async {
        stopped.store(true, ordering: .relaxed)
        await withCheckedContinuation { continuation in
            let resumeNow = finished.withLock { waiter -> Bool in
                if done.load(ordering: .sequentiallyConsistent) { return true }
                waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// The watched directories, by watch descriptor.
    private struct Watches {
        let descriptor: Int32
        var paths: [Int32: String] = [:]
        /// The files created (or moved in) since the last batch.
        var created: Set<String> = []
        static let mask: UInt32 =
            UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM) | UInt32(IN_CREATE)
            | UInt32(IN_DELETE) | UInt32(IN_DONT_FOLLOW) | UInt32(IN_EXCL_UNLINK)

        /// Watches the directory and every directory under it (never through a symbolic link); returns the files
        /// already in them (a directory that appears may already hold files by the time it is watched).
        mutating func add(_ directory: String) -> [String] {
            var status = stat()
            guard lstat(directory, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { return [] }
            let watch = inotify_add_watch(descriptor, directory, Self.mask | UInt32(IN_ONLYDIR))
            guard watch >= 0 else { return [] }
            paths[watch] = directory
            var files: [String] = []
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where !FileWatcher.isIgnored(name) {
                let path = directory + "/" + name
                guard lstat(path, &status) == 0 else { continue }
                switch status.st_mode & S_IFMT {
                case S_IFDIR: files += add(path)
                case S_IFREG: files.append(path)
                default: continue
                }
            }
            return files
        }

        /// The files the events in `bytes` name, new directories watched as they come.
        mutating func read(_ bytes: ArraySlice<UInt8>, roots: [String]) -> Set<String> {
            var changed: Set<String> = []
            bytes.withUnsafeBytes { raw in
                var offset = 0
                let header = MemoryLayout<inotify_event>.size
                while offset + header <= raw.count {
                    let watch = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameBytes = raw[(offset + header)..<min(raw.count, offset + header + length)]
                    offset += header + length
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                        changed.formUnion(roots)
                        continue
                    }
                    if mask & UInt32(IN_IGNORED) != 0 {
                        paths[watch] = nil
                        continue
                    }
                    guard let directory = paths[watch] else { continue }
                    let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
                    guard !name.isEmpty, !FileWatcher.isIgnored(name) else { continue }
                    let path = directory + "/" + name
                    if mask & UInt32(IN_ISDIR) != 0 {
                        if mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0 { changed.formUnion(add(path)) }
                        continue
                    }
                    if mask & (UInt32(IN_CREATE) | UInt32(IN_MOVED_TO)) != 0 { created.insert(path) }
                    changed.insert(path)
                }
            }
            return changed
        }
    }
}
