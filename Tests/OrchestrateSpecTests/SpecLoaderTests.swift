import Foundation
import OrchestrateSpec
import Testing

@Suite(.timeLimit(.minutes(5)))
struct SpecLoaderTests {
    @Test func aFileOverTheLimitIsRefusedBeforeParsing() {
        let bytes = [UInt8](repeating: UInt8(ascii: " "), count: SpecLoader.maximumFileSize + 1)
        let result = SpecLoader.load(bytes)
        #expect(result.diagnostics.map(\.code) == [.fileTooLarge])
        #expect(result.spec == nil)
    }

    @Test func utf16IsNamedAsSuch() {
        let bytes: [UInt8] = [0xFF, 0xFE] + Array("v".utf8).flatMap { [$0, 0] }
        let result = SpecLoader.load(bytes)
        #expect(result.diagnostics.map(\.code) == [.invalidEncoding])
        #expect(result.diagnostics.first?.message.contains("UTF-16") == true)
    }

    @Test func aByteOrderMarkAndCRLFLineEndingsAreFine() {
        let text = "\u{FEFF}version: 1\r\nname: crlf\r\nservices:\r\n  a: { product: A, port: 7000000 }\r\n"
        let result = SpecLoader.load(Array(text.utf8))
        #expect(result.diagnostics.map(\.expectation) == ["error[port-out-of-range] 4:26"])
    }

    @Test func aByteOrderMarkDoesNotShiftColumns() {
        let result = SpecLoader.load([0xEF, 0xBB, 0xBF] + Array("version: x\n".utf8))
        #expect(result.diagnostics.map(\.expectation).contains("error[wrong-type] 1:10"))
    }

    @Test func controlCharactersAreASyntaxErrorAtTheirPosition() {
        let result = SpecLoader.load(Array("version: 1\nname: a\u{01}b\n".utf8))
        #expect(result.diagnostics.map(\.expectation) == ["error[yaml-syntax] 2:8"])
    }

