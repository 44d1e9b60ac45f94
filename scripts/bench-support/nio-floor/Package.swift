// swift-tools-version: 6.1
import PackageDescription

// The floor under the gateway's cost per request (scripts/bench gateway): the least a SwiftNIO proxy does, with
// none of the gateway's features. A package of its own, so the main package never builds it.
let package = Package(
    name: "nio-floor",
    dependencies: [.package(url: "https://github.com/apple/swift-nio", from: "2.80.0")],
    targets: [
        .executableTarget(
            name: "NIOFloor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ])
    ]
)
