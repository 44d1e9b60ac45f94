import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

/// The embedded broker: an event log in one SQLite file in WAL mode, shared by the processes of one machine (what
/// `orchestrate up` runs), with the semantics of Redis Streams' consumer groups. Writes take SQLite's write lock
/// (`BEGIN IMMEDIATE`), so two processes never deliver one message to two members of a group; a reader polls (every
/// 5 ms while messages flow, 50 ms after 2 s without any), because SQLite cannot wake another process.
public actor SQLiteEventLog: EventBroker {
    private let connection: SQLiteConnection
    /// The connection's own thread: a statement waiting for another connection's write lock (busy_timeout) blocks it,
    /// and on the shared pool two such waits could hold every thread the lock holder needs to commit.
    private let thread: NIOThreadPool
    public nonisolated let address: String
    private var lastActivity = ContinuousClock.now

    private init(connection: SQLiteConnection, thread: NIOThreadPool, path: String) {
        self.connection = connection
        self.thread = thread
        address = "sqlite://" + path
    }

    /// Opens (and creates) the log at `path`.
    public static func open(path: String) async throws -> SQLiteEventLog {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(
                storage: .file(path: path), threadPool: thread, logger: Logger(label: "event-log"),
                on: MultiThreadedEventLoopGroup.singleton.any())
        } catch {
            try? await thread.shutdownGracefully()
            throw error
        }
        do {
            // busy_timeout replaces SQLiteNIO's retry-at-once busy handler with one that sleeps between tries.
            for statement in [
                "PRAGMA busy_timeout = 10000", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL",
                """
                CREATE TABLE IF NOT EXISTS event_log (
                  seq INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, body TEXT NOT NULL, appended_at REAL NOT NULL)
                """,
                "CREATE INDEX IF NOT EXISTS event_log_stream ON event_log (stream, seq)",
                """
                CREATE TABLE IF NOT EXISTS event_groups (
                  stream TEXT NOT NULL, grp TEXT NOT NULL, last_seq INTEGER NOT NULL, PRIMARY KEY (stream, grp))
                """,
                """
                CREATE TABLE IF NOT EXISTS event_pending (
                  stream TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, consumer TEXT NOT NULL,
                  delivered_at REAL NOT NULL, deliveries INTEGER NOT NULL, PRIMARY KEY (stream, grp, seq))
                """,
            ] {
                _ = try await connection.query(statement, [])
            }
        } catch {
            let closed: EventLoopFuture<Void> = connection.close()
            try? await closed.get()
            try? await thread.shutdownGracefully()
            throw error
        }
        return SQLiteEventLog(connection: connection, thread: thread, path: path)
    }

    public func append(stream: String, messages: [EventFields]) async throws -> [String] {
        guard !messages.isEmpty else { return [] }
        let now = Date().timeIntervalSince1970
        return try await transaction {
            var ids: [String] = []
            for fields in messages {
                let body = try Self.encode(fields)
                let rows = try await connection.query(
                    "INSERT INTO event_log (stream, body, appended_at) VALUES (?1, ?2, ?3) RETURNING seq",
                    [.text(stream), .text(body), .float(now)])
                ids.append(String(rows.first?.column("seq")?.integer ?? 0))
            }
            return ids
        }
    }

    public func createGroup(stream: String, group: String) async throws {
        _ = try await connection.query(
            "INSERT OR IGNORE INTO event_groups (stream, grp, last_seq) VALUES (?1, ?2, 0)",
            [.text(stream), .text(group)])
    }

    public func readNew(stream: String, group: String, consumer: String, count: Int, wait: Duration) async throws
        -> [StreamDelivery]
    {
        let deadline = ContinuousClock.now + wait
        while true {
            // A read-only look first: an idle poll never takes the write lock.
            let unread = try await connection.query(
                """
                SELECT 1 FROM event_log WHERE stream = ?1
                  AND seq > (SELECT last_seq FROM event_groups WHERE stream = ?1 AND grp = ?2) LIMIT 1
                """, [.text(stream), .text(group)])
            if !unread.isEmpty {
                let delivered = try await deliverUnread(stream: stream, group: group, consumer: consumer, count: count)
                if !delivered.isEmpty {
                    lastActivity = .now
                    return delivered
                }
            }
            let now = ContinuousClock.now
            guard now < deadline else { return [] }
            let pause: Duration = now - lastActivity < .seconds(2) ? .milliseconds(5) : .milliseconds(50)
            try await Task.sleep(for: min(pause, deadline - now))
        }
    }

    private func deliverUnread(stream: String, group: String, consumer: String, count: Int) async throws
        -> [StreamDelivery]
    {
        let now = Date().timeIntervalSince1970
        return try await transaction {
            let rows = try await connection.query(
                """
                SELECT seq, body FROM event_log WHERE stream = ?1
                  AND seq > (SELECT last_seq FROM event_groups WHERE stream = ?1 AND grp = ?2) ORDER BY seq LIMIT ?3
                """, [.text(stream), .text(group), .integer(count)])
            guard let last = rows.last?.column("seq")?.integer else { return [] }
            _ = try await connection.query(
                "UPDATE event_groups SET last_seq = ?3 WHERE stream = ?1 AND grp = ?2",
                [.text(stream), .text(group), .integer(last)])
            var deliveries: [StreamDelivery] = []
            for row in rows {
                let seq = row.column("seq")?.integer ?? 0
                _ = try await connection.query(
                    """
                    INSERT INTO event_pending (stream, grp, seq, consumer, delivered_at, deliveries)
                    VALUES (?1, ?2, ?3, ?4, ?5, 1)
                    """, [.text(stream), .text(group), .integer(seq), .text(consumer), .float(now)])
                deliveries.append(
                    StreamDelivery(id: String(seq), fields: Self.decode(row.column("body")?.string), deliveries: 1))
            }
            return deliveries
        }
    }

    public func claimIdle(stream: String, group: String, consumer: String, minimumIdle: Duration, count: Int)
        async throws
        -> [StreamDelivery]
    {
        let now = Date().timeIntervalSince1970
        let before = now - Double(minimumIdle.wholeMilliseconds) / 1000
        let idle = try await connection.query(
            "SELECT 1 FROM event_pending WHERE stream = ?1 AND grp = ?2 AND delivered_at <= ?3 LIMIT 1",
            [.text(stream), .text(group), .float(before)])
        guard !idle.isEmpty else { return [] }
        return try await transaction {
            let rows = try await connection.query(
                """
                UPDATE event_pending SET consumer = ?4, delivered_at = ?5, deliveries = deliveries + 1
                WHERE stream = ?1 AND grp = ?2 AND seq IN (
                  SELECT seq FROM event_pending WHERE stream = ?1 AND grp = ?2 AND delivered_at <= ?3 ORDER BY seq LIMIT ?6)
                RETURNING seq, deliveries
                """,
                [.text(stream), .text(group), .float(before), .text(consumer), .float(now), .integer(count)])
            var claimed: [StreamDelivery] = []
            for row in rows.sorted(by: { ($0.column("seq")?.integer ?? 0) < ($1.column("seq")?.integer ?? 0) }) {
                let seq = row.column("seq")?.integer ?? 0
                let body = try await connection.query("SELECT body FROM event_log WHERE seq = ?1", [.integer(seq)])
                claimed.append(
                    StreamDelivery(
                        id: String(seq), fields: Self.decode(body.first?.column("body")?.string),
                        deliveries: row.column("deliveries")?.integer ?? 1))
            }
            return claimed
        }
    }

    public func acknowledge(stream: String, group: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await transaction {
            for id in ids {
                guard let seq = Int(id) else { continue }
                _ = try await connection.query(
                    "DELETE FROM event_pending WHERE stream = ?1 AND grp = ?2 AND seq = ?3",
                    [.text(stream), .text(group), .integer(seq)])
            }
        }
    }

    public func backlog(stream: String, group: String) async throws -> Int {
        let rows = try await connection.query(
            """
            SELECT (SELECT count(*) FROM event_log WHERE stream = ?1 AND seq > g.last_seq)
                 + (SELECT count(*) FROM event_pending WHERE stream = ?1 AND grp = ?2) AS backlog
            FROM event_groups g WHERE g.stream = ?1 AND g.grp = ?2
            """, [.text(stream), .text(group)])
        return rows.first?.column("backlog")?.integer ?? 0
    }

    /// Deletes what lies before the oldest message some group still needs (its oldest pending one, or the one after
    /// the last it read).
    public func trim(stream: String) async throws -> Int {
        let rows = try await connection.query(
            """
            DELETE FROM event_log WHERE stream = ?1 AND seq < (
              SELECT min(coalesce(
                (SELECT min(p.seq) FROM event_pending p WHERE p.stream = g.stream AND p.grp = g.grp), g.last_seq + 1))
              FROM event_groups g WHERE g.stream = ?1)
            RETURNING seq
            """, [.text(stream)])
        return rows.count
    }

    public func messages(stream: String, limit: Int) async throws -> [StreamDelivery] {
        let rows = try await connection.query(
            "SELECT seq, body FROM event_log WHERE stream = ?1 ORDER BY seq LIMIT ?2", [.text(stream), .integer(limit)])
        return rows.map {
            StreamDelivery(
                id: String($0.column("seq")?.integer ?? 0), fields: Self.decode($0.column("body")?.string),
                deliveries: 0)
        }
    }

    public func close() async {
        // The future API: the async one does nothing in a cancelled task, and an unclosed connection traps on deinit.
        let closed: EventLoopFuture<Void> = connection.close()
        try? await closed.get()
        try? await thread.shutdownGracefully()
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT` (rolled back when it throws).
    private func transaction<T>(_ body: () async throws -> T) async throws -> T {
        _ = try await connection.query("BEGIN IMMEDIATE", [])
        do {
            let result = try await body()
            _ = try await connection.query("COMMIT", [])
            return result
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            throw error
        }
    }

    static func encode(_ fields: EventFields) throws -> String {
        let data = try JSONSerialization.data(
            withJSONObject: Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last }),
            options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// The fields of a stored body; a body that is not a JSON object of strings gives no fields (a malformed event,
    /// which the consumer dead-letters).
    static func decode(_ body: String?) -> [String: String] {
        guard let body, let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
            return [:]
        }
        return object.compactMapValues { $0 as? String }
    }
}
