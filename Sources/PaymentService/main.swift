import PaymentServiceCore
import ServiceKit

await ServiceMain.main(PaymentService.definition, routes: PaymentService.routes)
