/// The stable, machine-readable name of a kind of problem (`unknown-dependency`), shown as `error[CODE]`.
///
/// A struct over a private enum, so that adding a code later breaks no caller that switches over codes.
public struct DiagnosticCode: Hashable, Sendable, CustomStringConvertible {
    private enum Kind: String, CaseIterable {
        // The document as a whole, before any field is read.
        case fileTooLarge = "file-too-large"
        case invalidEncoding = "invalid-encoding"
        case emptyDocument = "empty-document"
        case yamlSyntax = "yaml-syntax"
        case multipleDocuments = "multiple-documents"
        case unknownTag = "unknown-tag"
        case duplicateKey = "duplicate-key"
        case unknownAlias = "unknown-alias"
        case aliasExpansionLimit = "alias-expansion-limit"
        case nestingTooDeep = "nesting-too-deep"
        case invalidMerge = "invalid-merge"
        case complexKey = "complex-key"
        // The shape of fields.
        case unknownField = "unknown-field"
        case wrongType = "wrong-type"
        case missingField = "missing-field"
        case invalidValue = "invalid-value"
        case unsupportedVersion = "unsupported-version"
        case invalidName = "invalid-name"
        case invalidDuration = "invalid-duration"
        case invalidQuantity = "invalid-quantity"
        case invalidEnvName = "invalid-env-name"
        case conflictingFields = "conflicting-fields"
        // Meaning across fields and services.
        case unknownDependency = "unknown-dependency"
        case duplicateEntry = "duplicate-entry"
        case dependencyCycle = "dependency-cycle"
        case portOutOfRange = "port-out-of-range"
        case privilegedPort = "privileged-port"
        case portConflict = "port-conflict"
        case invalidProbePath = "invalid-probe-path"
        case missingPort = "missing-port"
        case sharedDatabase = "shared-database"
        case invalidRoutePrefix = "invalid-route-prefix"
        case duplicateRoutePrefix = "duplicate-route-prefix"
        case invalidRateLimit = "invalid-rate-limit"
        case missingGateway = "missing-gateway"
        case unknownService = "unknown-service"
        case missingJWTSettings = "missing-jwt-settings"
        case unpublishedEvent = "unpublished-event"
        case missingBroker = "missing-broker"
        case requestExceedsLimit = "request-exceeds-limit"
        case valueTooLarge = "value-too-large"
        case invalidReplicas = "invalid-replicas"
        case invalidAutoscaling = "invalid-autoscaling"
        case inlineSecret = "inline-secret"
        case reservedEnv = "reserved-env"
        case mutableImageTag = "mutable-image-tag"
        case reservedName = "reserved-name"
    }

    private let kind: Kind

    private init(_ kind: Kind) { self.kind = kind }

    /// The code as printed: lowercase words joined by `-`.
    public var name: String { kind.rawValue }
    public var description: String { kind.rawValue }

    /// Every code there is, for documentation and for tests that keep the docs complete.
    public static var all: [DiagnosticCode] { Kind.allCases.map(DiagnosticCode.init) }

    /// The code with this printed name, if there is one.
    public init?(name: String) {
        guard let kind = Kind(rawValue: name) else { return nil }
        self.kind = kind
    }

    /// Whether the code is about the YAML document itself rather than the meaning of its fields: such a
    /// document may not even load in other YAML tools.
    public var isDocumentLevel: Bool {
        switch kind {
        case .fileTooLarge, .invalidEncoding, .emptyDocument, .yamlSyntax, .multipleDocuments, .unknownTag,
            .duplicateKey, .unknownAlias, .aliasExpansionLimit, .nestingTooDeep, .invalidMerge, .complexKey:
            true
        default: false
        }
    }

