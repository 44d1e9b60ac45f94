import Testing

@testable import OrchestrateSpec

@Suite(.timeLimit(.minutes(5)))
struct YAMLComposerTests {
    private func compose(_ text: String) -> YAMLComposer.Result {
        Array(text.utf8).withUnsafeBufferPointer { YAMLComposer.compose($0) }
    }

    @Test func everyNodeKeepsItsLineAndColumn() throws {
        let result = compose("a:\n  - b: 1\n    c: [x, \"y\"]\n")
        #expect(result.diagnostics.isEmpty)
        let tree = result.tree
        guard case .mapping(let topChildren, let topLocation) = try #require(result.root) else {
            Issue.record("root is not a mapping")
            return
        }
        let top = tree.entries(of: topChildren)
        #expect(topLocation == SourceLocation(line: 1, column: 1))
        #expect(top[0].key.location == SourceLocation(line: 1, column: 1))
        guard case .sequence(let items, let listLocation) = top[0].value,
            case .mapping(let innerChildren, _) = tree.items(of: items)[0]
        else {
            Issue.record("unexpected shape")
            return
        }
        let inner = tree.entries(of: innerChildren)
        #expect(listLocation == SourceLocation(line: 2, column: 3))
        #expect(inner[0].key.location == SourceLocation(line: 2, column: 5))
        #expect(inner[0].value.location == SourceLocation(line: 2, column: 8))
        guard case .sequence(let flow, _) = inner[1].value, case .scalar(let quoted) = tree.items(of: flow)[1] else {
            Issue.record("unexpected shape")
            return
        }
        #expect(quoted.location == SourceLocation(line: 3, column: 12))
        #expect(tree.resolved(quoted) == .string)
        #expect(tree.text(of: quoted) == "y")
    }

    @Test func columnsCountCharactersNotBytes() throws {
        let result = compose("é: [ü, x]\n")
        guard case .mapping(let entries, _) = try #require(result.root),
            case .sequence(let items, _) = result.tree.entries(of: entries)[0].value
        else {
            Issue.record("unexpected shape")
            return
        }
        #expect(result.tree.items(of: items)[1].location == SourceLocation(line: 1, column: 8))
    }

    @Test func mergeKeysFollowTheYAMLRules() throws {
        let text = """
            base: &base { a: 1, b: 1 }
            other: &other { b: 2, c: 2 }
            merged:
              <<: [*base, *other]
              a: explicit
            """
        let result = compose(text)
        #expect(result.diagnostics.isEmpty)
        let tree = result.tree
        guard case .mapping(let top, _) = try #require(result.root),
            case .mapping(let merged, _) = tree.entries(of: top)[2].value
        else {
            Issue.record("unexpected shape")
            return
        }
        let values = tree.entries(of: merged).map { entry -> String in
            guard case .scalar(let scalar) = entry.value else { return "?" }
            return "\(tree.text(of: entry.key))=\(tree.text(of: scalar))"
        }
        // Explicit keys win over merged ones; of two merged mappings the first wins; merged keys sit at the `<<`.
        #expect(values == ["b=1", "c=2", "a=explicit"])
    }

    @Test func anAliasPointsAtItselfWhileItsContentKeepsItsPlace() throws {
        let result = compose("x: &x { k: v }\ny: *x\n")
        guard case .mapping(let top, _) = try #require(result.root),
            case .mapping(let entries, let location) = result.tree.entries(of: top)[1].value
        else {
            Issue.record("unexpected shape")
            return
        }
        #expect(location == SourceLocation(line: 2, column: 4))
        #expect(result.tree.entries(of: entries)[0].key.location == SourceLocation(line: 1, column: 9))
    }

    @Test func aSelfReferentialAliasIsRefused() {
        let result = compose("a: &a [*a]\n")
        #expect(result.diagnostics.map(\.code) == [.unknownAlias])
        #expect(result.root == nil)
    }

    @Test func billionLaughsIsRefusedOnceTheBudgetIsSpent() {
        var text = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            text +=
                "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ")
                + "]\n"
        }
        let result = compose(text)
        #expect(result.diagnostics.map(\.code) == [.aliasExpansionLimit])
        #expect(result.root == nil)
    }

    @Test(arguments: [
        ("~", ResolvedScalar.null), ("null", .null), ("", .null), ("true", .bool(true)), ("False", .bool(false)),
        ("yes", .string), ("on", .string), ("3001", .int(3001)), ("-7", .int(-7)), ("0x1F", .int(31)),
        ("0o17", .int(15)), ("1.5", .float(1.5)), ("1e3", .float(1000)), (".5", .float(0.5)),
        ("1.0.0", .string), ("3001a", .string), ("99999999999999999999", .bigInt), ("-", .string), (".", .string),
        ("1e", .string), ("+", .string),
    ])
    func plainScalarsResolveAsYAML12Core(_ text: String, _ expected: ResolvedScalar) {
        #expect(ResolvedScalar(plain: text) == expected)
    }

    @Test func quotedAndStrTaggedScalarsAreStrings() throws {
        let result = compose("a: \"3001\"\nb: !!str 3001\nc: !!int 3001\n")
        guard case .mapping(let entries, _) = try #require(result.root) else {
            Issue.record("the root is not a mapping")
            return
        }
        let resolved = result.tree.entries(of: entries).map { entry -> ResolvedScalar? in
            guard case .scalar(let scalar) = entry.value else { return nil }
            return result.tree.resolved(scalar)
        }
        #expect(resolved == [.string, .string, .int(3001)])
    }
}
