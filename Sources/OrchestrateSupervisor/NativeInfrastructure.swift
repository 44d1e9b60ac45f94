import Foundation
import OrchestrateContract
public import OrchestrateSpec

/// `orchestrate up --infra native`: the spec's databases on a PostgreSQL cluster and its broker on a Redis server,
/// both run from the machine's own binaries with their data under `.orchestrate/`, supervised like the services
/// (probed, restarted, in DNS as `postgres` and `redis`, stopped last) and ready before any service starts.
///
/// One cluster holds every database, each owned by a role of its name that alone may connect to it, so a
/// service reaches its own database and no other, as with compose's container per database. Nothing is open to the
/// machine's other users: every role logs in with a generated password (SCRAM; the cluster's `pg_hba.conf` is
/// orchestrate's own), Redis requires one (`requirepass`, from a 0600 config file, never on a command line), the
/// passwords live in `.orchestrate/secrets` (0700, files 0600) and reach the services only through their
/// environment (`DATABASE_PASSWORD`, `BROKER_PASSWORD`), which other users cannot read. The servers run
/// in the foreground as children of the supervisor (not through `pg_ctl start`, which detaches the server), so
/// they get the same parent-death signal and process-group teardown as the services: nothing outlives `up`.
public struct NativeInfrastructure: Sendable {
    /// The programs found on this machine.
    public struct Programs: Sendable {
        public var initdb: String
        public var postgres: String
        public var pgIsReady: String
        public var psql: String
        public var redisServer: String?
        public var redisCLI: String?
    }

    /// The servers (`postgres`, `redis`), run by a second `Supervisor` before any service starts.
    public let plan: LocalPlan
    let postgresPort: Int?
    let redisPort: Int?
    let programs: Programs?
    let databases: [String]
    let postgresDirectory: String
    let redisDirectory: String
    let user: ProcessUser?
    let passwords: Passwords

    /// The generated passwords, from `.orchestrate/secrets` (the same names as compose's secrets).
    struct Passwords: Sendable {
        var superuser: String
        var databases: [String: String]
        var redis: String
    }

    /// The secret of the cluster's superuser, and of a database's role and of Redis (as compose names them).
    static let superuserSecret = "postgres-superuser-password"
    static func databaseSecret(_ database: String) -> String { database + "-db-password" }
    static let redisSecret = "redis-password"

    public static let postgresName = "postgres"
    public static let redisName = "redis"
    /// The cluster's superuser (trust authentication, loopback only).
    static let superuser = "orchestrate"

    /// The databases the spec declares that are not external, and whether it has a broker that is not.
    static func needs(_ spec: Spec) -> (databases: [String], broker: Bool) {
        let databases = spec.services.compactMap { service -> String? in
            guard let database = service.database, database.external == nil else { return nil }
            return database.name.value
        }
        return (databases, spec.broker.map { $0.external == nil } ?? false)
    }

