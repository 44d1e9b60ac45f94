// swift-tools-version: 6.1
import PackageDescription

/// One list of settings for every Swift target, so the whole package builds under the same rules.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "orchestrate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "orchestrate", targets: ["orchestrate"]),
        .library(name: "OrchestrateSpec", targets: ["OrchestrateSpec"]),
        .library(name: "ServiceKit", targets: ["ServiceKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]
        ),
        .target(
            name: "OrchestrateSpec",
            dependencies: ["CLibYAML"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OrchestrateGenerate",
            dependencies: [
                "OrchestrateSpec",
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OrchestrateCLI",
            dependencies: [
                "OrchestrateSpec",
                "OrchestrateGenerate",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "orchestrate",
            dependencies: ["OrchestrateCLI"],
            swiftSettings: swiftSettings
        ),
        // What every shop service shares. Not a dependency of the orchestrate CLI, so the CLI builds without it.
        .target(
            name: "ServiceKit",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ServiceKitTests",
            dependencies: [
                "ServiceKit",
                "OrchestrateTestSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "OrchestrateTestSupport",
            path: "Tests/OrchestrateTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OrchestrateSpecTests",
            dependencies: ["OrchestrateSpec", "OrchestrateTestSupport"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OrchestrateGenerateTests",
            dependencies: ["OrchestrateGenerate", "OrchestrateSpec", "OrchestrateTestSupport"],
            exclude: ["Support"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "OrchestrateCLITests",
            dependencies: ["OrchestrateCLI", "OrchestrateSpec"],
            swiftSettings: swiftSettings
        ),
    ]
)
