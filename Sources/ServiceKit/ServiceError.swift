import Foundation
public import HTTPTypes
public import Hummingbird
public import Logging
import NIOCore

/// An error a service answers with: `{"error":{"code":"…","message":"…","fields":[…]}}` and its status.
///
/// `code` is stable and machine-readable (`validation-failed`, `not-found`, `upstream-unavailable`, …);
/// `message` is for people; `fields` lists what was wrong with each field of a request body.
public struct ServiceError: Error, HTTPResponseError, CustomStringConvertible, Sendable {
    public struct FieldError: Codable, Sendable, Equatable {
        public var field: String
        public var message: String

        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }
    }

    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var fields: [FieldError]
    public var headers: HTTPFields

    public init(
        _ status: HTTPResponse.Status, code: String, message: String, fields: [FieldError] = [],
        headers: HTTPFields = [:]
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public static func validation(_ fields: [FieldError]) -> ServiceError {
        ServiceError(
            .badRequest, code: "validation-failed",
            message: "the request is not valid: " + fields.map { "\($0.field) \($0.message)" }.joined(separator: "; "),
            fields: fields)
    }

    public static func notFound(_ message: String) -> ServiceError {
        ServiceError(.notFound, code: "not-found", message: message)
    }

    /// 503 with `Retry-After`: an upstream is down, slow or behind an open circuit breaker.
    public static func unavailable(_ message: String, retryAfterSeconds: Int, code: String = "upstream-unavailable")
        -> ServiceError
    {
        var headers = HTTPFields()
        headers[.retryAfter] = String(max(1, retryAfterSeconds))
        return ServiceError(.serviceUnavailable, code: code, message: message, headers: headers)
    }

    struct Body: Codable {
        struct Detail: Codable {
            var code: String
            var message: String
            var fields: [FieldError]?
        }
        var error: Detail
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        makeResponse()
    }

    /// The JSON body this error answers with.
    public var jsonBody: [UInt8] {
        let body = Body(error: .init(code: code, message: message, fields: fields.isEmpty ? nil : fields))
        return (try? Self.encoder.encode(body)).map(Array.init)
            ?? Array(#"{"error":{"code":"internal","message":"?"}}"#.utf8)
    }

    public func makeResponse() -> Response {
        let data = jsonBody
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// Turns every error a handler throws into a JSON error response, so no client ever sees an HTML or empty error:
/// `ServiceError`s as they are, Hummingbird's `HTTPError`s (404 for an unknown route, 413, …) with a code from their
/// status, body decoding errors as `validation-failed` naming the field, anything else as a logged 500.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            return Self.response(for: error, logger: context.logger)
        }
    }

    public static func response(for error: any Error, logger: Logger) -> Response {
        switch error {
        case let error as ServiceError:
            return error.makeResponse()
        case let error as DecodingError:
            return ServiceError.validation([ServiceError.FieldError(error)]).makeResponse()
        case let error as HTTPError:
            var converted = ServiceError(
                error.status, code: Self.code(for: error.status),
                message: error.body ?? error.status.reasonPhrase.lowercased())
            converted.headers = error.headers
            return converted.makeResponse()
        case let error as any HTTPResponseError:
            return ServiceError(error.status, code: Self.code(for: error.status), message: "\(error)").makeResponse()
        default:
            logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            return ServiceError(.internalServerError, code: "internal", message: "internal error").makeResponse()
        }
    }

    static func code(for status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "bad-request"
        case 401: "unauthorized"
        case 403: "forbidden"
        case 404: "not-found"
        case 405: "method-not-allowed"
        case 409: "conflict"
        case 413: "payload-too-large"
        case 415: "unsupported-media-type"
        case 429: "rate-limited"
        case 503: "unavailable"
        case 504: "upstream-timeout"
        default: status.code < 500 ? "bad-request" : "internal"
        }
    }
}

extension ServiceError.FieldError {
    /// What was wrong with which field of a JSON body, from a decoding error.
    init(_ error: DecodingError) {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { key in key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)" }.joined()
                .drop { $0 == "." }.description
        }
        switch error {
        case .keyNotFound(let key, let context):
            self.init(field: path(context.codingPath + [key]), message: "is required")
        case .typeMismatch(let type, let context):
            self.init(field: path(context.codingPath), message: "must be \(Self.describe(type))")
        case .valueNotFound(let type, let context):
            self.init(field: path(context.codingPath), message: "must be \(Self.describe(type)), not null")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                self.init(field: "body", message: "is not valid JSON")
            } else {
                self.init(field: path(context.codingPath), message: "is not valid: \(context.debugDescription)")
            }
        @unknown default:
            self.init(field: "body", message: "is not valid")
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: "an integer"
        case is Bool.Type: "true or false"
        case is Double.Type: "a number"
        default: String(describing: type).hasPrefix("Array") ? "an array" : "an object"
        }
    }
}
