import APIGatewayCore
import ServiceKit

await ServiceMain.main(APIGateway.definition, context: GatewayRequestContext.self, routes: APIGateway.routes)
