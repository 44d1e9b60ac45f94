#ifndef ORCHESTRATE_SUPERVISOR_SPAWN_H
#define ORCHESTRATE_SUPERVISOR_SPAWN_H

#include <spawn.h>
#include <sys/types.h>

/// Starts `path` with `argv` and `envp` in `directory`, as the leader of a new process group, with standard input
/// from /dev/null and standard output and error to `output_fd`, every signal at its default and unblocked.
/// When `parent_death_signal` is not 0 and the system has PR_SET_PDEATHSIG (Linux), the child gets that signal
/// when the thread that called this function ends — so call it from a thread that lives as long as the child.
///
/// When `uid` is not (uid_t)-1 the child first becomes that user, with `gid` as its only group (a supervisor run
/// as root starting PostgreSQL, which refuses root); this happens before the parent-death signal is set, because
/// a change of credentials clears it.
///
/// When `hosts_file` is not NULL the child gets its own mount namespace in which `hosts_file` is bind-mounted over
/// /etc/hosts, so every program resolves the names `orchestrate up` gives, whatever resolver it uses. A child of a
/// supervisor that is not root first enters a new user namespace that maps only its own user and group: it stays
/// that user and, after exec, has no capabilities. This happens before `uid` is taken.
///
/// Returns the child's PID, or -errno when it could not start (fork failed, or exec failed in the child: the
/// child reports the exec error through a close-on-exec pipe before it exits, so "no such file" is an error here,
/// not an exit status later).
pid_t orchestrate_spawn(const char *path, char *const argv[], char *const envp[], const char *directory,
                        int output_fd, int parent_death_signal, uid_t uid, gid_t gid, const char *hosts_file);

/// Whether a child can be given `hosts_file` as its /etc/hosts (see `orchestrate_spawn`): 0 when it can, else the
/// errno of the step that failed (EPERM without user namespaces, ENOENT without /etc/hosts, …). Forks a child that
/// tries and exits; nothing of the caller's changes.
int orchestrate_hosts_namespace_check(const char *hosts_file);

/// A pipe whose both ends are close-on-exec (pipe2 is a GNU extension Swift's Glibc module does not show).
int orchestrate_pipe(int fds[2]);

/// Adds "close every descriptor from `lowest` on" to `actions` (glibc 2.34's posix_spawn_file_actions_addclosefrom_np,
/// which Swift's Glibc module does not show): a child started with it holds nothing of its parent's but what the
/// earlier actions gave it. Without it (another libc) a descriptor that is not close-on-exec is inherited; -1 then.
int orchestrate_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

#endif
