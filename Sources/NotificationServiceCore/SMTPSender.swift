import Foundation
import NIOCore
import NIOPosix
import ServiceKit

/// `NOTIFICATION_SENDER=smtp`: each confirmation is an e-mail to the user's address, handed to the SMTP server of
/// `SMTP_URL` (`smtp://HOST:PORT`, plain SMTP as a local relay or a mail catcher takes it; no TLS, no login),
/// from `NOTIFICATION_FROM`. The Message-ID is the event's id, so a redelivered event sends an e-mail a mail
/// system can recognise as the same one. Anything but the expected reply at any step, or more than 10 s in all,
/// is a failed send (the event is delivered again).
struct SMTPSender: NotificationSender {
    let host: String
    let port: Int
    let from: String
    var channel: String { "smtp" }

    static let timeout: Duration = .seconds(10)

    init(url: String, from: String) throws(ServiceKitError) {
        guard let components = URLComponents(string: url), components.scheme == "smtp", let host = components.host,
            !host.isEmpty
        else {
            throw ServiceKitError.configuration("SMTP_URL", "must be smtp://HOST:PORT when NOTIFICATION_SENDER=smtp")
        }
        guard Self.isAddress(from) else {
            throw ServiceKitError.configuration("NOTIFICATION_FROM", "must be an e-mail address, not \"\(from)\"")
        }
        self.host = host
        self.port = components.port ?? 25
        self.from = from
    }

    /// An address that can go between `<` and `>` in a command and in a header: something@something, nothing
    /// that could end the line or the bracket.
    static func isAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty && text.utf8.count <= 254
            && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
    }

    func send(_ notification: OutgoingNotification) async throws {
        guard Self.isAddress(notification.to) else {
            throw NotificationError(message: "cannot mail \"\(notification.to)\": not an address SMTP can take")
        }
        let message = Self.message(notification, from: from, date: Date())
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.deliver(message, to: notification.to) }
            group.addTask {
                try await Task.sleep(for: Self.timeout)
                throw NotificationError(message: "the SMTP server \(host):\(port) took more than 10 s")
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// One SMTP session: greeting, EHLO, MAIL, RCPT, DATA, the message, QUIT.
    private func deliver(_ message: String, to recipient: String) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var replies = SMTPReplies(inbound.makeAsyncIterator())
            func step(_ command: String?, expecting codes: Set<Int>) async throws {
                if let command { try await outbound.write(ByteBuffer(string: command + "\r\n")) }
                let reply = try await replies.next()
                guard codes.contains(reply.code) else {
                    throw NotificationError(
                        message:
                            "the SMTP server answered \(reply.code) \(reply.text) to \(command?.prefix(4) ?? "the connection")"
                    )
                }
            }
            try await step(nil, expecting: [220])
            try await step("EHLO notification-service", expecting: [250])
            try await step("MAIL FROM:<\(from)>", expecting: [250])
            try await step("RCPT TO:<\(recipient)>", expecting: [250, 251])
            try await step("DATA", expecting: [354])
            try await step(message + "\r\n.", expecting: [250])
            try? await step("QUIT", expecting: [221])
        }
    }

    /// The e-mail: headers in ASCII, the text as UTF-8 in base64 (so no line can start with the `.` that ends
    /// DATA, and any name goes through).
    static func message(_ notification: OutgoingNotification, from: String, date: Date) -> String {
        let body = Data(notification.message.utf8).base64EncodedString(options: [
            .lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed,
        ])
        let headers = [
            "From: <\(from)>",
            "To: <\(notification.to)>",
            "Subject: Your order is confirmed",
            "Date: \(rfc5322(date))",
            "Message-ID: <\(notification.eventID.filter { $0.isLetter || $0.isNumber || $0 == "-" })@notification-service>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
        ]
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + body
    }

    /// `Wed, 02 Dec 2026 10:15:00 +0000`.
    static func rfc5322(_ date: Date) -> String {
        var time = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}

/// SMTP replies read from a connection: `250-…` lines continue a reply, `250 …` ends it.
struct SMTPReplies {
    struct Reply {
        var code: Int
        var text: String
    }

    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var pending: [UInt8] = []

    init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) {
        self.inbound = inbound
    }

    mutating func next() async throws -> Reply {
        var text: [String] = []
        while true {
            let line = try await nextLine()
            guard line.utf8.count >= 3, let code = Int(line.prefix(3)) else {
                throw NotificationError(message: "the SMTP server sent \"\(line.prefix(80))\", not a reply")
            }
            text.append(String(line.dropFirst(4)))
            if line.utf8.count == 3 || line.dropFirst(3).first == " " {
                return Reply(code: code, text: text.joined(separator: " "))
            }
        }
    }

    private mutating func nextLine() async throws -> String {
        while true {
            if let end = pending.firstIndex(of: UInt8(ascii: "\n")) {
                var line = pending[..<end]
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                pending.removeSubrange(...end)
                return String(decoding: line, as: UTF8.self)
            }
            guard pending.count < 64 * 1024, var buffer = try await inbound.next() else {
                throw NotificationError(message: "the SMTP server closed the connection")
            }
            pending += buffer.readBytes(length: buffer.readableBytes) ?? []
        }
    }
}
