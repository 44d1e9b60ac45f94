import OrchestrateGenerate
@testable import OrchestrateSpec

/// The built-in templates, parsed once.
let templates = try! TemplateSet()

/// libFuzzer's entry point: any bytes go through the whole loader (encoding, YAML, model, rules) twice — the way
/// `validate` reads a large spec (libyaml on a second thread beside the composer) and the plainest way (one thread)
/// — and the two must agree. A spec validate accepts then goes through every generator: what validate accepts,
/// generate must never trap on. A crash, a hang, a sanitizer
/// report or a disagreement is a bug; diagnostics of any kind are the expected outcome.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSpec(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    // Batches of 1 to 64 events, so even a short input changes hands between the threads many times.
    let eventsPerBatch = 1 + (size > 0 ? Int(data[size / 2]) % 64 : 0)
    let result = SpecLoader.load(
        bytes, strategy: .init(parsesConcurrently: true, eventsPerBatch: eventsPerBatch))
    let plain = SpecLoader.load(bytes, strategy: .init(parsesConcurrently: false))
    precondition(result.diagnostics == plain.diagnostics, "the two ways of reading disagree on the diagnostics")
    precondition(
        result.spec?.services.map(\.name) == plain.spec?.services.map(\.name),
        "the two ways of reading disagree on the services")
    if let spec = result.spec {
        _ = ServiceGraph(spec).startWaves()
        if !result.diagnostics.contains(where: { $0.severity == .error }) {
            _ = Generator(templates: templates).generate(spec, target: .all)
        }
    }
    return 0
}

/// libFuzzer's driver, for programs whose `main` is not libFuzzer's own.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// SwiftPM links an executable target's `main` to `<Target>_main`; this one runs libFuzzer's driver.
@_cdecl("FuzzSpec_main")
public func fuzzMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, { data, size in fuzzSpec(data, size) })
}
