import ArgumentParser
import OrchestrateSpec

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Reads and checks a spec for a command that acts on it (`generate`, `up`): the diagnostics of `validate` go to
/// standard error; an unreadable file exits 2, an invalid spec exits 1 after `failure` is printed.
enum LoadSpec {
    static func load(
        _ file: String, format: DiagnosticFormat, color: ColorMode, failure: String
    ) throws -> Spec {
        let source: SpecSource
        do {
            source = try SpecSource.read(file, displayName: file)
        } catch {
            POSIX.printError("orchestrate: \(error)")
            throw ExitCode.usage
        }
        let result = SpecLoader.load(source.bytes)
        if !result.diagnostics.isEmpty {
            var renderer = DiagnosticRenderer(
                format: format,
                useColor: color.isEnabled(forDescriptor: 2, environment: ProcessInfo.processInfo.environment))
            renderer.add(file: file, source: source, diagnostics: result.diagnostics, serviceCount: nil)
            POSIX.printError(String(renderer.finish().dropLast()))
        }
        guard let spec = result.spec, !result.hasErrors else {
            POSIX.printError("orchestrate: \(file) is invalid; \(failure)")
            throw ExitCode.failure
        }
        return spec
    }

    /// Reads and checks the spec again (`up --watch`): the spec when it is valid, and the diagnostics as text
    /// (file:line:column, the fix), uncoloured, for the log.
    static func check(_ file: String) -> (spec: Spec?, diagnostics: String) {
        let source: SpecSource
        do {
            source = try SpecSource.read(file, displayName: file)
        } catch {
            return (nil, "\(error)")
        }
        let result = SpecLoader.load(source.bytes)
        var renderer = DiagnosticRenderer(format: .text, useColor: false)
        if !result.diagnostics.isEmpty {
            renderer.add(file: file, source: source, diagnostics: result.diagnostics, serviceCount: nil)
        }
        let text = result.diagnostics.isEmpty ? "" : String(renderer.finish().dropLast())
        return (result.hasErrors ? nil : result.spec, text)
    }
}