    @Test func theModelKeepsEveryValueAndWhereItWasWritten() throws {
        let fixture = FixtureFile(name: "every-field.yaml")
        let result = SpecLoader.load(fixture.bytes)
        #expect(result.diagnostics.isEmpty)
        let spec = try #require(result.spec)
        #expect(spec.images.registry?.value == "registry.example.com/shop")
        #expect(spec.images.tag.value == "2.3.1")
        #expect(spec.broker?.external?.key?.value == "url")
        #expect(spec.gateway?.jwt?.algorithm.value == .rs256)
        #expect(spec.gateway?.timeout.value == SpecDuration(milliseconds: 3_000))
        #expect(spec.gateway?.maxBodySize.value.value == 2_097_152)
        let users = try #require(spec.service(named: "users"))
        #expect(users.image?.value == "registry.example.com/users:1.2.3")
        #expect(users.port == Located(3001, at: SourceLocation(line: 19, column: 11)))
        #expect(users.autoscaling?.maxReplicas.value == 6)
        #expect(users.args.map(\.value) == ["serve", "--verbose"])
        let env = users.env.map { variable -> String in
            switch variable.value {
            case .plain(let text): "\(variable.name.value)=\(text)"
            case .secret(let reference): "\(variable.name.value)=secret:\(reference.name.value)"
            }
        }
        #expect(
            env == [
                "GREETING=hello: world # not a comment", "COUNT=3", "ENABLED=true", "API_TOKEN=secret:users-api-token",
            ])
        #expect(users.database?.external?.name.value == "users-db-url")
        #expect(users.probes.liveness?.check.value == .tcp(port: 3001))
        #expect(users.probes.liveness?.failureThreshold == 5)
        #expect(users.probes.readiness?.successThreshold == 2)
        #expect(users.probes.startup?.check.value == .command(["healthcheck", "http://127.0.0.1:3001/health"]))
        #expect(users.routes.count == 2)
        #expect(users.routes[0].methods.map(\.value) == ["GET", "POST", "DELETE"])
        #expect(users.routes[0].rateLimit?.effectiveBurst == 10)
        #expect(users.routes[0].timeout?.value.milliseconds == 1_500)
        #expect(users.routes[0].maxBodySize?.value.value == 65_536)
        #expect(users.resources?.cpu?.value.value == 0.25)
        #expect(users.resources?.memoryLimit?.value.value == 1e9)
        #expect(users.effectiveRestart == .onFailure)
        let mailer = try #require(spec.service(named: "mailer"))
        #expect(mailer.effectiveReplicas == 0)
        #expect(mailer.probes.liveness == nil)
        #expect(spec.service(named: "edge")?.probes.readiness?.check.value == .http(path: "/ready"))
        #expect(spec.service(named: "edge")?.effectiveStopGracePeriod == SpecDuration(milliseconds: 20_000))
    }

    @Test func mergedEnvironmentsReachTheModel() throws {
        let result = SpecLoader.load(FixtureFile(name: "merge-keys.yaml").bytes)
        let spec = try #require(result.spec)
        let a = try #require(spec.service(named: "a"))
        let values = a.env.map { variable -> String in
            guard case .plain(let text) = variable.value else { return "" }
            return "\(variable.name.value)=\(text)"
        }
        #expect(values == ["REGION=eu-west-1", "TRACE=on", "LOG_LEVEL=debug"])
        #expect(spec.service(named: "b")?.resources?.memoryLimit?.value.text == "128Mi")
        #expect(spec.service(named: "b")?.resources?.cpu?.value.text == "100m")
    }

    /// `command:` is for services that are not products, and needs an image for compose and Kubernetes; each
    /// mistake is named where it was written.
    @Test func aCommandNeedsAnImageAndExcludesAProduct() throws {
        func diagnostics(_ service: String) -> [String] {
            let text = "version: 1\nname: x\nservices:\n  w:\n" + service
            return SpecLoader.load(Array(text.utf8)).diagnostics.map {
                "\($0.location.line):\($0.location.column) \($0.code.name)"
            }
        }
        #expect(diagnostics("    command: [python3, w.py]\n    image: python:3.12-slim\n") == [])
        #expect(diagnostics("    command: [python3, w.py]\n") == ["5:15 missing-field"])
        #expect(diagnostics("    product: W\n    command: [python3, w.py]\n") == ["6:15 conflicting-fields"])
        #expect(diagnostics("    command: []\n    image: i:1\n") == ["5:14 invalid-value"])
        #expect(diagnostics("    command: [python3, \"\"]\n    image: i:1\n") == ["5:14 invalid-value"])
        let loaded = SpecLoader.load(
            Array("version: 1\nname: x\nservices:\n  w: { command: [a, b], image: i:1 }\n".utf8))
        let service = try #require(loaded.spec?.services.first)
        #expect(service.command.map(\.value) == ["a", "b"])
        #expect(service.product == nil)
    }

    /// `builtin: gateway` is orchestrate's gateway: it excludes a product, an image and a command, and the spec's
    /// `gateway.service` must name it.
    @Test func theBuiltinGatewayStandsAloneAndIsTheGateway() throws {
        func diagnostics(_ text: String) -> [String] {
            SpecLoader.load(Array(text.utf8)).diagnostics.map {
                "\($0.location.line):\($0.location.column) \($0.code.name)"
            }
        }
        let good =
            "version: 1\nname: x\ngateway: { service: edge }\nservices:\n  edge: { builtin: gateway, port: 8000 }\n"
        #expect(diagnostics(good) == [])
        let spec = try #require(SpecLoader.load(Array(good.utf8)).spec)
        #expect(spec.services.first?.builtin?.value == .gateway)
        #expect(
            diagnostics("version: 1\nname: x\nservices:\n  edge: { builtin: gateway, port: 8000 }\n") == [
                "4:20 missing-gateway"
            ])
        #expect(
            diagnostics(
                "version: 1\nname: x\ngateway: { service: edge }\nservices:\n  edge: { builtin: gateway, product: E, port: 8000 }\n"
            ) == ["5:38 conflicting-fields"])
        #expect(
            diagnostics(
                "version: 1\nname: x\ngateway: { service: edge }\nservices:\n  edge: { builtin: proxy, port: 8000 }\n"
            )
            .first?.hasSuffix("invalid-value") == true)
    }

    @Test func noInputCrashesTheLoader() {
        // Hostile shapes that once broke YAML loaders elsewhere; each must give diagnostics, not a crash.
        let inputs = [
            "", "\0", "[", "{", "- - - -", ": :", "&a *a", "*a", "!!map 3", "? ? ?", "<<: 1", "a: !<!> b",
            "%YAML 1.1\n---\na: 1", "%TAG ! tag:x,1:\n--- !a\nb: 1", "a: |\n  b\n c", "\u{FEFF}", "a:\n\t- b",
            String(repeating: "[", count: 100_000), String(repeating: "- ", count: 50_000) + "x",
            String(repeating: "a: &a\n", count: 10),
        ]
        for input in inputs {
            let result = SpecLoader.load(Array(input.utf8))
            #expect(!result.diagnostics.isEmpty, "\(input.prefix(20))")
        }
    }
}
