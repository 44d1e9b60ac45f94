import Foundation
public import HTTPTypes
public import Hummingbird
import Logging
import NIOCore

/// The request id of the request being handled, for outgoing calls and logs.
public enum RequestID {
    @TaskLocal public static var current: String?
    public static let headerName = HTTPField.Name("X-Request-ID")!
}

/// Takes the caller's `X-Request-ID` (or Hummingbird's own id when there is none), puts it on every log line of the
/// request as `request_id`, makes it the id of outgoing calls, and returns it on the response.
public struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var context = context
        let given = request.headers[RequestID.headerName].flatMap { $0.utf8.count <= 128 && !$0.isEmpty ? $0 : nil }
        let id = given ?? context.id
        context.logger[metadataKey: "request_id"] = .string(id)
        var response = try await RequestID.$current.withValue(id) { try await next(request, context) }
        response.headers[RequestID.headerName] = id
        return response
    }
}

/// Requires the shared service token in `X-Service-Token` on the routes it guards (without it, 401), then believes the
/// caller headers (`CallerHeaders`) and sets `Caller.current` for the handler.
public struct InternalAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: InternalToken

    public init(token: InternalToken) {
        self.token = token
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard token.accepts(request.headers[HTTPField.Name(InternalToken.headerName)!]) else {
            throw ServiceError(
                .unauthorized, code: "unauthorized",
                message: "this endpoint is internal: send the service token in \(InternalToken.headerName)")
        }
        // Only now, with the token right, are the caller headers believed.
        return try await Caller.$current.withValue(Caller(headers: request.headers)) {
            try await next(request, context)
        }
    }
}

extension Request {
    /// Decodes a JSON body; a malformed body or a field of the wrong type is a 400 `validation-failed` naming the
    /// field, a body over the context's limit a 413.
    public func decodeJSON<Value: Decodable>(as type: Value.Type, context: some RequestContext) async throws -> Value {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        do {
            return try JSONDecoder().decode(Value.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw ServiceError.validation([ServiceError.FieldError(error)])
        }
    }
}

/// A response whose body is `value` as JSON.
public func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws
    -> Response
{
    let data = try ServiceError.encoder.encode(value)
    var headers = headers
    headers[.contentType] = "application/json; charset=utf-8"
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

extension KeyedDecodingContainer {
    /// An integer field (money is integer minor units) that reports `12.5` as a type mismatch at the field, where
    /// Foundation's decoder reports it as a body that is not JSON at all.
    public func decodeInteger(forKey key: Key) throws -> Int {
        do {
            return try decode(Int.self, forKey: key)
        } catch {
            if (try? decode(Double.self, forKey: key)) != nil {
                throw DecodingError.typeMismatch(
                    Int.self, .init(codingPath: codingPath + [key], debugDescription: "not a whole number"))
            }
            throw error
        }
    }
}
