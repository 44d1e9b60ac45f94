import ArgumentParser
import Crypto
import DNSWire
import Foundation
import OrchestrateContract
import OrchestrateSpec
import OrchestrateSupervisor

/// `orchestrate token`: a JWT the local gateway accepts, signed with the local secret, for calling it by hand.
struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print a JWT signed with the local gateway secret (HS256), for calling the gateway by hand.",
        discussion: """
            Reads the gateway's jwt settings from the spec and the secret from .orchestrate/secrets (made at \
            random when missing, as orchestrate up does).

            Example:
              curl -H "Authorization: Bearer $(orchestrate token --sub 42)" localhost:3000/api/users
              curl -H "Authorization: Bearer $(orchestrate token --sub ops --role admin)" localhost:3000/api/users
            """)

    @Option(help: "The token's subject (`sub`).") var sub = "developer"
    @Option(help: "How long the token is valid (e.g. 30m, 1h, 24h).") var expiresIn = "1h"
    @Option(
        name: .customLong("role"),
        help: "A role for the token (repeat for more), in the claim gateway.jwt.rolesClaim names (default roles).")
    var roles: [String] = []
    @Option(name: [.customShort("f"), .long], help: "The spec file.", completion: .file(extensions: ["yaml", "yml"]))
    var file = "services.yaml"

    func run() throws {
        let spec = try LoadSpec.load(file, format: .text, color: .auto, failure: "no token was made")
        guard let jwt = spec.gateway?.jwt else {
            POSIX.printError("orchestrate: \(file) has no gateway.jwt; the gateway checks no tokens")
            throw ExitCode.failure
        }
        guard jwt.algorithm.value == .hs256 else {
            POSIX.printError(
                "orchestrate: the gateway verifies \(jwt.algorithm.value.rawValue) tokens; sign one with your private key"
            )
            throw ExitCode.failure
        }
        for role in roles where !CallerHeaders.isValidRole(role) {
            throw ValidationError("--role \(role): a role is a plain word of letters, digits and . _ : - (1 to 64)")
        }
        guard let lifetime = SpecDuration(parsing: expiresIn), lifetime.milliseconds >= 1000 else {
            throw ValidationError("--expires-in must be a duration of at least 1s, like 30m or 1h")
        }
        let stateDirectory =
            URL(fileURLWithPath: file).standardizedFileURL.deletingLastPathComponent().path + "/.orchestrate"
        let store = SecretStore(
            directory: stateDirectory + "/secrets", environment: ProcessInfo.processInfo.environment)
        let (secret, generated) = try store.value(name: jwt.secret.name.value, key: jwt.secret.key?.value)
        if let generated {
            POSIX.printError("orchestrate: generated secret \(generated) at random into .orchestrate/secrets/")
        }
        let now = Int(Date().timeIntervalSince1970)
        var claims: [String: Any] = ["sub": sub, "iat": now, "exp": now + lifetime.milliseconds / 1000]
        claims["iss"] = jwt.issuer?.value
        claims["aud"] = jwt.audience?.value
        if !roles.isEmpty {
            // The claim path `a.b.c` as nested objects: {"a": {"b": {"c": [roles]}}}.
            var value: Any = roles
            let path = (jwt.rolesClaim?.value ?? "roles").split(separator: ".").map(String.init)
            for name in path.dropFirst().reversed() { value = [name: value] }
            claims[path.first ?? "roles"] = value
        }
        print(Self.sign(claims: claims, secret: secret))
    }

    static func sign(claims: [String: Any], secret: String) -> String {
        let header = base64URL(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = base64URL((try? JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])) ?? Data())
        let input = "\(header).\(payload)"
        let signature = HMAC<SHA256>.authenticationCode(
            for: Data(input.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return "\(input).\(base64URL(Data(signature)))"
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
