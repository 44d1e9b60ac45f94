import OrchestrateContract

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The route table as the gateway reads it: the contract's type, written by JSONEncoder, so whatever the
/// gateway decodes is exactly what was encoded.
enum RouteTableJSON {
    static func encode(_ table: RouteTableFile) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(table), as: UTF8.self) + "\n"
        } catch {
            // Strings, integers and finite doubles only: encoding cannot fail.
            preconditionFailure("the route table does not encode: \(error)")
        }
    }
}
