/// The services and the `dependsOn` edges between them: start order, dependents, and cycles.
///
/// Edges to services that do not exist are left out; `SpecRules` reports those.
public struct ServiceGraph: Sendable {
    /// One edge, with where it was written.
    public struct Edge: Sendable, Hashable {
        public var from: String
        public var to: String
        /// The index of the edge in `from`'s `dependsOn` list.
        public var index: Int
        public var location: SourceLocation
    }

    /// Service names in the order the spec lists them.
    public let names: [String]
    private let edges: [String: [Edge]]

    public init(_ spec: Spec) {
        names = spec.services.map(\.name.value)
        let known = Set(names)
        var edges: [String: [Edge]] = [:]
        for service in spec.services {
            let repeats = Set(service.dependsOn.indicesOfRepeats { $0.value })
            edges[service.name.value] = service.dependsOn.enumerated().compactMap { index, target in
                guard known.contains(target.value), !repeats.contains(index) else { return nil }
                return Edge(from: service.name.value, to: target.value, index: index, location: target.location)
            }
        }
        self.edges = edges
    }

    /// What `name` depends on directly, in the order written.
    public func dependencies(of name: String) -> [String] {
        edges[name, default: []].map(\.to)
    }

    /// The services that depend on `name` directly, in spec order.
    public func dependents(of name: String) -> [String] {
        names.filter { edges[$0, default: []].contains { $0.to == name } }
    }

    /// Services grouped in waves: each wave depends only on earlier waves, so its members can start in parallel.
    /// Nil when there is a cycle.
    public func startWaves() -> [[String]]? {
        var remaining = Dictionary(uniqueKeysWithValues: names.map { ($0, Set(dependencies(of: $0))) })
        var waves: [[String]] = []
        while !remaining.isEmpty {
            let ready = names.filter { remaining[$0]?.isEmpty == true }
            guard !ready.isEmpty else { return nil }
            for name in ready { remaining[name] = nil }
            for key in remaining.keys { remaining[key]?.subtract(ready) }
            waves.append(ready)
        }
        return waves
    }

    /// Every cycle a depth-first search closes, each as the path that closes it (`a → b → c → a` is
    /// `["a", "b", "c", "a"]`) with the edge that closes it. Each cycle is reported once.
    public func cycles() -> [(path: [String], closingEdge: Edge)] {
        enum Mark { case active, done }
        var marks: [String: Mark] = [:]
        var found: [(path: [String], closingEdge: Edge)] = []
        var reported = Set<[String]>()
        for start in names where marks[start] == nil {
            // An explicit stack of (node, next edge index) keeps deep graphs off the call stack.
            var stack: [(name: String, next: Int)] = [(start, 0)]
            marks[start] = .active
            while let top = stack.last {
                let outgoing = edges[top.name, default: []]
                guard top.next < outgoing.count else {
                    marks[top.name] = .done
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].next += 1
                let edge = outgoing[top.next]
                switch marks[edge.to] {
                case nil:
                    marks[edge.to] = .active
                    stack.append((edge.to, 0))
                case .active:
                    let members = stack.map(\.name)
                    guard let first = members.firstIndex(of: edge.to) else { continue }
                    let path = Array(members[first...]) + [edge.to]
                    if reported.insert(Self.canonical(path)).inserted { found.append((path, edge)) }
                case .done:
                    continue
                }
            }
        }
        return found
    }

    /// The cycle rotated to start at its least name, so the same cycle found twice compares equal.
    private static func canonical(_ path: [String]) -> [String] {
        let ring = path.dropLast()
        guard let least = ring.indices.min(by: { ring[$0] < ring[$1] }) else { return path }
        return Array(ring[least...] + ring[..<least])
    }
}
