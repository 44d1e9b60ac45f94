/// A duration written as Go and Kubernetes write them (`500ms`, `5s`, `1m30s`, `2h`), kept in milliseconds.
public struct SpecDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var milliseconds: Int

    public init(milliseconds: Int) {
        self.milliseconds = milliseconds
    }

    /// Parses one or more `NUMBER UNIT` groups, units `ms`, `s`, `m`, `h`; nil for anything else.
    public init?(parsing text: String) {
        var total = 0
        var number = 0
        var digits = 0
        var groups = 0
        var characters = Array(text.utf8)[...]
        while let byte = characters.first {
            if byte.isASCIIDigit {
                guard digits < 9 else { return nil }
                number = number * 10 + Int(byte - UInt8(ascii: "0"))
                digits += 1
                characters = characters.dropFirst()
                continue
            }
            guard digits > 0 else { return nil }
            let factor: Int
            if characters.starts(with: "ms".utf8) {
                factor = 1
                characters = characters.dropFirst(2)
            } else {
                switch byte {
                case UInt8(ascii: "s"): factor = 1_000
                case UInt8(ascii: "m"): factor = 60_000
                case UInt8(ascii: "h"): factor = 3_600_000
                default: return nil
                }
                characters = characters.dropFirst()
            }
            let (product, overflow) = number.multipliedReportingOverflow(by: factor)
            let (sum, sumOverflow) = total.addingReportingOverflow(product)
            guard !overflow, !sumOverflow else { return nil }
            total = sum
            number = 0
            digits = 0
            groups += 1
        }
        guard digits == 0, groups > 0 else { return nil }
        self.milliseconds = total
    }

    /// Whole seconds, rounded up, for formats that count in seconds (Kubernetes probes).
    public var seconds: Int { (milliseconds + 999) / 1_000 }

    public static func < (lhs: SpecDuration, rhs: SpecDuration) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// The shortest spelling: `1m30s`, `500ms`, `2h`.
    public var description: String {
        guard milliseconds % 1_000 == 0 else { return "\(milliseconds)ms" }
        var rest = milliseconds / 1_000
        var text = ""
        if rest >= 3_600 {
            text += "\(rest / 3_600)h"
            rest %= 3_600
        }
        if rest >= 60 {
            text += "\(rest / 60)m"
            rest %= 60
        }
        if rest > 0 || text.isEmpty { text += "\(rest)s" }
        return text
    }
}
