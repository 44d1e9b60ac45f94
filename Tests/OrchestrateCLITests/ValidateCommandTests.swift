import Foundation
import Testing

/// `orchestrate validate` as a user runs it: the built binary, its output and its exit status.
@Suite(.timeLimit(.minutes(5)))
struct ValidateCommandTests {
    static let fixtures = "Tests/OrchestrateSpecTests/Fixtures/"

    @Test func theShopIsValid() async throws {
        let run = try await orchestrate(["validate"])
        #expect(run.status == 0)
        #expect(run.stdout == "services.yaml: valid, 5 services\n")
    }

    @Test func textShowsLocationSourceLineCaretAndHint() async throws {
        let file = Self.fixtures + "unknown-dependency.yaml"
        let run = try await orchestrate(["validate", file])
        #expect(run.status == 1)
        #expect(
            run.stdout == """
                \(file):7:31: error[unknown-dependency]: services.order-service.dependsOn[1]: no service named \
                "paymnt-service" (did you mean "payment-service"?)
                 7 |     dependsOn: [user-service, paymnt-service]
                   |                               ^~~~~~~~~~~~~~
                  = hint: depend on one of: user-service, payment-service
                \(file): 1 error

                """)
    }

    @Test func aLongLineIsShownAroundTheColumn() async throws {
        // A one-line (minified) spec: the source line is cut to 120 characters around the problem, marked with …
        let others = (1...40).map { "s\($0): { product: P, port: \(4000 + $0) }" }.joined(separator: ", ")
        let text = "{ version: 1, name: x, services: { \(others), zz: { product: B, bogus: 1 } } }\n"
        let run = try await orchestrate(["validate", "-"], stdin: text)
        #expect(run.status == 1)
        let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let source = try #require(lines.first { $0.hasPrefix(" 1 | ") })
        let caret = try #require(lines.first { $0.contains("^") })
        #expect(source.hasPrefix(" 1 | …") && source.count <= " 1 | ".count + 122)
        // The caret still stands under the field it names.
        let column = try #require(caret.firstIndex(of: "^")).utf16Offset(in: caret)
        #expect(Array(source)[column...].starts(with: "bogus"))
    }

    @Test func colourOnlyWhenAskedOrOnATerminal() async throws {
        let file = Self.fixtures + "privileged-port.yaml"
        #expect(try await orchestrate(["validate", "--color", "always", file]).stdout.contains("\u{1B}["))
        #expect(!(try await orchestrate(["validate", file]).stdout.contains("\u{1B}[")))
        #expect(
            !(try await orchestrate(["validate", "--color", "auto", file], environment: ["NO_COLOR": "1"]).stdout
                .contains("\u{1B}[")))
    }

    @Test func warningsFailOnlyWhenStrict() async throws {
        let file = Self.fixtures + "privileged-port.yaml"
        #expect(try await orchestrate(["validate", file]).status == 0)
        #expect(try await orchestrate(["validate", "--strict", file]).status == 1)
    }

    @Test func jsonListsEveryDiagnosticOfEveryFile() async throws {
        let run = try await orchestrate([
            "validate", "--format", "json", Self.fixtures + "missing-broker.yaml", Self.fixtures + "minimal.yaml",
        ])
        #expect(run.status == 1)
        let records = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]])
        #expect(records.count == 2)
        #expect(records.first?["code"] as? String == "missing-broker")
        #expect(records.first?["line"] as? Int == 6)
        #expect(records.first?["column"] as? Int == 17)
        #expect(records.first?["severity"] as? String == "error")
        #expect(records.first?["path"] as? String == "services.orders.publishes[0]")
        #expect(records.first?["file"] as? String == Self.fixtures + "missing-broker.yaml")
        #expect(records.first?["hint"] is String)
        #expect(try await orchestrate(["validate", "--format", "json"]).stdout == "[\n\n]\n")
    }

    @Test func githubAnnotationsEscapeTheirProperties() async throws {
        let run = try await orchestrate(["validate", "--format", "github", Self.fixtures + "unpublished-event.yaml"])
        #expect(run.status == 0)
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(
            lines.first == """
                ::warning file=\(Self.fixtures)unpublished-event.yaml,line=10,col=18,title=warning[unpublished-event]::\
                services.mailer.subscribes[0]: no service publishes "order.creatd" (did you mean "order.created"?)\
                %0Ahint: add it to the producer's `publishes`, or drop the subscription
                """)
        let hostile = try await orchestrate(
            ["validate", "--format", "github", "-", "--stdin-filename", "a,b:c%.yaml"], stdin: "version: 1\n")
        #expect(hostile.stdout.hasPrefix("::error file=a%2Cb%3Ac%25.yaml,line=1,col=1,"))
    }

    @Test func standardInputIsReadWithTheNameGiven() async throws {
        let run = try await orchestrate(
            ["validate", "-", "--stdin-filename", "services.yaml"],
            stdin: "version: 1\nname: x\nservices: { a: { prodct: A } }\n")
        #expect(run.status == 1)
        #expect(run.stdout.contains("services.yaml:3:18: error[unknown-field]"))
    }

    @Test(arguments: [
        (["validate", "no-such-file.yaml"], "cannot read no-such-file.yaml: no such file"),
        (["validate", "Sources"], "cannot read Sources: it is a directory"),
        (["validate", "--format", "xml"], "The value 'xml' is invalid"),
        (["validate", "--bogus"], "Unknown option '--bogus'"),
    ])
    func usageAndIOErrorsExitWith2(_ arguments: [String], _ message: String) async throws {
        let run = try await orchestrate(arguments)
        #expect(run.status == 2)
        #expect(run.stderr.contains(message))
    }

    @Test func anUnreadableFileDoesNotHideProblemsInTheOthers() async throws {
        let run = try await orchestrate(["validate", "missing.yaml", Self.fixtures + "duplicate-key.yaml"])
        #expect(run.status == 2)
        #expect(run.stdout.contains("error[duplicate-key]"))
    }
}
