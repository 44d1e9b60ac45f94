import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OrchestrateSupervisor
import OrchestrateTestSupport
import Testing

/// The built products: beside the test bundle (`.build/debug`).
let productsDirectory: URL = {
    let executable = URL(
        fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
    let beside = executable.deletingLastPathComponent()
    if FileManager.default.isExecutableFile(atPath: beside.appendingPathComponent("orchestrate").path) { return beside }
    return ExternalTool.packageRoot.appendingPathComponent(".build/debug")
}()

/// `orchestrate up` as a user runs it, as a process of its own, and its other commands beside it.
@Suite(.timeLimit(.minutes(10)), .serialized) struct UpEndToEndTests {
    let orchestrate = productsDirectory.appendingPathComponent("orchestrate").path
    /// The shop's ports (3000 to 3004 in services.yaml) as this test's copy of the spec has them: ports the OS just
    /// handed out, so a developer's own `up`, or anything else on 3000, does not meet the test's.
    let ports: [Int: Int] = Dictionary(
        uniqueKeysWithValues: (3000...3004).map { ($0, (try? ChildProcess.freePort()) ?? $0) })
    var gatewayPort: Int { ports[3000]! }

    /// The root services.yaml, written into `directory` with the ports of `ports`.
    func shopSpec(in directory: URL) throws -> URL {
        var text = try String(
            contentsOf: ExternalTool.packageRoot.appendingPathComponent("services.yaml"), encoding: .utf8)
        for (declared, free) in ports {
            text = text.replacingOccurrences(of: "port: \(declared)\n", with: "port: \(free)\n")
        }
        let spec = directory.appendingPathComponent("services.yaml")
        try text.write(to: spec, atomically: true, encoding: .utf8)
        return spec
    }

    @Test func theShopComesUpAnswersByNameHealsAndLeavesNothingBehind() async throws {
        let directory = try ExternalTool.temporaryDirectory("up")
        defer { try? FileManager.default.removeItem(at: directory) }
        let spec = try shopSpec(in: directory)
        let up = try ChildProcess(
            orchestrate,
            ["up", "-f", spec.path, "--no-build", "--bin-path", productsDirectory.path, "--color", "never"],
            environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path],
            logPath: directory.appendingPathComponent("up.log").path)
        var stopped = false
        defer { if !stopped { up.signal(SIGKILL) } }

        // All ready: bounded at 120 s (a cold debug binary takes seconds to load the first time).
        #expect(await eventually(.seconds(120)) { up.log.contains("all 7 replicas of 5 services ready") })
        let rows = try await replicas(directory)
        #expect(rows.count == 7)
        #expect(rows.allSatisfy { $0.ready && $0.state == .running && $0.pid != nil })
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(".orchestrate/hosts").path))
        #expect(up.log.contains("generated secret jwt-secret"))

        // Through the gateway at localhost:3000 with a token from `orchestrate token`: a user, then an order.
        let (tokenStatus, tokenOutput) = try await command(["token", "--sub", "e2e", "-f", spec.path], in: directory)
        #expect(tokenStatus == 0)
        let token = tokenOutput.split(separator: "\n").last.map(String.init) ?? ""
        #expect(try await call(.GET, "/api/users", token: nil).0 == 401)
        let (created, user) = try await call(
            .POST, "/api/users", #"{"name":"Ada","email":"ada@example.com"}"#, token: token)
        #expect(created == 201)
        let userID = try #require(
            (try JSONSerialization.jsonObject(with: Data(user.utf8)) as? [String: Any])?["id"] as? String)
        let (ordered, order) = try await call(
            .POST, "/api/orders", #"{"userId":"\#(userID)","items":[{"sku":"book","quantity":2,"unitPrice":1250}]}"#,
            token: token)
        #expect(ordered == 201)
        #expect(order.contains(#""total":2500"#))
        // The order's event reaches notification-service through the embedded event log.
        let notifications = try await notification(for: userID, containing: "confirmed: 25.00 USD", token: token)
        #expect(notifications.contains("confirmed: 25.00 USD"), "\(notifications)")
        #expect(
            FileManager.default.fileExists(
                atPath: directory.appendingPathComponent(".orchestrate/data/events.sqlite").path))

        // DNS: both user-service replicas, by dig and by `orchestrate resolve`.
        let state = try #require(StateFile.read(directory.appendingPathComponent(".orchestrate/state.json").path))
        let dig = try #require(ExternalTool.find("dig"), "dig is missing: scripts/test installs bind9-dnsutils")
        let answer = await Dig.run(dig, port: state.dnsPort, ["+short", "user-service"]).split(separator: "\n")
        #expect(Set(answer) == ["127.0.0.4", "127.0.0.5"])
        let (resolved, resolveOutput) = try await command(["resolve", "user-service", "-f", spec.path], in: directory)
        #expect(resolved == 0)
        #expect(
            resolveOutput.contains("user-service\tA\t127.0.0.4") && resolveOutput.contains("user-service\tA\t127.0.0.5")
        )
        #expect(resolveOutput.contains("SRV\t0 1 \(ports[3001]!) 2.user-service.shop.local"))

        // kill -9 one replica: restarted and ready again, the other untouched.
        let victim = try #require(rows.first { $0.service == "user-service" && $0.replica == 1 }?.pid)
        let other = rows.first { $0.service == "user-service" && $0.replica == 2 }?.pid
        kill(victim, SIGKILL)
        #expect(
            await eventually(.seconds(30)) {
                let now = (try? await self.replicas(directory)) ?? []
                let row = now.first { $0.service == "user-service" && $0.replica == 1 }
                return row?.restarts == 1 && row?.ready == true && row?.pid != victim
            })
        #expect(try await replicas(directory).first { $0.service == "user-service" && $0.replica == 2 }?.pid == other)
        #expect(up.log.contains("user-service-1 killed by SIGKILL"))
        let (logsStatus, logs) = try await command(["logs", "user-service", "--file", spec.path], in: directory)
        #expect(logsStatus == 0)
        #expect(logs.contains("user-service-2") && logs.contains("user-service-1 killed by SIGKILL"))

        // stop, start and restart through the control socket.
        let (stopStatus, stopOutput) = try await command(["stop", "payment-service", "-f", spec.path], in: directory)
        #expect(stopStatus == 0 && stopOutput.contains("stopped"))
        #expect(try await replicas(directory).first { $0.service == "payment-service" }?.state == .stopped)
        #expect(try await command(["start", "payment-service", "-f", spec.path], in: directory).0 == 0)
        #expect(
            await eventually(.seconds(30)) {
                (try? await self.replicas(directory))?.first { $0.service == "payment-service" }?.ready == true
            })
        let (restartStatus, restartOutput) = try await command(
            ["restart", "notification-service", "-f", spec.path], in: directory)
        #expect(restartStatus == 0)
        #expect(restartOutput.contains("notification-service  1"))
        #expect(try await replicas(directory).first { $0.service == "notification-service" }?.restarts == 1)
        let (unknownStatus, unknownOutput) = try await command(
            ["restart", "no-such-service", "-f", spec.path], in: directory)
        #expect(unknownStatus == 1 && unknownOutput.contains("no service named no-such-service"))

        // SIGTERM: everything stops, in order, and no process of the shop is left.
        let pids = try await replicas(directory).compactMap(\.pid)
        #expect(pids.count == 7)
        #expect(processes(withDNSPort: state.dnsPort).count == 7)  // the check below can see them
        up.signal(SIGTERM)
        let exit = await up.wait(timeout: .seconds(60))
        stopped = exit != nil
        #expect(exit == 0)
        #expect(pids.allSatisfy { !ProcessInfoReader.isAlive($0) })
        #expect(processes(withDNSPort: state.dnsPort).isEmpty)
        #expect(
            !FileManager.default.fileExists(atPath: directory.appendingPathComponent(".orchestrate/state.json").path))
        let lines = up.log.split(separator: "\n")
        let gatewayStopped = lines.firstIndex { $0.contains("api-gateway-1 stopped") }
        let userStopped = lines.firstIndex { $0.contains("user-service-1 stopped") }
        #expect(gatewayStopped != nil && userStopped != nil && gatewayStopped! < userStopped!)
    }

    /// `up --infra native`: the databases on a PostgreSQL cluster (initdb'd under .orchestrate, a role per
    /// database that alone may connect to it) and the broker on redis-server, both supervised, ready before any
    /// service, kept across runs, and gone with the supervisor — by SIGTERM and by SIGKILL.
    @Test(.requires("psql and redis-server", ExternalTool.find("psql") != nil && RedisServer.isInstalled))
    func theShopRunsOnPostgreSQLAndRedis() async throws {
        let psql = try #require(ExternalTool.find("psql"), "psql is missing: scripts/test installs postgresql-client")
        try #require(RedisServer.isInstalled, "redis-server is missing: scripts/test installs it")
        let directory = try ExternalTool.temporaryDirectory("native")
        defer { try? FileManager.default.removeItem(at: directory) }
        let spec = try shopSpec(in: directory)
        func up(_ name: String) throws -> ChildProcess {
            try ChildProcess(
                orchestrate,
                [
                    "up", "-f", spec.path, "--no-build", "--bin-path", productsDirectory.path, "--color", "never",
                    "--infra", "native",
                ],
                environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path],
                logPath: directory.appendingPathComponent("\(name).log").path)
        }
        let first = try up("first")
        var firstStopped = false
        defer { if !firstStopped { first.signal(SIGKILL) } }
        // initdb, then the servers, then the shop: bounded at 180 s.
        #expect(
            await eventually(.seconds(180)) { first.log.contains("all 7 replicas of 5 services ready") }, "\(first.log)"
        )
        let lines = first.log.split(separator: "\n")
        let postgresReady = try #require(lines.firstIndex { $0.contains("postgres-1 ready") })
        let redisReady = try #require(lines.firstIndex { $0.contains("redis-1 ready") })
        let firstServiceStarted = try #require(
            lines.firstIndex { $0.contains("-1 started") && !$0.contains("postgres") && !$0.contains("redis") })
        #expect(postgresReady < firstServiceStarted && redisReady < firstServiceStarted)

        let rows = try await replicas(directory)
        #expect(rows.count == 9)
        let postgres = try #require(rows.first { $0.service == "postgres" })
        #expect(rows.first { $0.service == "redis" }?.ready == true && postgres.ready)
        let port = try #require(postgres.port)

        // Each service's role reaches its own database, with its password, and no other.
        let secrets = directory.appendingPathComponent(".orchestrate/secrets")
        let usersPassword = try String(
            contentsOf: secrets.appendingPathComponent("users-db-password"), encoding: .utf8)
        func psqlStatus(user: String, database: String, password: String?, as other: Bool = false) async throws
            -> (Int32?, String)
        {
            var words = [
                psql.path, "-X", "-w", "-h", postgres.address, "-p", String(port), "-U", user, "-d", database, "-Atc",
                "SELECT 1",
            ]
            // Another user of this machine: nobody, with no groups.
            if other { words = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + words }
            var environment = ["PATH": "/usr/bin:/bin"]
            environment["PGPASSWORD"] = password
            let run = try ChildProcess(
                words[0], Array(words.dropFirst()), environment: environment,
                logPath: directory.appendingPathComponent("psql-\(UUID().uuidString).log").path)
            return (await run.wait(timeout: .seconds(30)), run.log)
        }
        #expect(try await psqlStatus(user: "users", database: "users", password: usersPassword).0 == 0)
        let (crossStatus, crossOutput) = try await psqlStatus(
            user: "users", database: "orders", password: usersPassword)
        #expect(crossStatus != 0 && crossOutput.contains("CONNECT privilege"), "\(crossOutput)")
        // Without the password no role gets in, the superuser neither.
        for user in ["users", "orchestrate"] {
            let (status, output) = try await psqlStatus(user: user, database: "postgres", password: nil)
            #expect(status != 0 && output.contains("password"), "\(user): \(output)")
        }
        // Another uid can read no password and reach nothing: not the secrets, not PostgreSQL, not Redis.
        let redis = try #require(rows.first { $0.service == "redis" })
        if geteuid() == 0 {
            let (status, output) = try await psqlStatus(
                user: "orchestrate", database: "postgres", password: nil, as: true)
            #expect(status != 0 && output.contains("password"), "\(output)")
            let peek = try ChildProcess(
                "/usr/bin/setpriv",
                ["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/cat", secrets.path + "/users-db-password"],
                environment: ["PATH": "/usr/bin:/bin"],
                logPath: directory.appendingPathComponent("peek.log").path)
            #expect(await peek.wait(timeout: .seconds(10)) != 0)
            #expect(peek.log.contains("Permission denied"), "\(peek.log)")
            let cli = try #require(ExternalTool.find("redis-cli"))
            let redisPeek = try ChildProcess(
                "/usr/bin/setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", cli.path, "-h", redis.address, "-p",
                    String(try #require(redis.port)), "XLEN", "events:order.created",
                ],
                environment: ["PATH": "/usr/bin:/bin"],
                logPath: directory.appendingPathComponent("redis-peek.log").path)
            _ = await redisPeek.wait(timeout: .seconds(10))
            #expect(redisPeek.log.contains("NOAUTH"), "\(redisPeek.log)")
        }

        // A user and an order through the gateway; the order's event travels on Redis Streams.
        let (_, tokenOutput) = try await command(["token", "--sub", "native", "-f", spec.path], in: directory)
        let token = tokenOutput.split(separator: "\n").last.map(String.init) ?? ""
        let (created, user) = try await call(
            .POST, "/api/users", #"{"name":"Grace","email":"grace@example.com"}"#, token: token)
        #expect(created == 201)
        let userID = try #require(
            (try JSONSerialization.jsonObject(with: Data(user.utf8)) as? [String: Any])?["id"] as? String)
        let (ordered, _) = try await call(
            .POST, "/api/orders", #"{"userId":"\#(userID)","items":[{"sku":"pen","quantity":1,"unitPrice":300}]}"#,
            token: token)
        #expect(ordered == 201)
        let notifications = try await notification(for: userID, containing: "confirmed: 3.00 USD", token: token)
        #expect(notifications.contains("confirmed: 3.00 USD"), "\(notifications)")
        #expect(
            !FileManager.default.fileExists(
                atPath: directory.appendingPathComponent(".orchestrate/data/events.sqlite").path))

        // SIGTERM: the shop first, then the servers; nothing is left.
        let state = try #require(StateFile.read(directory.appendingPathComponent(".orchestrate/state.json").path))
        let cluster = family(of: try #require(postgres.pid))
        #expect(cluster.count > 1)  // the postmaster and its workers
        #expect(processes(withDNSPort: state.dnsPort).count >= 8)  // the services and Redis
        first.signal(SIGTERM)
        let exit = await first.wait(timeout: .seconds(90))
        firstStopped = exit != nil
        #expect(exit == 0)
        #expect(processes(withDNSPort: state.dnsPort).isEmpty)
        #expect(cluster.allSatisfy { !ProcessInfoReader.isAlive($0) })
        let stopped = first.log.split(separator: "\n")
        let orderStopped = try #require(stopped.firstIndex { $0.contains("order-service-1 stopped") })
        let postgresStopped = try #require(stopped.firstIndex { $0.contains("postgres-1 stopped") })
        #expect(orderStopped < postgresStopped)

        // The data stays: a second run (no initdb) still has the user; a SIGKILLed supervisor takes the servers along.
        let second = try up("second")
        defer { second.signal(SIGKILL) }
        #expect(
            await eventually(.seconds(180)) { second.log.contains("all 7 replicas of 5 services ready") },
            "\(second.log)")
        #expect(!second.log.contains("initdb") && !second.log.contains("creating directory"))
        #expect(try await call(.GET, "/api/users/\(userID)", token: token).1.contains("grace@example.com"))
        let secondState = try #require(StateFile.read(directory.appendingPathComponent(".orchestrate/state.json").path))
        let secondCluster = family(
            of: try #require(try await replicas(directory).first { $0.service == "postgres" }?.pid))
        #expect(!processes(withDNSPort: secondState.dnsPort).isEmpty && secondCluster.count > 1)
        second.signal(SIGKILL)
        _ = await second.wait(timeout: .seconds(10))
        #expect(
            await eventually(.seconds(20)) {
                self.processes(withDNSPort: secondState.dnsPort).isEmpty
                    && secondCluster.allSatisfy { !ProcessInfoReader.isAlive($0) }
            })
    }

    /// A supervisor killed with SIGKILL cannot stop anything itself: the kernel does, through PR_SET_PDEATHSIG.
    @Test func aKilledSupervisorLeavesNoChildren() async throws {
        let directory = try ExternalTool.temporaryDirectory("orphans")
        defer { try? FileManager.default.removeItem(at: directory) }
        let bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let sleeper = bin.appendingPathComponent("Sleeper")
        try "#!/bin/sh\necho \"sleeping as $$\"\nexec sleep 300\n".write(to: sleeper, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: sleeper.path)
        let spec = directory.appendingPathComponent("services.yaml")
        try """
        version: 1
        name: orphans
        services:
          sleeper: { product: Sleeper, replicas: 2 }
        """.write(to: spec, atomically: true, encoding: .utf8)
        let up = try ChildProcess(
            orchestrate, ["up", "-f", spec.path, "--no-build", "--bin-path", bin.path, "--color", "never"],
            environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path],
            logPath: directory.appendingPathComponent("up.log").path)
        #expect(await eventually(.seconds(30)) { up.log.components(separatedBy: "sleeping as").count == 3 })
        let pids = up.log.components(separatedBy: "sleeping as ").dropFirst().compactMap {
            Int32($0.prefix { $0.isNumber })
        }
        #expect(pids.count == 2)
        #expect(pids.allSatisfy(ProcessInfoReader.isAlive))
        up.signal(SIGKILL)
        _ = await up.wait(timeout: .seconds(10))
        #expect(await eventually(.seconds(10)) { pids.allSatisfy { !ProcessInfoReader.isAlive($0) } })

        // The state file it left names them; the next `up` finds nothing to reclaim and starts cleanly.
        let again = try ChildProcess(
            orchestrate, ["up", "-f", spec.path, "--no-build", "--bin-path", bin.path, "--color", "never"],
            environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path],
            logPath: directory.appendingPathComponent("again.log").path)
        #expect(await eventually(.seconds(30)) { again.log.contains("all 2 replicas of 1 services ready") })
        #expect(await again.stop(grace: .seconds(30)) == 0)
    }

    /// A process an earlier run left behind (as on a system without a parent-death signal), named in its state
    /// file, is stopped by the next `up` before it starts anything.
    @Test func aLeftoverOfAnEarlierRunIsReclaimed() async throws {
        let directory = try ExternalTool.temporaryDirectory("reclaim")
        defer { try? FileManager.default.removeItem(at: directory) }
        let spec = directory.appendingPathComponent("services.yaml")
        try "version: 1\nname: reclaim\nservices:\n  sleeper: { product: Sleeper }\n".write(
            to: spec, atomically: true, encoding: .utf8)
        let bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try "#!/bin/sh\nexec sleep 300\n".write(
            to: bin.appendingPathComponent("Sleeper"), atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o755], ofItemAtPath: bin.appendingPathComponent("Sleeper").path)
        // The leftover: a `sleep` leading its own session and group, as the supervisor's children do.
        let leftover = try ChildProcess(
            "/usr/bin/setsid", ["sleep", "300"], environment: ["PATH": "/usr/bin:/bin"],
            logPath: directory.appendingPathComponent("leftover.log").path)
        defer { leftover.signal(SIGKILL) }
        #expect(await eventually { ProcessInfoReader.executable(of: leftover.pid)?.hasSuffix("sleep") == true })
        let executable = try #require(ProcessInfoReader.executable(of: leftover.pid))
        let state = directory.appendingPathComponent(".orchestrate")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        try StateFile(
            supervisorPID: 4_194_305,  // above Linux's largest PID: a supervisor that is gone
            dnsPort: 1, controlSocket: state.appendingPathComponent("control.sock").path,
            processes: [
                .init(
                    service: "sleeper", replica: 1, pid: leftover.pid, executable: executable,
                    startTime: ProcessInfoReader.startTime(of: leftover.pid))
            ]
        ).write(to: state.appendingPathComponent("state.json").path)
        let up = try ChildProcess(
            orchestrate, ["up", "-f", spec.path, "--no-build", "--bin-path", bin.path, "--color", "never"],
            environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path],
            logPath: directory.appendingPathComponent("up.log").path)
        #expect(await eventually(.seconds(30)) { up.log.contains("all 1 replicas of 1 services ready") })
        #expect(
            up.log.contains("reclaiming sleeper-1 (PID \(leftover.pid)), left running by an earlier orchestrate up"))
        #expect(await leftover.wait(timeout: .seconds(10)) != nil)
        #expect(await up.stop(grace: .seconds(30)) == 0)
    }
}
