#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import OrchestrateGenerate

/// Where generated files go: writes only what changed, atomically, and tells what differs.
struct OutputDirectory {
    let path: String

    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    func display(_ relative: String) -> String {
        path == "." ? relative : (path.hasSuffix("/") ? path : path + "/") + relative
    }

    private func existing(_ relative: String) -> String? {
        FileManager.default.contents(atPath: display(relative)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Writes the file unless it already has these bytes; returns whether it wrote.
    func write(_ file: GeneratedFile) throws -> Bool {
        if existing(file.path) == file.contents { return false }
        let target = display(file.path)
        let parent = target.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        do {
            if !parent.isEmpty {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            }
        } catch {
            throw WriteError(description: "cannot create \(parent): \(error)")
        }
        // Atomic (a temporary file renamed over the target) but not synced: a generated file can always be
        // generated again, and an fsync per file made writing 2,000 files take seconds.
        let temporary = target + ".orchestrate-tmp"
        guard POSIX.writeFile(temporary, Array(file.contents.utf8)), POSIX.rename(temporary, to: target) else {
            let reason = POSIX.lastError()
            POSIX.remove(temporary)
            throw WriteError(description: "cannot write \(target): \(reason)")
        }
        return true
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
            throw WriteError(description: "cannot read the template directory \(directory): \(error)")
        }
        var templates: [String: String] = [:]
        for name in names.sorted() where name.hasSuffix(".mustache") {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else {
                throw WriteError(description: "cannot read \(directory)/\(name)")
            }
            templates[String(name.dropLast(".mustache".count))] = String(decoding: data, as: UTF8.self)
        }
        return templates
    }
}
