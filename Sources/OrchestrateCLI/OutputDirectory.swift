import OrchestrateGenerate

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Where generated files go: writes only what changed, atomically, and tells what differs.
struct OutputDirectory {
    let path: String
    /// The names in each directory written to, listed once: opening each of 2,000 files that do not exist yet
    /// to find it missing cost as much as writing them.
    private let listings = Listings()

    init(path: String) {
        self.path = path
    }

    func display(_ relative: String) -> String {
        path == "." ? relative : (path.hasSuffix("/") ? path : path + "/") + relative
    }

    private func existing(_ relative: String) -> String? {
        let target = display(relative)
        let (parent, name) = Self.split(target)
        guard listings.names(in: parent)?.contains(name) ?? true else { return nil }
        // Never through a link: `unsafePaths` refuses those before anything is read.
        return POSIX.readRegularFile(target).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The outputs generate must not touch, with why: a file or a directory on the way to one (below the output
    /// directory) that is a symbolic link, or not a regular file or directory. Reading one could print another
    /// file (an SSH key) into a CI log; writing one could replace it.
    func unsafePaths(_ files: [GeneratedFile]) -> [(path: String, why: String)] {
        var found: [(String, String)] = []
        var checked: Set<String> = []
        for file in files {
            let components = file.path.split(separator: "/").map(String.init)
            for depth in components.indices {
                let relative = components[...depth].joined(separator: "/")
                guard checked.insert(relative).inserted else { continue }
                let isFile = depth == components.count - 1
                switch POSIX.entry(display(relative)) {
                case .missing,
                    .regularFile where isFile, .directory where !isFile:
                    continue
                case .regularFile: found.append((display(relative), "is a file where a directory goes"))
                case .directory: found.append((display(relative), "is a directory"))
                case .other(let what): found.append((display(relative), "is \(what)"))
                }
            }
        }
        return found
    }

    /// Writes the file unless it already has these bytes; returns whether it wrote.
    func write(_ file: GeneratedFile) throws -> Bool {
        let old = existing(file.path)
        if old == file.contents { return false }
        let target = display(file.path)
        let (parent, _) = Self.split(target)
        do {
            if !parent.isEmpty, listings.names(in: parent) == nil {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
                listings.created(parent)
            }
        } catch {
            throw CLIError(.write, "cannot create \(parent)", underlying: error)
        }
        // A new file is written in place, created exclusively (so nothing that appeared meanwhile is overwritten);
        // a file that changes is replaced atomically (a temporary file renamed over it). Neither is synced: a
        // generated file can always be generated again, and an fsync per file made writing 2,000 files take seconds.
        let bytes = Array(file.contents.utf8)
        if old == nil, POSIX.writeFile(target, bytes, exclusive: true) { return true }
        // A name nobody could have committed in advance, created exclusively: a link planted at a predictable name
        // cannot redirect the write.
        let temporary = target + ".orchestrate-tmp-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        guard POSIX.writeFile(temporary, bytes, exclusive: true), POSIX.rename(temporary, to: target) else {
            let reason = POSIX.lastError()
            POSIX.remove(temporary)
            throw CLIError(.write, "cannot write \(target): \(reason)")
        }
        return true
    }

    /// `dir/sub/name` → (`dir/sub`, `name`); a bare name's directory is `.`.
    private static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// Directory listings, read when a directory is first asked about.
    private final class Listings {
        private var names: [String: Set<String>?] = [:]

        /// The names in `directory`, or nil when it does not exist (or cannot be listed).
        func names(in directory: String) -> Set<String>? {
            if let known = names[directory] { return known }
            let listed = (try? FileManager.default.contentsOfDirectory(atPath: directory)).map(Set.init)
            names[directory] = listed
            return listed
        }

        func created(_ directory: String) {
            names[directory] = Set<String>()
        }
    }

    /// The files of `files` that would replace a file orchestrate did not write: one on disk, different, without
    /// the header and not in the manifest on disk (`GeneratedMarker`).
    func foreign(_ files: [GeneratedFile]) -> [String] {
        let manifest = existing(GeneratedMarker.manifestPath).map(GeneratedMarker.listed(inManifest:)) ?? []
        return files.compactMap { file in
            guard let old = existing(file.path), old != file.contents else { return nil }
            return GeneratedMarker.isMarked(old) || manifest.contains(file.path) ? nil : display(file.path)
        }
    }

    /// A unified diff from the file on disk to the generated one, or nil when they are equal.
    func diff(for file: GeneratedFile) -> String? {
        let old = existing(file.path)
        guard old != file.contents else { return nil }
        return UnifiedDiff.make(
            old: old ?? "", new: file.contents, oldName: old == nil ? "/dev/null" : "a/" + file.path,
            newName: "b/" + file.path)
    }

    /// The `.mustache` files of a template directory, by template name.
    static func readTemplates(_ directory: String) throws -> [String: String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw CLIError(.write, "cannot read the template directory \(directory)", underlying: error)
        }
        var templates: [String: String] = [:]
        for name in names.sorted() where name.hasSuffix(".mustache") {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else {
                throw CLIError(.write, "cannot read \(directory)/\(name)")
            }
            templates[String(name.dropLast(".mustache".count))] = String(decoding: data, as: UTF8.self)
        }
        return templates
    }
}
