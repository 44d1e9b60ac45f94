import Foundation

/// What `--infra native` needs from the machine: its programs, a free port, private files, permissions.
extension NativeInfrastructure {
    /// Writes a file only its owner can read (0600), created or truncated in place, never through a symbolic link
    /// (O_NOFOLLOW): these files hold passwords. `owner` gets it when given (the postgres user, when run as root).
    static func writePrivate(_ path: String, _ contents: String, owner: ProcessUser?) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SupervisorError(.setup, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let bytes = Array(contents.utf8)
        guard fchmod(descriptor, 0o600) == 0, owner.map({ fchown(descriptor, $0.uid, $0.gid) == 0 }) ?? true,
            bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == bytes.count
        else {
            throw SupervisorError(.setup, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Runs a program to its end, its output lines to `output`.
    static func run(
        _ request: LaunchRequest, launcher: any ProcessLauncher, output: @escaping @Sendable (String) -> Void
    )
        async throws -> ProcessExit
    {
        let process = try await launcher.launch(request, output: output)
        return await process.exitStatus()
    }

    /// The first directory above `path` that `user` may not enter, or nil.
    static func firstUntraversable(ancestorsOf path: String, by user: ProcessUser) -> String? {
        var directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        while directory != "/" && !directory.isEmpty {
            var status = stat()
            guard stat(directory, &status) == 0 else { return directory }
            let mode = status.st_mode
            let allowed =
                (status.st_uid == user.uid && mode & S_IXUSR != 0) || (status.st_gid == user.gid && mode & S_IXGRP != 0)
                || mode & S_IXOTH != 0
            if !allowed { return directory }
            directory = URL(fileURLWithPath: directory).deletingLastPathComponent().path
        }
        return nil
    }

    // MARK: Finding things

    static func find(_ program: String, in searchPath: String) -> String? {
        for directory in searchPath.split(separator: ":") where !directory.isEmpty {
            let candidate = directory + "/" + program
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// initdb, postgres, pg_isready and psql from one installation: the directory on PATH that has initdb, else
    /// Debian's `/usr/lib/postgresql/VERSION/bin` (newest version first), where Debian keeps them off PATH.
    static func locatePostgres(searchPath: String) throws -> Programs {
        var directories = searchPath.split(separator: ":").map(String.init)
        let debian = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        directories += debian.compactMap(Int.init).sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
        for directory in directories {
            let initdb = directory + "/initdb", postgres = directory + "/postgres"
            guard FileManager.default.isExecutableFile(atPath: initdb),
                FileManager.default.isExecutableFile(atPath: postgres)
            else { continue }
            let pgIsReady =
                [directory + "/pg_isready"].first(where: FileManager.default.isExecutableFile)
                ?? find("pg_isready", in: searchPath)
            let psql =
                [directory + "/psql"].first(where: FileManager.default.isExecutableFile) ?? find("psql", in: searchPath)
            guard let pgIsReady, let psql else { continue }
            return Programs(initdb: initdb, postgres: postgres, pgIsReady: pgIsReady, psql: psql)
        }
        throw SupervisorError(
            .setup,
            "--infra native needs PostgreSQL's initdb, postgres, pg_isready and psql, on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)"
        )
    }

    /// A port nothing listens on at `address` now.
    static func freePort(on address: String) throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else {
            throw SupervisorError(.setup, "cannot open a socket: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = 0
        inet_pton(AF_INET, address, &socketAddress.sin_addr)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            throw SupervisorError(.setup, "cannot bind \(address): \(String(cString: strerror(errno)))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: socketAddress.sin_port))
    }
}