    /// Finds the programs, chooses free loopback ports and lays out the plan. Nothing is started.
    ///
    /// - Parameters:
    ///   - addresses: The loopback addresses for the servers (the services take the rest of 127.0.0.0/8).
    /// - Throws: `SetupError` naming what is missing (and the Debian package that has it) or what collides.
    ///   - dnsPort: The supervisor's DNS server, named in the servers' environment as in the services' (it marks
    ///     them as this supervisor's; they do not resolve names).
    ///   - secrets: Where the passwords are read, or made the first time.
    public static func plan(
        for spec: Spec, stateDirectory: String, environment: [String: String],
        addresses: (postgres: String, redis: String),
        dnsPort: Int, secrets: SecretStore
    ) throws -> NativeInfrastructure {
        let (databases, needsBroker) = needs(spec)
        var passwords = Passwords(superuser: "", databases: [:], redis: "")
        if !databases.isEmpty {
            passwords.superuser = try secrets.value(name: superuserSecret, key: nil).0
            for database in databases {
                passwords.databases[database] = try secrets.value(name: databaseSecret(database), key: nil).0
            }
        }
        if needsBroker { passwords.redis = try secrets.value(name: redisSecret, key: nil).0 }
        for name in [postgresName, redisName] where spec.service(named: name) != nil {
            throw SupervisorError(
                .setup, "--infra native runs a server named \(name), and the spec has a service of that name")
        }
        let searchPath = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        var programs: Programs?
        if !databases.isEmpty {
            programs = try locatePostgres(searchPath: searchPath)
        }
        if needsBroker {
            guard let server = find("redis-server", in: searchPath) else {
                throw SupervisorError(
                    .setup,
                    "--infra native needs redis-server on PATH for the broker (Debian: apt-get install redis-server)"
                )
            }
            if programs == nil {
                programs = Programs(initdb: "", postgres: "", pgIsReady: "", psql: "")
            }
            programs?.redisServer = server
            programs?.redisCLI = find("redis-cli", in: searchPath)
        }
        let user = geteuid() == 0 ? ProcessUser.named("postgres") : nil
        if geteuid() == 0, !databases.isEmpty, user == nil {
            throw SupervisorError(
                .setup, "PostgreSQL refuses to run as root, and there is no postgres user to run it as")
        }
        let postgresPort = databases.isEmpty ? nil : try freePort(on: addresses.postgres)
        let redisPort = needsBroker ? try freePort(on: addresses.redis) : nil
        let postgresDirectory = stateDirectory + "/postgres"
        let redisDirectory = stateDirectory + "/redis"

        typealias Check = ReplicaSupervision.Probe
        var replicas: [LocalPlan.Replica] = []
        if let postgresPort, let programs {
            let readiness = Check(
                .command([
                    programs.pgIsReady, "-q", "-h", addresses.postgres, "-p", String(postgresPort), "-U",
                    Self.superuser,
                    "-d", "postgres",
                ]), interval: .seconds(1), timeout: .seconds(2))
            replicas.append(
                LocalPlan.Replica(
                    service: postgresName, index: 1, product: postgresName, address: addresses.postgres,
                    port: postgresPort,
                    arguments: [
                        // TCP on loopback only: a Unix socket path under a deep project directory can pass the
                        // 107-byte limit, and every client here connects by address anyway.
                        "-D", postgresDirectory + "/data", "-p", String(postgresPort), "-k", "",
                        "-c", "listen_addresses=\(addresses.postgres)", "-c",
                        "hba_file=\(postgresDirectory)/pg_hba.conf",
                    ],
                    environment: [
                        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", ServiceVariable.dnsServer: "127.0.0.1:\(dnsPort)",
                    ],
                    wave: 0, executable: programs.postgres, user: user,
                    supervision: ReplicaSupervision(
                        liveness: Check(.tcp(port: postgresPort), interval: .seconds(10), timeout: .seconds(2)),
                        readiness: readiness, stopGracePeriod: .seconds(30))))
        }
        if let redisPort, let server = programs?.redisServer {
            let readiness =
                programs?.redisCLI.map { cli in
                    Check(
                        .command([cli, "-h", addresses.redis, "-p", String(redisPort), "ping"]), interval: .seconds(1),
                        timeout: .seconds(2))
                } ?? Check(.tcp(port: redisPort), interval: .seconds(1), timeout: .seconds(2))
            replicas.append(
                LocalPlan.Replica(
                    service: redisName, index: 1, product: redisName, address: addresses.redis, port: redisPort,
                    arguments: [
                        redisDirectory + "/redis.conf", "--bind", addresses.redis, "--port", String(redisPort), "--dir",
                        redisDirectory, "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode",
                        "yes",
                    ],
                    // The readiness probe's redis-cli authenticates from the environment, not its arguments.
                    environment: [ServiceVariable.dnsServer: "127.0.0.1:\(dnsPort)", "REDISCLI_AUTH": passwords.redis],
                    wave: 0, executable: server,
                    supervision: ReplicaSupervision(
                        liveness: Check(.tcp(port: redisPort), interval: .seconds(10), timeout: .seconds(2)),
                        readiness: readiness, stopGracePeriod: .seconds(10))))
        }
        return NativeInfrastructure(
            plan: LocalPlan(
                project: spec.name.value, serviceAddresses: [:], replicas: replicas, waves: [replicas.map(\.service)],
                generatedSecrets: []),
            postgresPort: postgresPort, redisPort: redisPort, programs: programs, databases: databases,
            postgresDirectory: postgresDirectory, redisDirectory: redisDirectory, user: user, passwords: passwords)
    }

