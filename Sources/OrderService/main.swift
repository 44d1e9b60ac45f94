import OrderServiceCore
import ServiceKit

await ServiceMain.main(OrderService.definition, routes: OrderService.routes)
