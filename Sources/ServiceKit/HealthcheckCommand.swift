import ArgumentParser
import AsyncHTTPClient
import FluentKit
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import OTel
import OrchestrateContract
import Prometheus
import ServiceLifecycle
import Synchronization
import Tracing
import UnixSignals

/// `BINARY healthcheck URL`: GET the URL; exit 0 on 2xx, 1 otherwise. Images have no curl.
struct HealthcheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck", abstract: "GET a URL; exit 0 on a 2xx answer, 1 otherwise (images have no curl).")

    @Argument(help: "The URL to probe, e.g. http://127.0.0.1:3001/ready.")
    var url: String

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Int = 2

    func validate() throws {
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ValidationError("the URL must start with http:// or https://, not \"\(url)\"")
        }
        guard (1...60).contains(timeout) else { throw ValidationError("--timeout must be 1 to 60 seconds") }
    }

    func run() async throws {
        do {
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: url), timeout: .seconds(Int64(timeout)))
            let code = response.status.code
            _ = try? await response.body.collect(upTo: 64 * 1024)
            guard (200..<300).contains(code) else {
                FileHandle.standardError.write(Data("healthcheck: \(url) answered \(code)\n".utf8))
                throw ExitCode(1)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            FileHandle.standardError.write(Data("healthcheck: \(url): \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
