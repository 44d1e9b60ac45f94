import APIGatewayCore
import Hummingbird
import ServiceKit

await ServiceMain.main(
    APIGateway.definition, context: BasicRequestContext.self, server: APIGateway.server, routes: APIGateway.routes)
