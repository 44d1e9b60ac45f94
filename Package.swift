// swift-tools-version: 6.1
import PackageDescription

/// One list of settings for every Swift target, so the whole package builds under the same rules.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// A shop service: its library (routes, models, migrations; tested at router level) and a thin executable named as
/// services.yaml's `product:`.
func shopService(_ name: String, events: Bool = false) -> [Target] {
    [
        .target(
            name: name + "Core",
            dependencies: (events ? ["ServiceEvents"] : []) + [
                "ServiceKit", "OrchestrateContract", .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: name, dependencies: [.target(name: name + "Core")], swiftSettings: swiftSettings),
    ]
}

let package = Package(
    name: "orchestrate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "orchestrate", targets: ["orchestrate"]),
        // `up`'s OTLP decoder, installed beside orchestrate as orchestrate-otlp.
        .executable(name: "OTLPDecoder", targets: ["OTLPDecoder"]),
        .library(name: "OrchestrateSpec", targets: ["OrchestrateSpec"]),
        .library(name: "OrchestrateGenerate", targets: ["OrchestrateGenerate"]),
        .library(name: "ServiceKit", targets: ["ServiceKit"]),
        .executable(name: "UserService", targets: ["UserService"]),
        .executable(name: "PaymentService", targets: ["PaymentService"]),
        .executable(name: "OrderService", targets: ["OrderService"]),
        .executable(name: "APIGateway", targets: ["APIGateway"]),
        .executable(name: "NotificationService", targets: ["NotificationService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        // HMAC-SHA256 for `orchestrate token` (the CLI signs a development JWT without jwt-kit's dependencies).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        // The service stack: only ServiceKit and the shop's services depend on these, never the orchestrate CLI.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // The server's own handler sits behind Hummingbird's HTTP codec, so it speaks the same part types.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.3.0"),
        .package(url: "https://github.com/vapor/fluent-kit", from: "1.57.0"),
        .package(url: "https://github.com/vapor/fluent-sqlite-driver", from: "4.9.0"),
        .package(url: "https://github.com/vapor/fluent-postgres-driver", from: "2.14.0"),
        .package(url: "https://github.com/vapor/sql-kit", from: "3.36.0"),
        // ServiceEvents' embedded event log talks to SQLite directly (BEGIN IMMEDIATE, RETURNING, busy_timeout).
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.10.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.0"),
        // OTLP over HTTP only (Jaeger and collectors take it on 4318): the gRPC exporter would add grpc-swift to the build.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        // Trace context without an exporter (ServiceKit's PropagatingTracer); swift-otel resolves it already.
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The supervisor decodes the OTLP traces the services export (already resolved for swift-otel).
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.31.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]
        ),
        // The contract between orchestrate and every service it runs: the environment's variable names, the route
        // table file, the path-prefix rules. No dependencies, no Foundation: the CLI, the supervisor, ServiceKit and
        // the gateway all import it, and a team's own Swift service can too.
        .target(name: "OrchestrateContract", swiftSettings: swiftSettings),
        .target(
            name: "OrchestrateSpec",
            dependencies: ["CLibYAML", "OrchestrateContract"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OrchestrateGenerate",
            dependencies: [
                "OrchestrateSpec", "OrchestrateContract",
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OrchestrateCLI",
            dependencies: [
                "OrchestrateSpec", "OrchestrateContract",
                "OrchestrateGenerate",
                "OrchestrateSupervisor", "DNSWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "orchestrate",
            dependencies: ["OrchestrateCLI"],
            swiftSettings: swiftSettings
        ),
        // A span as the dashboard keeps it: what the decoder sends the supervisor. No dependencies.
        .target(name: "OTLPSpan", swiftSettings: swiftSettings),
        // OTLP/HTTP trace exports (protobuf) as spans: swift-otel's generated message types, committed.
        .target(
            name: "OTLPTraceWire",
            dependencies: ["OTLPSpan", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: swiftSettings
        ),
        // orchestrate-otlp: the decoder in a process of its own, so that `orchestrate` links no protobuf.
        .executableTarget(name: "OTLPDecoder", dependencies: ["OTLPSpan", "OTLPTraceWire"], swiftSettings: swiftSettings),
        // DNS messages, both sides: ServiceKit's resolver and the supervisor's server. No dependencies.
        .target(name: "DNSWire", swiftSettings: swiftSettings),
        // Forks a child with its own process group and, on Linux, a parent-death signal (posix_spawn can do
        // neither the prctl nor the check after it).
        .target(name: "CSupervisorSpawn"),
        // The local runtime of `orchestrate up`: processes, probes, restarts, DNS, logs, the control socket.
        .target(
            name: "OrchestrateSupervisor",
            dependencies: [
                "OrchestrateSpec", "OrchestrateContract", "DNSWire", "CSupervisorSpawn", "OTLPSpan",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OrchestrateSupervisorTests",
            dependencies: [
                "OrchestrateSupervisor", "DNSWire", "ServiceKit", "OrchestrateTestSupport", "OrchestrateSpec",
                "OrchestrateContract", "OTLPTraceWire", "OTLPSpan",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // What every shop service shares. Not a dependency of the orchestrate CLI, so the CLI builds without it.
        .target(
            name: "ServiceKit",
            dependencies: [
                "DNSWire", "OrchestrateContract",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "FluentSQLiteDriver", package: "fluent-sqlite-driver"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // Events for the services that publish or consume them: the outbox, its relay, the consumers, the Redis Streams
        // broker (with its own RESP client) and the embedded SQLite event log. A ServiceComponent of ServiceKit.
        .target(
            name: "ServiceEvents",
            dependencies: [
                "ServiceKit", "OrchestrateContract",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "SQLKit", package: "sql-kit"),
                // The embedded event log talks to SQLite directly (BEGIN IMMEDIATE, RETURNING, busy_timeout).
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ServiceEventsTests",
            dependencies: [
                "ServiceEvents", "ServiceKit", "OrchestrateTestSupport",
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ServiceKitTests",
            dependencies: [
                "ServiceKit", "OrchestrateContract",
                "OrchestrateTestSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ],
            swiftSettings: swiftSettings
        ),
    ] + shopService("UserService") + shopService("PaymentService", events: true)
        + shopService("OrderService", events: true) + shopService("NotificationService", events: true) + [
            // The gateway: jwt-kit, and its own NIO handlers on Hummingbird's server.
            .target(
                name: "APIGatewayCore",
                dependencies: [
                    "ServiceKit", "OrchestrateContract", .product(name: "JWTKit", package: "jwt-kit"),
                    .product(name: "Hummingbird", package: "hummingbird"),
                    .product(name: "HummingbirdCore", package: "hummingbird"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                    .product(name: "NIOHTTP1", package: "swift-nio"),
                    .product(name: "Metrics", package: "swift-metrics"),
                    .product(name: "Tracing", package: "swift-distributed-tracing"),
                    .product(name: "Logging", package: "swift-log"),
                ],
                swiftSettings: swiftSettings
            ),
            .executableTarget(name: "APIGateway", dependencies: ["APIGatewayCore"], swiftSettings: swiftSettings),
            .testTarget(
                name: "ShopTests",
                dependencies: [
                    "UserServiceCore", "PaymentServiceCore", "OrderServiceCore", "APIGatewayCore",
                    "NotificationServiceCore",
                    "ServiceKit", "ServiceEvents", "OrchestrateContract",
                    "OrchestrateTestSupport",
                    .product(name: "HummingbirdTesting", package: "hummingbird"),
                    .product(name: "JWTKit", package: "jwt-kit"),
                    .product(name: "AsyncHTTPClient", package: "async-http-client"),
                    .product(name: "Hummingbird", package: "hummingbird"),
                    .product(name: "FluentKit", package: "fluent-kit"),
                    .product(name: "NIOEmbedded", package: "swift-nio"),
                ],
                swiftSettings: swiftSettings
            ),
            .target(
                name: "OrchestrateTestSupport",
                dependencies: ["CSupervisorSpawn"],
                path: "Tests/OrchestrateTestSupport",
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "OrchestrateSpecTests",
                dependencies: ["OrchestrateSpec", "OrchestrateContract", "OrchestrateTestSupport"],
                exclude: ["Fixtures"],
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "OrchestrateGenerateTests",
                dependencies: [
                    "OrchestrateGenerate", "OrchestrateSpec", "OrchestrateContract", "OrchestrateTestSupport",
                ],
                exclude: ["Support"],
                swiftSettings: swiftSettings
            ),
            .testTarget(
                name: "OrchestrateCLITests",
                dependencies: ["OrchestrateCLI", "OrchestrateSpec", "OrchestrateTestSupport"],
                swiftSettings: swiftSettings
            ),
        ]
)
