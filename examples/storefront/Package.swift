// swift-tools-version: 6.1
import PackageDescription

// A project that is not the shop: two plain Hummingbird services that know nothing of orchestrate (no ServiceKit,
// no DNS of its own) and a Python service, run by `orchestrate up` from services.yaml.
let package = Package(
    name: "storefront",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .executableTarget(name: "Catalog", dependencies: [.product(name: "Hummingbird", package: "hummingbird")]),
        .executableTarget(
            name: "Storefront",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]),
    ]
)
