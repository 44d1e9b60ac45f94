/// A Kubernetes resource quantity (`100m`, `0.5`, `128Mi`, `1G`, `1e3`), kept as written and as a number.
public struct Quantity: Sendable, Hashable, CustomStringConvertible {
    /// The text as written in the spec, which is what every generated file carries.
    public var text: String
    /// The amount in base units (cores, bytes), precise enough to compare a request with a limit.
    public var value: Double

    public init(text: String, value: Double) {
        self.text = text
        self.value = value
    }

    public var description: String { text }

    /// Parses the Kubernetes quantity grammar, without a sign other than `+`: resources are never negative.
    public init?(parsing text: String) {
        var copy = text
        guard let value = copy.withUTF8({ Self.parse($0) }) else { return nil }
        self.text = text
        self.value = value
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Double? {
        var end = bytes.count
        var start = 0
        if start < end, bytes[start] == UInt8(ascii: "+") { start += 1 }
        var multiplier = 1.0
        if end - start >= 2, bytes[end - 1] == UInt8(ascii: "i"), let factor = binaryFactor(bytes[end - 2]) {
            multiplier = factor
            end -= 2
        } else if end > start, let factor = decimalFactor(bytes[end - 1]) {
            multiplier = factor
            end -= 1
        } else if let exponentIndex = (start..<end).first(where: { bytes[$0] | 0x20 == UInt8(ascii: "e") }) {
            var index = exponentIndex + 1
            var negative = false
            if index < end, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
                negative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            guard index < end, end - index <= 3 else { return nil }
            var exponent = 0
            while index < end {
                guard bytes[index].isASCIIDigit else { return nil }
                exponent = exponent * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                index += 1
            }
            multiplier = power10(negative ? -exponent : exponent)
            end = exponentIndex
        }
        return decimal(UnsafeBufferPointer(rebasing: bytes[start..<end])).map { $0 * multiplier }
    }

    private static func binaryFactor(_ byte: UInt8) -> Double? {
        switch byte {
        case UInt8(ascii: "K"): 1024
        case UInt8(ascii: "M"): 1_048_576
        case UInt8(ascii: "G"): 1_073_741_824
        case UInt8(ascii: "T"): 1_099_511_627_776
        case UInt8(ascii: "P"): 1_125_899_906_842_624
        case UInt8(ascii: "E"): 1_152_921_504_606_846_976
        default: nil
        }
    }

    private static func decimalFactor(_ byte: UInt8) -> Double? {
        switch byte {
        case UInt8(ascii: "n"): 1e-9
        case UInt8(ascii: "u"): 1e-6
        case UInt8(ascii: "m"): 1e-3
        case UInt8(ascii: "k"): 1e3
        case UInt8(ascii: "M"): 1e6
        case UInt8(ascii: "G"): 1e9
        case UInt8(ascii: "T"): 1e12
        case UInt8(ascii: "P"): 1e15
        case UInt8(ascii: "E"): 1e18
        default: nil
        }
    }

    /// Digits with at most one `.`, at least one digit.
    private static func decimal(_ bytes: UnsafeBufferPointer<UInt8>) -> Double? {
        var digits = 0
        var dots = 0
        for byte in bytes {
            if byte == UInt8(ascii: ".") {
                dots += 1
            } else if byte.isASCIIDigit {
                digits += 1
            } else {
                return nil
            }
        }
        guard digits > 0, dots <= 1 else { return nil }
        return Double(String(decoding: bytes, as: UTF8.self))
    }

    private static func power10(_ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<abs(exponent) { result *= 10 }
        return exponent < 0 ? 1 / result : result
    }
}

extension Character {
    var isASCIIDigit: Bool { asciiValue.map { $0 >= 48 && $0 <= 57 } ?? false }
}
