@testable import OrchestrateGenerate

/// Valid specs full of values that break naive generators: YAML 1.1 booleans as names, numbers that are names,
/// quotes, `#`, `: `, `$`, unicode, empty strings, route paths with `;`, `'`, `(`, `$`.
///
/// Deterministic for a seed, so a failing spec can be written out again and read.
struct HostileSpecs {
    /// SplitMix64: small, seedable, good enough to pick test values.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ range: ClosedRange<Int>) -> Int {
            range.lowerBound + Int(next() % UInt64(range.count))
        }
        mutating func chance(_ percent: Int) -> Bool { int(1...100) <= percent }
        mutating func pick<T>(_ items: [T]) -> T { items[int(0...(items.count - 1))] }
    }

    static let serviceNames = [
        "yes", "no", "on", "off", "y", "n", "true", "false", "null", "nan", "inf", "e1", "o0", "x-y", "api",
        "n0-1", "a", "z9", "yes-no",
    ]
    static let databaseNames = ["007", "123", "1e3", "0x1f", "on", "no", "db-yes", "x", "null", "9"]
    static let envNames = ["ON", "YES", "NO", "NULL", "TRUE", "Y", "A_B", "_X", "x1", "lower"]
    static let values = OutputEscapingTests.hostile
    static let paths = [
        "/a$b", "/a;b", "/a'b", "/a(b)", "/x*y+z", "/~u", "/%20x", "/a:b@c", "/x=1&y", "/!", "/a,b", "/v1.2",
        "/yes", "/no", "/null", "/007", "/-", "/_",
    ]
    static let events = ["order.created", "yes.no", "on", "null.null", "007.x"]

    /// The text of one valid spec.
    static func spec(seed: UInt64) -> String {
        var random = Random(state: seed)
        let yaml = OutputEscaping.yaml
        var lines = ["version: 1", "name: \(yaml(random.pick(["yes", "on", "null", "007", "shop", "1e3"])))"]
        lines.append(
            "images: { registry: \(yaml("reg.example.com:5000/team")), tag: \(yaml(random.pick(["007", "1e3", "yes", "v1_2", "1.0.0"]))) }"
        )
        let broker = random.chance(70)
        if broker { lines.append("broker: { engine: redis }") }
        let count = random.int(1...6)
        var names = serviceNames
        var chosen: [String] = []
        for _ in 0..<count {
            let index = random.int(0...(names.count - 1))
            chosen.append(names.remove(at: index))
        }
        lines.append("gateway:")
        lines.append("  service: \(yaml(chosen[0]))")
        lines.append("  jwt: { secret: \(yaml("jwt")), issuer: \(yaml(random.pick(values))) }")
        var databases = databaseNames
        var pathPool = paths
        var published: [String] = []
        lines.append("services:")
        for (index, name) in chosen.enumerated() {
            lines.append("  \(yaml(name)):")
            lines.append("    product: \(yaml("Product\(index)"))")
            lines.append("    port: \(2000 + index * 7 + random.int(0...5))")
            if index == 0 { lines.append("    public: true") }
            if random.chance(30) {
                lines.append(
                    "    autoscaling: { minReplicas: \(random.int(1...2)), maxReplicas: \(random.int(2...5)) }")
            } else {
                lines.append("    replicas: \(random.int(0...3))")
            }
            if random.chance(40) {
                lines.append(
                    "    args: [\((0..<random.int(1...3)).map { _ in yaml(random.pick(values)) }.joined(separator: ", "))]"
                )
            }
            var env: [String] = []
            var envPool = envNames
            for _ in 0..<random.int(0...4) {
                let envName = envPool.remove(at: random.int(0...(envPool.count - 1)))
                if random.chance(25) {
                    env.append(
                        "      \(yaml(envName)): { secret: \(yaml(random.pick(["s-1", "yes", "007"]))), key: \(yaml(random.pick(["value", "a.b", "x_y", "007"]))) }"
                    )
                } else {
                    env.append("      \(yaml(envName)): \(yaml(random.pick(values)))")
                }
            }
            if !env.isEmpty { lines.append("    env:"); lines += env }
            if random.chance(60), !databases.isEmpty {
                let database = databases.remove(at: random.int(0...(databases.count - 1)))
                lines.append(
                    "    database: { name: \(yaml(database)), storage: \(yaml(random.pick(["1Gi", "500M", "2.5Gi"]))) }"
                )
            }
            let dependencies = chosen[..<index].filter { _ in random.chance(40) }
            if !dependencies.isEmpty {
                lines.append("    dependsOn: [\(dependencies.map(yaml).joined(separator: ", "))]")
            }
            if broker, random.chance(40) {
                let event = random.pick(events)
                published.append(event)
                lines.append("    publishes: [\(yaml(event))]")
            }
            if broker, !published.isEmpty, random.chance(40) {
                lines.append("    subscribes: [\(yaml(random.pick(published)))]")
            }
            if random.chance(50) {
                let check = random.pick([
                    "http: \(yaml(random.pick(paths)))", "tcp: \(2000 + index * 7)",
                    "command: [\(yaml("healthcheck")), \(yaml(random.pick(values)))]",
                ])
                lines.append(
                    "    probes: { readiness: { \(check), interval: \(yaml(random.pick(["1500ms", "2s", "1m30s"]))) }, liveness: \(yaml(random.pick(paths))) }"
                )
            }
            if random.chance(60), !pathPool.isEmpty {
                let prefix = pathPool.remove(at: random.int(0...(pathPool.count - 1)))
                var route = "{ prefix: \(yaml(prefix)), auth: \(random.pick(["jwt", "none"]))"
                if random.chance(70) { route += ", rewrite: \(yaml(random.pick(paths + ["/"])))" }
                if random.chance(50) { route += ", rateLimit: { rps: \(random.int(1...100)) }" }
                if random.chance(40) { route += ", methods: [GET, \(random.pick(["POST", "DELETE", "PATCH"]))]" }
                if random.chance(30) { route += ", timeout: \(yaml(random.pick(["250ms", "3s", "1m"])))" }
                lines.append("    routes: [\(route) }]")
            }
            if random.chance(50) {
                lines.append(
                    "    resources: { cpu: \(yaml(random.pick(["100m", "0.25", "1"]))), memoryLimit: \(yaml(random.pick(["256Mi", "1G", "1e9"]))) }"
                )
            }
            if random.chance(30) { lines.append("    restart: \(random.pick(["always", "on-failure", "never"]))") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
