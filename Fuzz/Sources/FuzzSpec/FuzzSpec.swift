import OrchestrateSpec

/// libFuzzer's entry point: any bytes go through the whole loader (encoding, YAML, model, rules).
/// A crash, a hang or a sanitizer report is a bug; diagnostics of any kind are the expected outcome.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSpec(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let result = SpecLoader.load(UnsafeBufferPointer(start: data, count: size))
    if let spec = result.spec {
        _ = ServiceGraph(spec).startWaves()
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
