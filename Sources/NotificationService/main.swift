import NotificationServiceCore
import ServiceKit

await ServiceMain.main(
    NotificationService.definition, subscriptions: NotificationService.subscriptions, routes: NotificationService.routes
)
