import Testing

@testable import OrchestrateSpec

@Suite(.timeLimit(.minutes(5)))
struct QuantityTests {
    @Test(arguments: [
        ("100m", 0.1), ("0.5", 0.5), ("1", 1.0), ("128Mi", 134_217_728), ("1G", 1e9), ("1e3", 1_000), ("1E-3", 0.001),
        ("+2k", 2_000), (".5Ki", 512), ("5.", 5),
    ])
    func parses(_ text: String, _ value: Double) throws {
        let quantity = try #require(Quantity(parsing: text))
        #expect(abs(quantity.value - value) <= value * 1e-12)
        #expect(quantity.text == text)
    }

    @Test(arguments: ["", "-1", "1.2.3", "128MB", "Mi", "1e", "1e+", ".", "1 Gi", "0x10", "1ki"])
    func refuses(_ text: String) {
        #expect(Quantity(parsing: text) == nil)
    }
}

@Suite(.timeLimit(.minutes(5)))
struct SpecDurationTests {
    @Test(arguments: [
        ("500ms", 500), ("5s", 5_000), ("1m30s", 90_000), ("2h", 7_200_000), ("0s", 0), ("1h1ms", 3_600_001),
    ])
    func parses(_ text: String, _ milliseconds: Int) {
        #expect(SpecDuration(parsing: text)?.milliseconds == milliseconds)
    }

    @Test(arguments: ["", "5", "s", "1.5s", "-1s", "5 s", "5sec", "1d", "9999999999s"])
    func refuses(_ text: String) {
        #expect(SpecDuration(parsing: text) == nil)
    }

    @Test func printsTheShortestSpelling() {
        #expect(SpecDuration(milliseconds: 90_000).description == "1m30s")
        #expect(SpecDuration(milliseconds: 1_500).description == "1500ms")
        #expect(SpecDuration(milliseconds: 0).description == "0s")
        #expect(SpecDuration(milliseconds: 1_500).seconds == 2)
    }
}

@Suite(.timeLimit(.minutes(5)))
struct SuggestionTests {
    @Test func suggestsTheClosestWordWithinAThirdOfItsLength() {
        #expect(Suggestion.closest(to: "prodct", among: ["product", "port"]) == "product")
        #expect(Suggestion.closest(to: "dependson", among: ["dependsOn"]) == "dependsOn")
        #expect(
            Suggestion.closest(to: "paymnt-service", among: ["payment-service", "user-service"]) == "payment-service")
        #expect(Suggestion.closest(to: "porst", among: ["port", "public"]) == "port")
        #expect(Suggestion.closest(to: "zzz", among: ["port"]) == nil)
        #expect(Suggestion.closest(to: "b", among: ["a"]) == nil)
    }

    @Test func transpositionsCountOnce() {
        #expect(Suggestion.editDistance("rotue", "route", limit: 5) == 1)
    }
}

@Suite(.timeLimit(.minutes(5)))
struct DNSNameTests {
    @Test(arguments: ["a", "user-service", "a1", String(repeating: "a", count: 63)])
    func acceptsLabels(_ name: String) {
        #expect(DNSName.labelProblem(name) == nil)
    }

    @Test(arguments: ["", "A", "a_b", "-a", "a-", "a.b", String(repeating: "a", count: 64), "ü"])
    func refusesOthers(_ name: String) {
        #expect(DNSName.labelProblem(name) != nil)
    }

    @Test func suggestsAValidLabel() {
        #expect(DNSName.suggestedLabel(for: "My_Service") == "my-service")
        #expect(DNSName.suggestedLabel(for: "JWT_SECRET") == "jwt-secret")
    }
}
