public import Foundation

/// The project under examples/storefront: two plain Hummingbird services and a Python one, which is not the shop.
/// scripts/test builds it once (`swift build --package-path examples/storefront`) before the tests, which share
/// that build.
public enum ExampleProject {
    public static let directory = ExternalTool.packageRoot.appendingPathComponent("examples/storefront")

    /// Where its products are (`ORCHESTRATE_EXAMPLE_BIN`, else its .build/debug); nil until it is built.
    public static var products: URL? {
        let path =
            ProcessInfo.processInfo.environment["ORCHESTRATE_EXAMPLE_BIN"]
            ?? directory.appendingPathComponent(".build/debug").path
        let url = URL(fileURLWithPath: path)
        let built = ["Catalog", "Storefront"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: url.appendingPathComponent($0).path)
        }
        return built ? url : nil
    }

    /// Its services.yaml with each port replaced by one the OS just handed out, so runs do not meet.
    public static func spec(ports: [Int: Int]) throws -> String {
        var text = try String(contentsOf: directory.appendingPathComponent("services.yaml"), encoding: .utf8)
        for (declared, free) in ports {
            text = text.replacingOccurrences(of: "port: \(declared)\n", with: "port: \(free)\n")
        }
        return text
    }

    /// The ports its services.yaml declares.
    public static let declaredPorts = [8000, 8080, 8081, 8082]
}

/// The copy of examples/storefront that `up --watch` tests edit: `.build/watch-example/storefront`, its own `.build`
/// kept between runs (scripts/test builds it), its sources put back from examples/storefront before each test.
extension ExampleProject {
    public static let watchCopy = ExternalTool.packageRoot.appendingPathComponent(".build/watch-example/storefront")

    public static var watchCopyIsBuilt: Bool {
        ["Catalog", "Storefront"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: watchCopy.appendingPathComponent(".build/debug/\($0)").path)
        }
    }

    /// Puts the example's files back into the copy (what a test edited), and forgets the copy's `up` state.
    public static func resetWatchCopy() throws -> URL {
        let manager = FileManager.default
        try? manager.removeItem(at: watchCopy.appendingPathComponent(".orchestrate"))
        for name in ["Package.swift", "Package.resolved", "services.yaml", "recommender.py", "Sources"] {
            let target = watchCopy.appendingPathComponent(name)
            try? manager.removeItem(at: target)
            try manager.copyItem(at: directory.appendingPathComponent(name), to: target)
        }
        return watchCopy
    }
}