    /// Whether a JSON Schema of the format can see the problem: the shape and form of single fields, as
    /// opposed to references between fields, which only the validator checks.
    public var isStructural: Bool {
        switch kind {
        case .unknownField, .wrongType, .missingField, .invalidValue, .unsupportedVersion, .invalidName,
            .invalidDuration, .invalidQuantity, .invalidEnvName, .portOutOfRange, .invalidProbePath,
            .invalidRoutePrefix, .invalidRateLimit, .invalidReplicas, .conflictingFields:
            true
        default: false
        }
    }

    public static let fileTooLarge = DiagnosticCode(.fileTooLarge)
    public static let invalidEncoding = DiagnosticCode(.invalidEncoding)
    public static let emptyDocument = DiagnosticCode(.emptyDocument)
    public static let yamlSyntax = DiagnosticCode(.yamlSyntax)
    public static let multipleDocuments = DiagnosticCode(.multipleDocuments)
    public static let unknownTag = DiagnosticCode(.unknownTag)
    public static let duplicateKey = DiagnosticCode(.duplicateKey)
    public static let unknownAlias = DiagnosticCode(.unknownAlias)
    public static let aliasExpansionLimit = DiagnosticCode(.aliasExpansionLimit)
    public static let nestingTooDeep = DiagnosticCode(.nestingTooDeep)
    public static let invalidMerge = DiagnosticCode(.invalidMerge)
    public static let complexKey = DiagnosticCode(.complexKey)
    public static let unknownField = DiagnosticCode(.unknownField)
    public static let wrongType = DiagnosticCode(.wrongType)
    public static let missingField = DiagnosticCode(.missingField)
    public static let invalidValue = DiagnosticCode(.invalidValue)
    public static let unsupportedVersion = DiagnosticCode(.unsupportedVersion)
    public static let invalidName = DiagnosticCode(.invalidName)
    public static let invalidDuration = DiagnosticCode(.invalidDuration)
    public static let invalidQuantity = DiagnosticCode(.invalidQuantity)
    public static let invalidEnvName = DiagnosticCode(.invalidEnvName)
    public static let conflictingFields = DiagnosticCode(.conflictingFields)
    public static let unknownDependency = DiagnosticCode(.unknownDependency)
    public static let duplicateEntry = DiagnosticCode(.duplicateEntry)
    public static let dependencyCycle = DiagnosticCode(.dependencyCycle)
    public static let portOutOfRange = DiagnosticCode(.portOutOfRange)
    public static let privilegedPort = DiagnosticCode(.privilegedPort)
    public static let portConflict = DiagnosticCode(.portConflict)
    public static let invalidProbePath = DiagnosticCode(.invalidProbePath)
    public static let missingPort = DiagnosticCode(.missingPort)
    public static let sharedDatabase = DiagnosticCode(.sharedDatabase)
    public static let invalidRoutePrefix = DiagnosticCode(.invalidRoutePrefix)
    public static let duplicateRoutePrefix = DiagnosticCode(.duplicateRoutePrefix)
    public static let invalidRateLimit = DiagnosticCode(.invalidRateLimit)
    public static let missingGateway = DiagnosticCode(.missingGateway)
    public static let unknownService = DiagnosticCode(.unknownService)
    public static let missingJWTSettings = DiagnosticCode(.missingJWTSettings)
    public static let unpublishedEvent = DiagnosticCode(.unpublishedEvent)
    public static let missingBroker = DiagnosticCode(.missingBroker)
    public static let requestExceedsLimit = DiagnosticCode(.requestExceedsLimit)
    public static let valueTooLarge = DiagnosticCode(.valueTooLarge)
    public static let invalidReplicas = DiagnosticCode(.invalidReplicas)
    public static let invalidAutoscaling = DiagnosticCode(.invalidAutoscaling)
    public static let inlineSecret = DiagnosticCode(.inlineSecret)
    public static let reservedEnv = DiagnosticCode(.reservedEnv)
    public static let mutableImageTag = DiagnosticCode(.mutableImageTag)
    public static let reservedName = DiagnosticCode(.reservedName)
}
