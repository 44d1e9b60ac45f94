import OrchestrateContract
import ServiceKit
import Testing

@Suite(.timeLimit(.minutes(5)))
struct ServiceConfigurationTests {
    let requirements = ServiceConfiguration.Requirements(
        defaultPort: 3002, dependencies: ["user-service", "payment-service"], internalToken: true)
    let complete = [
        "USER_SERVICE_URL": "http://user-service:3001", "PAYMENT_SERVICE_URL": "http://payment-service:3003",
        "INTERNAL_TOKEN": "s3cret",
    ]

    @Test func defaultsApplyAndDependenciesAreFoundByName() throws {
        let configuration = try ServiceConfiguration(environment: complete, requirements: requirements)
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 3002)
        #expect(configuration.databaseURL == nil)
        #expect(
            configuration.dependencies == [
                "user-service": "http://user-service:3001", "payment-service": "http://payment-service:3003",
            ])
        #expect(configuration.dnsServer == nil)
    }

    @Test func everyVariableIsRead() throws {
        var environment = complete
        environment["HOST"] = "0.0.0.0"
        environment["PORT"] = "8080"
        environment["DATABASE_URL"] = "postgres://orders@orders-postgres:5432/orders"
        environment["DATABASE_PASSWORD"] = "pw"
        environment["BROKER_URL"] = "redis://redis:6379"
        environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://jaeger:4318"
        environment["ORCHESTRATE_DNS"] = "127.0.0.1:5353"
        let configuration = try ServiceConfiguration(environment: environment, requirements: requirements)
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.port == 8080)
        #expect(configuration.databasePassword == "pw")
        #expect(configuration.brokerURL == "redis://redis:6379")
        #expect(configuration.otlpEndpoint == "http://jaeger:4318")
        #expect(configuration.dnsServer == .init(host: "127.0.0.1", port: 5353))
    }

    @Test func aSecretMayComeFromAFileAsComposeDeliversIt() throws {
        var environment = complete
        environment["INTERNAL_TOKEN"] = nil
        environment["INTERNAL_TOKEN_FILE"] = "/run/secrets/internal-token"
        let configuration = try ServiceConfiguration(environment: environment, requirements: requirements) { path in
            path == "/run/secrets/internal-token" ? "from-file\n" : ""
        }
        #expect(configuration.internalToken == "from-file")
        struct Unreadable: Error {}
        #expect(throws: ServiceKitError.self) {
            try ServiceConfiguration(environment: environment, requirements: requirements) { _ in throw Unreadable() }
        }
    }

    @Test(
        arguments: [
            ("USER_SERVICE_URL", nil, "USER_SERVICE_URL is not set; this service calls user-service"),
            ("USER_SERVICE_URL", "user-service:3001", "USER_SERVICE_URL must be an http:// or https:// URL"),
            ("INTERNAL_TOKEN", nil, "INTERNAL_TOKEN is not set"),
            ("PORT", "70000", "PORT must be a port number from 1 to 65535, not \"70000\""),
            ("PORT", "http", "PORT must be a port number"),
            ("DATABASE_URL", "mysql://x", "DATABASE_URL must start with postgres:// or sqlite://"),
            ("ORCHESTRATE_DNS", "127.0.0.1", "ORCHESTRATE_DNS must be HOST:PORT"),
        ] as [(String, String?, String)])
    func aMissingOrMalformedValueNamesItsVariable(_ variable: String, _ value: String?, _ message: String) {
        var environment = complete
        environment[variable] = value
        #expect {
            try ServiceConfiguration(environment: environment, requirements: requirements)
        } throws: { error in
            (error as? ServiceKitError)?.subject == variable && "\(error)".hasPrefix(message)
        }
    }

    @Test func urlVariablesAreNamedAsOrchestrateNamesThem() {
        #expect(ServiceVariable.url(of: "user-service") == "USER_SERVICE_URL")
    }
}

@Suite(.timeLimit(.minutes(5)))
struct InternalTokenTests {
    @Test(arguments: [
        ("s3cret", true), ("s3creT", false), ("s3cre", false), ("s3cret!", false), ("", false),
    ])
    func onlyTheExactTokenIsAccepted(_ presented: String, _ accepted: Bool) {
        #expect(InternalToken("s3cret").accepts(presented) == accepted)
    }

    @Test func aTokenPaddedToALengthThatDiffersBy256IsRefused() {
        #expect(!InternalToken("s3cret").accepts("s3cret" + String(repeating: "\u{0}", count: 256)))
    }

    @Test func aMissingTokenOrAnEmptyExpectedTokenIsRefused() {
        #expect(!InternalToken("s3cret").accepts(nil))
        #expect(!InternalToken("").accepts(""))
    }
}
