public import Mustache

/// Every context value the generators pass is a String already escaped for its format. Without this, swift-mustache
/// tried four casts that fail (custom renderable, optional, then `String(describing:)`'s own) for each of the
/// ~180,000 variables a 1,000-service spec renders; with it, the first cast succeeds and the text is used as it is.
extension String: @retroactive MustacheCustomRenderable {
    public var renderText: String { self }
    public var isNull: Bool { false }
}
