import ServiceKit
import UserServiceCore

await ServiceMain.main(UserService.definition, routes: UserService.routes)
