import ArgumentParser

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How diagnostics are printed.
enum DiagnosticFormat: String, ExpressibleByArgument, CaseIterable {
    /// For people: the location, the source line with a caret, the hint.
    case text
    /// For tools: one JSON array of every diagnostic.
    case json
    /// For GitHub Actions: `::error file=…,line=…,col=…::` workflow commands that annotate the pull request.
    case github
}

/// Whether text output is coloured.
enum ColorMode: String, ExpressibleByArgument, CaseIterable {
    case auto
    case always
    case never

    /// `auto` colours a terminal only, and never when `NO_COLOR` is set (no-color.org) or `TERM` is `dumb`.
    func isEnabled(forDescriptor descriptor: Int32, environment: [String: String]) -> Bool {
        switch self {
        case .always: return true
        case .never: return false
        case .auto:
            if let noColor = environment["NO_COLOR"], !noColor.isEmpty { return false }
            if environment["TERM"] == "dumb" { return false }
            return isatty(descriptor) == 1
        }
    }
}
