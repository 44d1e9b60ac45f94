import Foundation

/// Which sources each product of a Swift package is built from, as the package itself says
/// (`swift package describe --type json`): the product's targets and every target they depend on, transitively, as
/// directories. What `up --watch` watches; nobody writes watch paths.
public struct PackageSources: Sendable, Equatable {
    /// The package's directory (absolute).
    public var packageDirectory: String
    /// Each product, with the source directories (absolute) of the targets it is built from.
    public var products: [String: [String]]

    public init(packageDirectory: String, products: [String: [String]]) {
        self.packageDirectory = packageDirectory
        self.products = products
    }

    /// The part of `swift package describe --type json` read here.
    private struct Description: Decodable {
        struct Product: Decodable {
            var name: String
            var targets: [String]
        }
        struct Target: Decodable {
            var name: String
            var path: String
            var targetDependencies: [String]?

            enum CodingKeys: String, CodingKey {
                case name, path
                case targetDependencies = "target_dependencies"
            }
        }
        var path: String
        var products: [Product]
        var targets: [Target]
    }

    /// Reads the description; a target's dependencies are followed through the package's own targets.
    static func parse(_ json: Data) throws -> PackageSources {
        let description = try JSONDecoder().decode(Description.self, from: json)
        let targets = Dictionary(description.targets.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var products: [String: [String]] = [:]
        for product in description.products {
            var seen: Set<String> = []
            var pending = product.targets
            var directories: [String] = []
            while let name = pending.popLast() {
                guard seen.insert(name).inserted, let target = targets[name] else { continue }
                directories.append(
                    target.path.hasPrefix("/") ? target.path : description.path + "/" + target.path)
                pending += target.targetDependencies ?? []
            }
            products[product.name] = directories.sorted()
        }
        return PackageSources(packageDirectory: description.path, products: products)
    }

    /// Every directory some product is built from.
    public var directories: Set<String> { Set(products.values.joined()) }

    /// The products a change to `path` affects: those built from a directory that holds it, or every product for
    /// the manifest (`Package.swift`, `Package@swift-*.swift`) or `Package.resolved`.
    public func products(affectedBy path: String) -> Set<String> {
        let name = (path as NSString).lastPathComponent
        if (path as NSString).deletingLastPathComponent == packageDirectory,
            name == "Package.swift" || name == "Package.resolved"
                || (name.hasPrefix("Package@swift-") && name.hasSuffix(".swift"))
        {
            return Set(products.keys)
        }
        return Set(
            products.filter { _, directories in directories.contains { path.hasPrefix($0 + "/") } }.map(\.key))
    }

    /// Whether the path is a package's manifest: its products and targets may have changed.
    public func isManifest(_ path: String) -> Bool {
        (path as NSString).deletingLastPathComponent == packageDirectory
            && (path as NSString).lastPathComponent.hasPrefix("Package")
            && (path as NSString).lastPathComponent.hasSuffix(".swift")
    }
}
