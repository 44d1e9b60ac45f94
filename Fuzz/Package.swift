// swift-tools-version: 6.1
import PackageDescription

// A libFuzzer target over parse + validate + generate. Build and run with scripts/fuzz; it is a package of its own so
// the main package never builds with the fuzzer flags.
let package = Package(
    name: "orchestrate-fuzz",
    dependencies: [.package(name: "orchestrate", path: "..")],
    targets: [
        .executableTarget(
            name: "FuzzSpec",
            dependencies: [
                .product(name: "OrchestrateSpec", package: "orchestrate"),
                .product(name: "OrchestrateGenerate", package: "orchestrate"),
            ]
        )
    ]
)
