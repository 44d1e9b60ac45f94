import Foundation
import OrchestrateSpec

/// The bytes of one spec file and its lines, for showing the line a diagnostic points at.
struct SpecSource {
    var name: String
    var bytes: [UInt8]

    /// A file that could not be read; its description is the message the user sees.
    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads a spec from a path, or from standard input for `-`. A file over the size limit is not read whole:
    /// only enough of it to let the loader say it is too large.
    static func read(_ path: String, displayName: String) throws -> SpecSource {
        if path == "-" {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            return SpecSource(name: displayName, bytes: Array(data))
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ReadError(description: "cannot read \(path): no such file")
        }
        guard !isDirectory.boolValue else { throw ReadError(description: "cannot read \(path): it is a directory") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ReadError(description: "cannot read \(path): permission denied")
        }
        defer { try? handle.close() }
        do {
            let data = try handle.read(upToCount: SpecLoader.maximumFileSize + 1) ?? Data()
            return SpecSource(name: displayName, bytes: Array(data))
        } catch {
            throw ReadError(description: "cannot read \(path): \(error.localizedDescription)")
        }
    }

    /// The text of a 1-based line, without its line break; nil past the end or for undecodable text.
    func line(_ number: Int) -> String? {
        var current = 1
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "\n") {
                if current == number { break }
                current += 1
                start = index + 1
            }
            index += 1
        }
        guard current == number, start <= index else { return nil }
        var slice = bytes[start..<index]
        if slice.last == UInt8(ascii: "\r") { slice = slice.dropLast() }
        return String(validating: slice, as: UTF8.self)
    }
}
