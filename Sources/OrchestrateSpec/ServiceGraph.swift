/// The services and the `dependsOn` edges between them: start order, dependents, and cycles.
///
/// Edges to services that do not exist are left out; `SpecRules` reports those. Inside, services are numbered in
/// spec order and edges name services by number, so walking the graph hashes no names.
public struct ServiceGraph: Sendable {
    /// One edge, with where it was written.
    public struct Edge: Sendable, Hashable {
        public var from: String
        public var to: String
        /// The index of the edge in `from`'s `dependsOn` list.
        public var index: Int
        public var location: SourceLocation
    }

    /// One edge by service numbers.
    private struct Link: Sendable {
        var to: Int
        /// The index of the edge in the depending service's `dependsOn` list.
        var index: Int
        var location: SourceLocation
    }

    /// Service names in the order the spec lists them.
    public let names: [String]
    private let numbers: [String: Int]
    /// Each service's dependencies, by number, in the order written; a repeated entry appears once.
    private let links: [[Link]]

    public init(_ spec: Spec) {
        names = spec.services.map(\.name.value)
        var numbers: [String: Int] = [:]
        numbers.reserveCapacity(names.count)
        for (number, name) in names.enumerated() where numbers[name] == nil { numbers[name] = number }
        self.numbers = numbers
        links = spec.services.map { service in
            var links: [Link] = []
            links.reserveCapacity(service.dependsOn.count)
            for (index, target) in service.dependsOn.enumerated() {
                guard let number = numbers[target.value], !links.contains(where: { $0.to == number }) else { continue }
                links.append(Link(to: number, index: index, location: target.location))
            }
            return links
        }
    }

    /// What `name` depends on directly, in the order written.
    public func dependencies(of name: String) -> [String] {
        guard let number = numbers[name] else { return [] }
        return links[number].map { names[$0.to] }
    }

    /// The services that depend on `name` directly, in spec order.
    public func dependents(of name: String) -> [String] {
        guard let number = numbers[name] else { return [] }
        return names.indices.filter { links[$0].contains { $0.to == number } }.map { names[$0] }
    }

    /// Services grouped in waves: each wave depends only on earlier waves, so its members can start in parallel.
    /// Nil when there is a cycle.
    public func startWaves() -> [[String]]? {
        var waiting = links.map(\.count)
        var dependents = [[Int]](repeating: [], count: names.count)
        for (number, outgoing) in links.enumerated() {
            for link in outgoing { dependents[link.to].append(number) }
        }
        var ready = names.indices.filter { waiting[$0] == 0 }
        var placed = 0
        var waves: [[String]] = []
        while !ready.isEmpty {
            waves.append(ready.map { names[$0] })
            placed += ready.count
            var next: [Int] = []
            for number in ready {
                for dependent in dependents[number] {
                    waiting[dependent] -= 1
                    if waiting[dependent] == 0 { next.append(dependent) }
                }
            }
            ready = next.sorted()
        }
        return placed == names.count ? waves : nil
    }

    /// Every cycle a depth-first search closes, each as the path that closes it (`a → b → c → a` is
    /// `["a", "b", "c", "a"]`) with the edge that closes it. Each cycle is reported once.
    public func cycles() -> [(path: [String], closingEdge: Edge)] {
        enum Mark: UInt8 { case unvisited, active, done }
        var marks = [Mark](repeating: .unvisited, count: names.count)
        var found: [(path: [String], closingEdge: Edge)] = []
        var reported = Set<[String]>()
        for start in names.indices where marks[start] == .unvisited {
            // An explicit stack of (service, next edge index) keeps deep graphs off the call stack.
            var stack: [(number: Int, next: Int)] = [(start, 0)]
            marks[start] = .active
            while let top = stack.last {
                let outgoing = links[top.number]
                guard top.next < outgoing.count else {
                    marks[top.number] = .done
                    stack.removeLast()
                    continue
                }
                stack[stack.count - 1].next += 1
                let link = outgoing[top.next]
                switch marks[link.to] {
                case .unvisited:
                    marks[link.to] = .active
                    stack.append((link.to, 0))
                case .active:
                    guard let first = stack.firstIndex(where: { $0.number == link.to }) else { continue }
                    let path = stack[first...].map { names[$0.number] } + [names[link.to]]
                    let edge = Edge(
                        from: names[top.number], to: names[link.to], index: link.index, location: link.location)
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
