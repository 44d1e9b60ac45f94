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

    private static let suffixes: [(String, Double)] = [
        ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776),
        ("Pi", 1_125_899_906_842_624), ("Ei", 1_152_921_504_606_846_976),
        ("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15),
        ("E", 1e18),
    ]

    /// Parses the Kubernetes quantity grammar, without a sign: resources are never negative.
    public init?(parsing text: String) {
        var number = Substring(text)
        if number.hasPrefix("+") { number = number.dropFirst() }
        var multiplier = 1.0
        if let (suffix, factor) = Self.suffixes.first(where: { number.hasSuffix($0.0) }) {
            number = number.dropLast(suffix.count)
            multiplier = factor
        } else if let exponentIndex = number.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            var exponent = number[number.index(after: exponentIndex)...]
            if exponent.hasPrefix("+") || exponent.hasPrefix("-") { exponent = exponent.dropFirst() }
            guard !exponent.isEmpty, exponent.allSatisfy(\.isASCIIDigit),
                let power = Double(number[number.index(after: exponentIndex)...])
            else { return nil }
            number = number[..<exponentIndex]
            multiplier = Self.power10(power)
        }
        guard Self.isDecimal(number), let base = Double(number) else { return nil }
        self.text = text
        self.value = base * multiplier
    }

    private static func isDecimal(_ text: Substring) -> Bool {
        var digits = 0
        var dots = 0
        for character in text {
            if character == "." {
                dots += 1
            } else if character.isASCIIDigit {
                digits += 1
            } else {
                return false
            }
        }
        return digits > 0 && dots <= 1
    }

    private static func power10(_ exponent: Double) -> Double {
        var result = 1.0
        let steps = Int(min(abs(exponent), 400))
        for _ in 0..<steps { result *= exponent < 0 ? 0.1 : 10 }
        return result
    }
}

extension Character {
    var isASCIIDigit: Bool { asciiValue.map { $0 >= 48 && $0 <= 57 } ?? false }
}
