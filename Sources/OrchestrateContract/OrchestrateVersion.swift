/// The version of orchestrate: what `orchestrate --version` prints, and the tag of the built-in gateway's image
/// that generated compose and Kubernetes files name (`orchestrate-gateway:VERSION`), so the two always match.
public enum OrchestrateVersion {
    public static let current = "0.2.0"
    /// The built-in gateway's image, as generated files name it; `docker/gateway.Dockerfile` builds it.
    public static let gatewayImage = "orchestrate-gateway:" + current
    /// The built-in gateway's binary beside an installed `orchestrate` (scripts/install); a build of this package
    /// has it as the `APIGateway` product.
    public static let gatewayExecutable = "orchestrate-gateway"
    /// The dashboard's trace decoder, installed beside `orchestrate` (built as OTLPDecoder).
    public static let otlpDecoderExecutable = "orchestrate-otlp"
}
