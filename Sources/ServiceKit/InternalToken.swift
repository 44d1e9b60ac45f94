/// The shared token that internal endpoints require in `X-Service-Token`.
public struct InternalToken: Sendable {
    public static let headerName = "X-Service-Token"

    private let expected: [UInt8]

    public init(_ token: String) {
        expected = Array(token.utf8)
    }

    /// Whether a presented token is this one, in time that depends only on the lengths, never on where the two
    /// first differ (so the token cannot be guessed byte by byte from response times). A missing token is false.
    public func accepts(_ presented: String?) -> Bool {
        guard let presented else { return false }
        let given = Array(presented.utf8)
        // An Int, not a byte: lengths that differ by a multiple of 256 must still differ.
        var difference = given.count ^ expected.count
        let length = max(given.count, expected.count)
        for index in 0..<length {
            let a = index < given.count ? given[index] : 0
            let b = index < expected.count ? expected[index] : 0
            difference |= Int(a ^ b)
        }
        return difference == 0 && !expected.isEmpty
    }
}
