// swift-tools-version: 6.1
import PackageDescription

// A libFuzzer target over parse + validate. Build and run with scripts/fuzz; it is a package of its own so
// the main package never builds with the fuzzer flags.
let package = Package(
    name: "orchestrate-fuzz",
    dependencies: [.package(name: "orchestrate", path: "..")],
    targets: [
        .executableTarget(
            name: "FuzzSpec",
            dependencies: [.product(name: "OrchestrateSpec", package: "orchestrate")]
        )
    ]
)
