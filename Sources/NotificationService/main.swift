import NotificationServiceCore
import ServiceKit

await ServiceMain.main(NotificationService.definition, routes: NotificationService.routes)
