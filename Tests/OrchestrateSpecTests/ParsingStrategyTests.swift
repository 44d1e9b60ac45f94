import Foundation
import OrchestrateTestSupport
import Testing

@testable import OrchestrateSpec

/// The loader parses a large document on a second thread while the composer builds the tree. These tests hold every
/// way of reading to the result of the plainest one, one thread, on the fixtures, the fuzz corpus and large
/// documents that end in each kind of problem.
///
/// One test at a time: each keeps a core busy (two, with the parsing thread), and tests elsewhere in the run wait
/// for things with deadlines.
@Suite(.timeLimit(.minutes(10)), .serialized)
struct ParsingStrategyTests {
    private static let plain = SpecLoader.Strategy(parsesConcurrently: false)
    private static let others = [
        SpecLoader.Strategy(parsesConcurrently: true),
        // Batches of three events change hands all the time, so each side often waits for the other.
        SpecLoader.Strategy(parsesConcurrently: true, eventsPerBatch: 3),
    ]

    /// Everything a load produces, as text: every diagnostic in full and the whole model.
    private static func outcome(_ bytes: [UInt8], _ strategy: SpecLoader.Strategy) -> String {
        let result = SpecLoader.load(bytes, strategy: strategy)
        return result.diagnostics.map { "\($0)\n" }.joined() + describe(result.spec as Any)
    }

    /// A value and everything in it, by reflection; a dictionary's or set's elements sorted, since their order
    /// differs from one instance to the next.
    private static func describe(_ value: Any) -> String {
        let mirror = Mirror(reflecting: value)
        guard !mirror.children.isEmpty else { return "\(value)" }
        let parts = mirror.children.map { child in (child.label.map { $0 + ": " } ?? "") + describe(child.value) }
        switch mirror.displayStyle {
        case .dictionary, .set: return "[" + parts.sorted().joined(separator: ", ") + "]"
        default: return "\(mirror.subjectType)(" + parts.joined(separator: ", ") + ")"
        }
    }

    /// The strategies whose outcome differs from the plain one's, each with `name`.
    private static func disagreements(_ bytes: [UInt8], _ name: String) -> [String] {
        let expected = outcome(bytes, plain)
        return others.filter { outcome(bytes, $0) != expected }.map { "\(name) with \($0)" }
    }

    @Test(arguments: FixtureFile.all)
    func aFixtureReadsTheSameEveryWay(_ fixture: FixtureFile) {
        #expect(Self.disagreements(fixture.bytes, fixture.name) == [])
    }

    // The corpus and the large specs keep a core busy for seconds: they run on a thread of their own, so the
    // cooperative pool stays free for the tests that wait for something with a deadline (see `offThePool`).

    @Test func theFuzzCorpusReadsTheSameEveryWay() async throws {
        let corpus = FixtureFile.directory.appendingPathComponent("../../../Fuzz/corpus").standardized
        let names = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted()
        #expect(names.count > 100)
        let disagreements = try await offThePool {
            try names.flatMap { name in
                Self.disagreements(try Array(Data(contentsOf: corpus.appendingPathComponent(name))), name)
            }
        }
        #expect(disagreements == [])
    }

    @Test(arguments: LargeSpec.Ending.allCases)
    func aLargeSpecReadsTheSameEveryWay(_ ending: LargeSpec.Ending) async throws {
        let bytes = Array(LargeSpec.text(services: 300, ending: ending).utf8)
        #expect(bytes.count > YAMLEventStream.concurrentParsingThreshold * 4)
        let (disagreements, codes) = try await offThePool {
            (Self.disagreements(bytes, "\(ending)"), SpecLoader.load(bytes).diagnostics.map(\.code))
        }
        #expect(disagreements == [])
        #expect(codes == ending.expectedCodes)
    }

    @Test func aValidLargeSpecKeepsEveryService() throws {
        let result = SpecLoader.load(Array(LargeSpec.text(services: 300, ending: .nothing).utf8))
        let spec = try #require(result.spec)
        #expect(spec.services.count == 300)
        #expect(spec.services.last?.name.value == "svc-0299")
        #expect(spec.services.last?.env.map(\.name.value) == ["INTERNAL_TOKEN", "LOG_LEVEL", "FEATURE_FLAG"])
    }
}