    /// What the services connect to: each one's own database, and the broker.
    public func apply(to plan: LocalPlan, spec: Spec) -> LocalPlan {
        var plan = plan
        let postgresAddress = self.plan.replicas.first { $0.service == Self.postgresName }?.address
        let redisAddress = self.plan.replicas.first { $0.service == Self.redisName }?.address
        for index in plan.replicas.indices {
            guard let service = spec.service(named: plan.replicas[index].service) else { continue }
            if let database = service.database, database.external == nil, let postgresPort, let postgresAddress {
                let name = database.name.value
                plan.replicas[index].environment[ServiceVariable.databaseURL] =
                    "postgres://\(name)@\(postgresAddress):\(postgresPort)/\(name)"
                plan.replicas[index].environment[ServiceVariable.databasePassword] = passwords.databases[name]
            }
            if let broker = spec.broker, broker.external == nil, let redisPort, let redisAddress {
                plan.replicas[index].environment[ServiceVariable.brokerURL] = "redis://\(redisAddress):\(redisPort)"
                if !service.publishes.isEmpty || !service.subscribes.isEmpty {
                    plan.replicas[index].environment[ServiceVariable.brokerPassword] = passwords.redis
                }
            }
        }
        return plan
    }

    /// Creates the cluster the first time (initdb, as the postgres user when run as root) and the Redis directory.
    public func prepare(launcher: any ProcessLauncher, output: @escaping @Sendable (String) -> Void) async throws {
        let fileManager = FileManager.default
        if redisPort != nil {
            try fileManager.createDirectory(
                atPath: redisDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try Self.writePrivate(
                redisDirectory + "/redis.conf",
                "# written by orchestrate up on every start\nrequirepass \(Self.redisQuoted(passwords.redis))\n",
                owner: nil)
        }
        guard let programs, postgresPort != nil else { return }
        try fileManager.createDirectory(
            atPath: postgresDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let user {
            if let blocked = Self.firstUntraversable(ancestorsOf: postgresDirectory, by: user) {
                throw SupervisorError(
                    .setup,
                    "PostgreSQL runs as the postgres user, which cannot enter \(blocked); `chmod o+x \(blocked)`, or run orchestrate up as a user other than root"
                )
            }
            guard chown(postgresDirectory, user.uid, user.gid) == 0 else {
                throw SupervisorError(
                    .setup, "cannot give \(postgresDirectory) to the postgres user: \(String(cString: strerror(errno)))"
                )
            }
        }
        let passwordsOn = fileManager.fileExists(atPath: passwordMarker)
        // Until the superuser has its password (a cluster an older orchestrate made, with trust), it alone may log
        // in without one, for `provision` to set it; then this file is written again without that line.
        try writeHBA(
            trustSuperuser: !passwordsOn && fileManager.fileExists(atPath: postgresDirectory + "/data/PG_VERSION"))
        guard !fileManager.fileExists(atPath: postgresDirectory + "/data/PG_VERSION") else { return }
        let passwordFile = postgresDirectory + "/initdb-password"
        try Self.writePrivate(passwordFile, passwords.superuser + "\n", owner: user)
        defer { unlink(passwordFile) }
        let status = try await Self.run(
            LaunchRequest(
                executable: programs.initdb,
                arguments: [
                    "-D", postgresDirectory + "/data", "-U", Self.superuser, "--auth=scram-sha-256",
                    "--pwfile=\(passwordFile)", "-E", "UTF8",
                ],
                environment: ["LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"],
                workingDirectory: postgresDirectory, user: user),
            launcher: launcher, output: output)
        guard status == .exited(0) else {
            throw SupervisorError(
                .setup, "initdb failed (\(status)); its output is above and in .orchestrate/logs/postgres.log")
        }
        try Self.writePrivate(passwordMarker, "", owner: nil)
        try writeHBA(trustSuperuser: false)
    }

    /// Present once the superuser logs in with its password.
    var passwordMarker: String { postgresDirectory + "/passwords-on" }

    /// orchestrate's own `pg_hba.conf` (the server's `hba_file`): every role with its password, from loopback only
    /// (a client's source address is 127.0.0.1 whichever 127.x address the server listens on).
    func writeHBA(trustSuperuser: Bool) throws {
        var lines = ["# written by orchestrate up on every start"]
        if trustSuperuser { lines.append("host all \(Self.superuser) 127.0.0.0/8 trust") }
        lines.append("host all all 127.0.0.0/8 scram-sha-256")
        try Self.writePrivate(postgresDirectory + "/pg_hba.conf", lines.joined(separator: "\n") + "\n", owner: user)
    }

    /// A value in redis.conf: double-quoted, with `\` and `"` escaped, so any password stays one argument.
    static func redisQuoted(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Creates each database and its role when missing, and lets only that role (and the superuser) connect.
    public func provision(launcher: any ProcessLauncher, output: @escaping @Sendable (String) -> Void) async throws {
        guard let programs, let postgresPort, !databases.isEmpty,
            let address = plan.replicas.first(where: { $0.service == Self.postgresName })?.address
        else { return }
        // Names are DNS labels (validated), so they need no escaping inside the literals; a password is a standard
        // string literal with its quotes doubled; %I quotes identifiers and %L literals.
        func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
        let names =
            "(VALUES "
            + databases.map { "('\($0)', \(literal(passwords.databases[$0] ?? "")))" }.joined(separator: ", ")
            + ") AS wanted(name, password)"
        let upgrade =
            FileManager.default.fileExists(atPath: passwordMarker)
            ? "" : "ALTER ROLE \(Self.superuser) PASSWORD \(literal(passwords.superuser));\n"
        let script = """
            \(upgrade)SELECT format('CREATE ROLE %I LOGIN', name) FROM \(names)
              WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \\gexec
            SELECT format('ALTER ROLE %I PASSWORD %L', name, password) FROM \(names) \\gexec
            SELECT format('CREATE DATABASE %I OWNER %I', name, name) FROM \(names)
              WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name) \\gexec
            SELECT format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', name) FROM \(names) \\gexec

            """
        // The script holds the passwords: 0600, and gone once run.
        let scriptPath = postgresDirectory + "/provision.sql"
        try Self.writePrivate(scriptPath, script, owner: nil)
        defer { unlink(scriptPath) }
        let status = try await Self.run(
            LaunchRequest(
                executable: programs.psql,
                arguments: [
                    "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", address, "-p", String(postgresPort), "-U",
                    Self.superuser,
                    "-d", "postgres", "-f", scriptPath,
                ],
                environment: [
                    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin", "PGPASSWORD": passwords.superuser,
                ]),
            launcher: launcher, output: output)
        guard status == .exited(0) else {
            throw SupervisorError(.setup, "creating the databases failed (psql \(status)); its output is above")
        }
        if !upgrade.isEmpty {
            // The superuser has its password now: drop its trust line, and have the server read the file again.
            try writeHBA(trustSuperuser: false)
            try Self.writePrivate(passwordMarker, "", owner: nil)
            _ = try await Self.run(
                LaunchRequest(
                    executable: programs.psql,
                    arguments: [
                        "-X", "-q", "-h", address, "-p", String(postgresPort), "-U", Self.superuser, "-d", "postgres",
                        "-c", "SELECT pg_reload_conf()",
                    ],
                    environment: [
                        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin",
                        "PGPASSWORD": passwords.superuser,
                    ]),
                launcher: launcher, output: output)
        }
    }
}
