import OrchestrateTestSupport
import Testing

@testable import OrchestrateSpec

@Suite(.timeLimit(.minutes(5)))
struct SourceTextTests {
    /// The scalar-by-scalar definition the fast path (ASCII eight bytes at a time) must agree with.
    static func reference(_ bytes: [UInt8]) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    @Test func firstInvalidByteAgreesWithTheScalarDecoder() {
        // Seeded, bounded: 5,000 inputs mixing long ASCII runs, multi-byte scalars and stray bytes at every offset.
        var random = SeededGenerator(seed: 0x5EED)
        let pieces: [[UInt8]] = [
            Array("services:\n".utf8), Array("é".utf8), Array("日本".utf8), Array("😀".utf8), [0xFF], [0xC3],
            [0xE2, 0x82],
            [0x80], [0xED, 0xA0, 0x80], Array(repeating: UInt8(ascii: "a"), count: 7), Array(repeating: 0x20, count: 9),
        ]
        for _ in 0..<5_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...12, using: &random) {
                bytes += Bool.random(using: &random) ? pieces[0] + pieces[9] : pieces.randomElement(using: &random)!
            }
            let fast = bytes.withUnsafeBufferPointer { SourceText.firstInvalidUTF8Offset($0) }
            #expect(fast == Self.reference(bytes), "\(bytes)")
        }
    }
}
