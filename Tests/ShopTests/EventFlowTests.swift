import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import OrchestrateTestSupport
import ServiceEvents
import ServiceKit
import Testing

/// Which broker the shop's events travel on in a test.
enum ShopBroker: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case redis, embedded
    var testDescription: String { rawValue }
}

/// The article's asynchronous half with real processes: order-service publishes `order.created` through its outbox,
/// notification-service consumes it.
@Suite(.timeLimit(.minutes(10)), .serialized) struct EventFlowTests {
    /// 1,000 orders while notification-service is killed (SIGKILL) and restarted twice and — on Redis — Redis is
    /// stopped and started once: afterwards exactly 1,000 notifications, one per order, none twice, none lost; every
    /// order was taken (201) whatever the broker did. A poison event (its user does not exist) goes to the dead-letter
    /// stream after its deliveries, and the consumer keeps going.
    @Test(.requires("redis-server", RedisServer.isInstalled), arguments: ShopBroker.allCases)
    func everyOrderIsNotifiedExactlyOnce(broker: ShopBroker) async throws {
        let directory = try ExternalTool.temporaryDirectory("events-\(broker)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var redis: RedisServer?
        let brokerURL: String
        switch broker {
        case .redis:
            let server = try await RedisServer.start("events-redis")
            redis = server
            brokerURL = server.url
        case .embedded:
            brokerURL = "sqlite://" + directory.appendingPathComponent("events.sqlite").path
        }
        defer { redis?.remove() }
        let common = [
            "INTERNAL_TOKEN": "events-token", "LOG_LEVEL": "info", "REQUEST_LOG_LEVEL": "debug",
            "BROKER_URL": brokerURL,
            "EVENT_VISIBILITY_TIMEOUT": "1s", "EVENT_MAX_DELIVERIES": "3", "SHUTDOWN_GRACE_PERIOD": "3s",
        ]
        func environment(_ database: String, _ extra: [String: String] = [:]) -> [String: String] {
            common.merging(["DATABASE_URL": "sqlite://" + directory.appendingPathComponent("\(database).sqlite").path])
            { a, _ in a }
            .merging(extra) { a, _ in a }
        }
        let users = try await RunningService(
            "UserService", port: try ChildProcess.freePort(), environment: environment("users"), directory: directory)
        let payments = try await RunningService(
            "PaymentService", port: try ChildProcess.freePort(), environment: environment("payments"),
            directory: directory)
        let orders = try await RunningService(
            "OrderService", port: try ChildProcess.freePort(),
            environment: environment("orders", ["USER_SERVICE_URL": users.url, "PAYMENT_SERVICE_URL": payments.url]),
            directory: directory)
        let notifications = try await RunningService(
            "NotificationService", port: try ChildProcess.freePort(),
            environment: environment("notifications", ["USER_SERVICE_URL": users.url]), directory: directory)
        let all = [notifications, orders, payments, users]
        defer { for service in all { service.process.signal(SIGKILL) } }
        let serviceToken = [("X-Service-Token", "events-token")]
        /// Each buyer is its own subject (a subject has one profile); the checks read as an admin.
        func buyer(_ number: Int) -> [(String, String)] {
            serviceToken + [("X-Authenticated-Subject", "buyer-\(number)")]
        }
        let admin = serviceToken + [("X-Authenticated-Subject", "auditor"), ("X-Authenticated-Roles", "admin")]

        var buyers: [String] = []
        for number in 0..<20 {
            let user = try await call(
                .POST, users.url + "/users",
                json: #"{"name":"Buyer \#(number)","email":"buyer\#(number)@example.com"}"#,
                headers: buyer(number))
            buyers.append(try #require(user.json["id"] as? String))
        }
        let userIDs = buyers

        /// Places `count` orders, 8 at a time; returns their ids. Every one must be taken.
        let placed = Placed()
        func place(_ count: Int) async throws {
            let start = placed.count
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for index in stride(from: start + worker, to: start + count, by: 8) {
                            let userID = userIDs[index % userIDs.count]
                            let body =
                                #"{"userId":"\#(userID)","items":[{"sku":"sku-\#(index)","quantity":1,"unitPrice":\#(100 + index)}]}"#
                            let answer = try await call(
                                .POST, orders.url + "/orders", json: body, headers: buyer(index % userIDs.count))
                            #expect(answer.status == 201, "order \(index): \(answer.status) \(answer.json)")
                            if let id = answer.json["id"] as? String { placed.add(id) }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }

        try await place(250)
        notifications.process.signal(SIGKILL)  // mid-stream: some events delivered, not acknowledged
        _ = await notifications.process.wait(timeout: .seconds(5))
        try await place(100)
        try await notifications.restart()
        try await place(100)
        if let redis {
            await redis.stop()  // orders are still taken; their events wait in the outbox
            try await place(100)
            try await redis.start()
        } else {
            try await place(100)
        }
        try await place(150)
        notifications.process.signal(SIGKILL)
        _ = await notifications.process.wait(timeout: .seconds(5))
        try await place(100)
        try await notifications.restart()
        try await place(200)
        #expect(placed.count == 1000)

        // A poison event: well-formed, but for a user that does not exist, so every delivery fails.
        let producer = try await BrokerLocation(url: brokerURL).connect()
        let poisonID = UUID().uuidString.lowercased()
        let poison = EventEnvelope(
            id: poisonID, type: "order.created", occurredAt: Date(),
            payload:
                #"{"orderId":"\#(poisonID)","userId":"\#(UUID().uuidString.lowercased())","items":[],"total":1,"currency":"USD"}"#,
            traceparent: nil)
        _ = try await producer.append(stream: EventEnvelope.stream(for: "order.created"), messages: [poison.fields])

        // Recovery, bounded: 90 s.
        var notified: [String: Int] = [:]
        var deadLetters: [StreamDelivery] = []
        for _ in 0..<180 {
            notified = [:]
            for userID in userIDs {
                let listed = try await call(
                    .GET, notifications.url + "/notifications?userId=\(userID)", headers: admin)
                for item in listed.json["items"] as? [[String: Any]] ?? [] {
                    notified[item["eventId"] as? String ?? "", default: 0] += 1
                }
            }
            deadLetters = try await producer.messages(
                stream: EventEnvelope.deadLetterStream(for: "order.created"), limit: 10)
            if notified.count >= 1000, !deadLetters.isEmpty { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        await producer.close()
        #expect(notified.count == 1000, "notifications: \(notified.count) of 1000")
        #expect(notified.values.allSatisfy { $0 == 1 }, "none twice")
        #expect(Set(notified.keys) == placed.ids, "one per order: lost \(placed.ids.subtracting(notified.keys).count)")
        #expect(deadLetters.map { $0.fields["id"] } == [poisonID])
        #expect(deadLetters.first?.fields["dead_letter_reason"] == "failed 3 deliveries")

        let orderMetrics = try await metrics(orders.url)
        #expect(orderMetrics.contains("events_outbox_pending 0"), "the outbox drained")
        let consumerMetrics = try await metrics(notifications.url)
        #expect(
            consumerMetrics.contains(#"events_dead_letters_total{type="order.created",group="notification-service"} 1"#)
        )
        #expect(notifications.process.log.contains("Thank you, Buyer"))
        for service in all { #expect(await service.process.stop() == 0, "\(service.product)") }
    }

    /// `NOTIFICATION_SENDER=webhook`: the confirmation is POSTed as JSON with the event id as `Idempotency-Key`; a
    /// receiver that fails (500) makes the event be delivered again, and the notification is recorded once, when the
    /// send succeeded. A sender that does not exist stops the service at start, naming the variable.
    @Test func theWebhookSenderRetriesUntilTheReceiverTakesIt() async throws {
        let directory = try ExternalTool.temporaryDirectory("webhook")
        defer { try? FileManager.default.removeItem(at: directory) }
        let hooks = Hooks()
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 16))
            let attempt = hooks.add(key: request.headers[HTTPField.Name("Idempotency-Key")!] ?? "", body: body)
            return Response(status: attempt == 1 ? .internalServerError : .noContent)
        }
        try await Application(router: router).test(.live) { receiver in
            let rig = try await NotificationRig.start(
                in: directory,
                sender: [
                    "NOTIFICATION_SENDER": "webhook",
                    "NOTIFICATION_WEBHOOK_URL": "http://127.0.0.1:\(receiver.port!)/hook",
                ])
            defer { rig.stop() }
            let userID = try await rig.createUser(name: "Hook", email: "hook@example.com")
            let eventID = try await rig.publishOrder(userID: userID, subject: "hook@example.com", total: 1999)
            let items = try await rig.notifications(of: userID, as: "hook@example.com")
            #expect(items.count == 1)
            #expect(items.first?["channel"] as? String == "webhook")
            #expect(items.first?["message"] as? String == "Order \(eventID) confirmed: 19.99 EUR. Thank you, Hook.")
            // Another subject sees none of hook's notifications, even naming the user id.
            #expect(try await rig.notifications(of: userID, as: "stranger@example.com", polls: 1).isEmpty)
            let received = hooks.all
            // At least the failed send and one redelivery; a slow ack may bring one more, with the same key, which
            // the receiver can recognise (the notification above is recorded once whatever the count).
            #expect(received.count >= 2, "the failed send, then the redelivery")
            #expect(received.allSatisfy { $0.key == eventID })
            let sent = try JSONSerialization.jsonObject(with: Data((received.last?.body ?? "").utf8)) as? [String: Any]
            #expect(sent?["to"] as? String == "hook@example.com")
            #expect(sent?["eventID"] as? String == eventID)
        }

        let misconfigured = try ChildProcess(
            binaries.appendingPathComponent("NotificationService").path,
            environment: [
                "INTERNAL_TOKEN": "t", "USER_SERVICE_URL": "http://127.0.0.1:1",
                "NOTIFICATION_SENDER": "carrier-pigeon",
                "PORT": String(try ChildProcess.freePort()),
                "DATABASE_URL": "sqlite://" + directory.appendingPathComponent("m.sqlite").path,
            ],
            logPath: directory.appendingPathComponent("misconfigured.log").path)
        #expect(await misconfigured.wait(timeout: .seconds(20)) == 78)
        #expect(misconfigured.log.contains("NOTIFICATION_SENDER must be log, webhook or smtp"))
    }

    /// `NOTIFICATION_SENDER=smtp` against a real SMTP server (aiosmtpd, from PyPI, writing a Maildir): while the
    /// server is down the send fails and the event comes again; once it is up the user gets one e-mail, with the
    /// event id as its Message-ID and the confirmation (a name beyond ASCII included) as UTF-8.
    @Test(.requires("aiosmtpd", ExternalTool.find("aiosmtpd") != nil))
    func theSMTPSenderMailsTheUserOnce() async throws {
        let aiosmtpd = try #require(
            ExternalTool.find("aiosmtpd"), "aiosmtpd is missing: scripts/test installs it into .build-venv")
        let directory = try ExternalTool.temporaryDirectory("smtp")
        defer { try? FileManager.default.removeItem(at: directory) }
        let mailPort = try ChildProcess.freePort()
        let rig = try await NotificationRig.start(
            in: directory,
            sender: [
                "NOTIFICATION_SENDER": "smtp", "SMTP_URL": "smtp://127.0.0.1:\(mailPort)",
                "NOTIFICATION_FROM": "shop@example.com",
            ])
        defer { rig.stop() }
        let userID = try await rig.createUser(name: "Zoë", email: "zoe@example.com")
        let eventID = try await rig.publishOrder(userID: userID, subject: "zoe@example.com", total: 500)
        // No server yet: the send fails and the event waits for its redelivery.
        for _ in 0..<600 where !rig.notifications.process.log.contains("event handler failed") {  // bounded: 60 s
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(rig.notifications.process.log.contains("event handler failed"))

        let maildir = directory.appendingPathComponent("maildir")
        let server = try ChildProcess(
            aiosmtpd.path, ["-n", "-l", "127.0.0.1:\(mailPort)", "-c", "aiosmtpd.handlers.Mailbox", maildir.path],
            environment: ["PATH": "/usr/bin:/bin"], logPath: directory.appendingPathComponent("aiosmtpd.log").path)
        defer { server.signal(SIGKILL) }
        let items = try await rig.notifications(of: userID, as: "zoe@example.com", polls: 150)
        #expect(items.count == 1)
        #expect(items.first?["channel"] as? String == "smtp")
        let newMail = maildir.appendingPathComponent("new")
        let mails = (try? FileManager.default.contentsOfDirectory(atPath: newMail.path)) ?? []
        #expect(mails.count == 1, "\(server.log)")
        let mail = try String(contentsOf: newMail.appendingPathComponent(try #require(mails.first)), encoding: .utf8)
        #expect(mail.contains("To: <zoe@example.com>") && mail.contains("From: <shop@example.com>"))
        #expect(mail.contains("Message-ID: <\(eventID)@notification-service>"))
        #expect(mail.contains("Content-Type: text/plain; charset=utf-8"))
        let body = mail.components(separatedBy: "\n\n").dropFirst().joined(separator: "\n\n").filter {
            !$0.isWhitespace
        }
        let text = Data(base64Encoded: body).map { String(decoding: $0, as: UTF8.self) }
        #expect(text == "Order \(eventID) confirmed: 5.00 EUR. Thank you, Zoë.", "\(mail)")
        #expect(await server.stop() != nil)
    }

    func metrics(_ base: String) async throws -> String {
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: base + "/metrics"), timeout: .seconds(5))
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }
}

/// What the webhook receiver was sent.
final class Hooks: @unchecked Sendable {
    private let lock = NSLock()
    private var received: [(key: String, body: String)] = []

    /// Records a call; returns its number (1 for the first).
    func add(key: String, body: String) -> Int {
        lock.withLock {
            received.append((key, body)); return received.count
        }
    }
    var all: [(key: String, body: String)] { lock.withLock { received } }
}

/// The orders placed so far, from several tasks.
final class Placed: @unchecked Sendable {
    private let lock = NSLock()
    private var placed: [String] = []

    func add(_ id: String) { lock.withLock { placed.append(id) } }
    var count: Int { lock.withLock { placed.count } }
    var ids: Set<String> { lock.withLock { Set(placed) } }
}

/// user-service and notification-service as processes on an embedded event log, to test a sender: users are
/// created at user-service, and `order.created` events are appended to the log as order-service would.
struct NotificationRig {
    let brokerURL: String
    let users: RunningService
    let notifications: RunningService

    static func start(in directory: URL, sender: [String: String]) async throws -> NotificationRig {
        let brokerURL = "sqlite://" + directory.appendingPathComponent("events.sqlite").path
        let common = ["INTERNAL_TOKEN": "t", "BROKER_URL": brokerURL, "EVENT_VISIBILITY_TIMEOUT": "500ms"]
        let users = try await RunningService(
            "UserService", port: try ChildProcess.freePort(),
            environment: common.merging([
                "DATABASE_URL": "sqlite://" + directory.appendingPathComponent("u.sqlite").path
            ]) { a, _ in a },
            directory: directory)
        do {
            let notifications = try await RunningService(
                "NotificationService", port: try ChildProcess.freePort(),
                environment: common.merging(sender) { a, _ in a }.merging([
                    "DATABASE_URL": "sqlite://" + directory.appendingPathComponent("n.sqlite").path,
                    "USER_SERVICE_URL": users.url,
                ]) { a, _ in a },
                directory: directory)
            return NotificationRig(brokerURL: brokerURL, users: users, notifications: notifications)
        } catch {
            users.process.signal(SIGKILL)
            throw error
        }
    }

    func stop() {
        notifications.process.signal(SIGKILL)
        users.process.signal(SIGKILL)
    }

    /// The new user's id.
    func createUser(name: String, email: String) async throws -> String {
        let user = try await call(
            .POST, users.url + "/users", json: #"{"name":"\#(name)","email":"\#(email)"}"#,
            headers: [("X-Service-Token", "t"), ("X-Authenticated-Subject", email)])
        return try #require(user.json["id"] as? String)
    }

    /// Appends an `order.created` for the user (its order id is the event id, returned), in EUR.
    func publishOrder(userID: String, subject: String, total: Int) async throws -> String {
        let eventID = UUID().uuidString.lowercased()
        let event = EventEnvelope(
            id: eventID, type: "order.created", occurredAt: Date(),
            payload:
                #"{"orderId":"\#(eventID)","userId":"\#(userID)","subject":"\#(subject)","items":[],"total":\#(total),"currency":"EUR"}"#,
            traceparent: nil)
        let producer = try await BrokerLocation(url: brokerURL).connect()
        _ = try await producer.append(stream: EventEnvelope.stream(for: "order.created"), messages: [event.fields])
        await producer.close()
        return eventID
    }

    /// The user's notifications once there is at least one, polling every 100 ms at most `polls` times.
    func notifications(of userID: String, as subject: String, polls: Int = 100) async throws -> [[String: Any]] {
        var items: [[String: Any]] = []
        for _ in 0..<polls {
            let listed = try await call(
                .GET, notifications.url + "/notifications?userId=\(userID)",
                headers: [("X-Service-Token", "t"), ("X-Authenticated-Subject", subject)])
            items = listed.json["items"] as? [[String: Any]] ?? []
            if !items.isEmpty { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return items
    }
}
