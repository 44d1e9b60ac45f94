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
public import Prometheus
public import ServiceLifecycle
import Synchronization
import Tracing
import UnixSignals

/// Logging, metrics and tracing for the whole process, set up once.
public enum Observability {
    /// Where `/metrics` reads from.
    public static let registry = PrometheusCollectorRegistry()
    private static let state = Mutex<(bootstrapped: Bool, tracer: (any Service)?)>((false, nil))

    /// Bootstraps swift-log (JSON lines with trace and span ids), swift-metrics (Prometheus) and
    /// swift-distributed-tracing (swift-otel with OTLP/HTTP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
    /// otherwise `PropagatingTracer`, which records nothing and carries `traceparent` through). Later calls do
    /// nothing; the returned service (the span processor, when exporting) runs beside the server.
    @discardableResult
    public static func bootstrap(serviceName: String, environment: [String: String]) -> (any Service)? {
        state.withLock { state in
            if state.bootstrapped { return state.tracer }
            state.bootstrapped = true
            let level = environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            let endpoint = environment[ServiceVariable.otlpEndpoint] ?? ""
            let provider =
                endpoint.isEmpty ? PropagatingTracer.loggingMetadataProvider : OTel.makeLoggingMetadataProvider()
            LoggingSystem.bootstrap(
                { label, provider in JSONLogHandler(label: label, level: level, metadataProvider: provider) },
                metadataProvider: provider)
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.nameAndLabelSanitizer = { name, labels in
                func clean(_ text: String) -> String {
                    String(text.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
                }
                return (clean(name), labels.map { (clean($0.0), $0.1) })
            }
            MetricsSystem.bootstrap(factory)
            // With no exporter, nothing would be recorded: the tracer only carries trace context through.
            guard !endpoint.isEmpty else {
                InstrumentationSystem.bootstrap(PropagatingTracer())
                return nil
            }
            var configuration = OTel.Configuration.default
            configuration.serviceName = serviceName
            configuration.logs.enabled = false
            configuration.metrics.enabled = false
            configuration.diagnosticLogLevel = .warning
            configuration.traces.exporter = .otlp
            configuration.traces.otlpExporter.protocol = .httpProtobuf
            // Head sampling, parent-based: a request that arrives with a sampled `traceparent` is traced, one without
            // is traced with probability `OTEL_TRACES_SAMPLER_ARG` (default 1). OTel's own `OTEL_TRACES_SAMPLER`
            // still overrides the kind.
            let ratio = environment["OTEL_TRACES_SAMPLER_ARG"].flatMap(Double.init).map { min(max($0, 0), 1) } ?? 1
            configuration.traces.sampler = .parentBasedTraceIDRatio(ratio: ratio) ?? .parentBasedAlwaysOn
            do {
                let backend = try OTel.makeTracingBackend(configuration: configuration)
                InstrumentationSystem.bootstrap(backend.factory)
                state.tracer = backend.service
            } catch {
                Logger(label: serviceName).error("tracing disabled", metadata: ["error": "\(error)"])
            }
            return state.tracer
        }
    }
}
