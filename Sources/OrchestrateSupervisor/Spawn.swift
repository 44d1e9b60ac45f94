import CSupervisorSpawn
import Foundation

/// posix_spawnp for the short-lived commands the supervisor runs itself (the build step, command probes): a clean
/// signal mask and SIGINT/SIGTERM at their default action, so the command can be interrupted whatever the
/// supervisor blocks or ignores. (The services are started by `NativeLauncher`, which needs a fork of its own.)
enum Spawn {
    enum Output {
        /// The supervisor's own standard output and error.
        case inherit
        /// /dev/null for input, output and error.
        case null
        /// Standard output to this descriptor (closed in the child afterwards, with `alsoClose`); error inherited.
        case descriptor(Int32, alsoClose: Int32)
        /// Standard input and output from and to these descriptors (pipe ends; the others are close-on-exec), error
        /// to /dev/null.
        case pipes(input: Int32, output: Int32)
    }

    /// The child's PID, or the errno of a failed spawn.
    /// - Parameters:
    ///   - environment: nil inherits the supervisor's.
    ///   - ownGroup: Put the child in a new process group, so the whole group can be killed.
    static func start(_ words: [String], environment: [String: String]?, output: Output, ownGroup: Bool) -> Result<
        pid_t, SupervisorError
    > {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        switch output {
        case .inherit:
            break
        case .null:
            posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&fileActions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&fileActions, 2, "/dev/null", O_WRONLY, 0)
        case .pipes(let input, let output):
            posix_spawn_file_actions_adddup2(&fileActions, input, 0)
            posix_spawn_file_actions_adddup2(&fileActions, output, 1)
            posix_spawn_file_actions_addopen(&fileActions, 2, "/dev/null", O_WRONLY, 0)
        case .descriptor(let descriptor, let other):
            posix_spawn_file_actions_adddup2(&fileActions, descriptor, 1)
            posix_spawn_file_actions_addclose(&fileActions, descriptor)
            posix_spawn_file_actions_addclose(&fileActions, other)
        }
        // Nothing else of the supervisor's: a socket or pipe end someone else waits on (a Foundation Process's
        // exit watch, a client's connection) does not stay open for as long as this command runs.
        _ = orchestrate_spawn_close_from(&fileActions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        let arguments = words.map { strdup($0) } + [nil]
        defer { for argument in arguments { free(argument) } }
        var pid: pid_t = 0
        let status: Int32
        if let environment {
            let entries = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { for entry in entries { free(entry) } }
            status = posix_spawnp(&pid, words[0], &fileActions, &attributes, arguments, entries)
        } else {
            status = posix_spawnp(&pid, words[0], &fileActions, &attributes, arguments, environ)
        }
        return status == 0
            ? .success(pid)
            : .failure(SupervisorError(.launch, "cannot start \(words[0])", underlying: Errno(code: status)))
    }

    /// An errno, described as strerror does.
    struct Errno: Error, CustomStringConvertible {
        var code: Int32
        var description: String { String(cString: strerror(code)) }
    }

    /// `exit N` as N, a signal as 128 + its number, from a waitpid status.
    static func exitCode(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
