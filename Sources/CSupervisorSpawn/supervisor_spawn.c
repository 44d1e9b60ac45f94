#define _GNU_SOURCE
#include "supervisor_spawn.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

static void report_and_exit(int pipe_fd) {
    int error = errno;
    ssize_t ignored = write(pipe_fd, &error, sizeof error);
    (void)ignored;
    _exit(127);
}

#if defined(__linux__)
/// Writes `text` to `path` (a /proc file); 0 or -1 with errno. Async-signal-safe.
static int write_text(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t length = strlen(text);
    ssize_t written = write(fd, text, length);
    int error = errno;
    close(fd);
    if (written != (ssize_t)length) {
        errno = written < 0 ? error : EIO;
        return -1;
    }
    return 0;
}

/// Appends `value` in decimal at `out`; returns the end. Async-signal-safe (no snprintf).
static char *append_decimal(char *out, unsigned long value) {
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0) *out++ = digits[--count];
    return out;
}

/// "ID ID 1\n" for a uid_map or gid_map that maps one id to itself.
static void identity_map(char buffer[64], unsigned long id) {
    char *at = append_decimal(buffer, id);
    *at++ = ' ';
    at = append_decimal(at, id);
    *at++ = ' ';
    *at++ = '1';
    *at++ = '\n';
    *at = '\0';
}

/// The child's own /etc/hosts (see the header). 0, or -1 with errno.
static int enter_hosts_namespace(const char *hosts_file) {
    uid_t user = geteuid();
    gid_t group = getegid();
    int flags = CLONE_NEWNS | (user != 0 ? CLONE_NEWUSER : 0);
    if (unshare(flags) != 0) return -1;
    if (user != 0) {
        char map[64];
        if (write_text("/proc/self/setgroups", "deny") != 0) return -1;
        identity_map(map, (unsigned long)user);
        if (write_text("/proc/self/uid_map", map) != 0) return -1;
        identity_map(map, (unsigned long)group);
        if (write_text("/proc/self/gid_map", map) != 0) return -1;
    }
    // Private, so the bind mount below stays in this namespace and nothing mounted later leaks in.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return -1;
    // The file is opened without following a symbolic link and mounted through its descriptor, so a link planted
    // at its path cannot put another file in its place.
    int fd = open(hosts_file, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat status;
    if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
        close(fd);
        errno = ELOOP;  // a symbolic link (O_PATH | O_NOFOLLOW opens the link itself) or not a file
        return -1;
    }
    char source[48] = "/proc/self/fd/";
    *append_decimal(source + strlen(source), (unsigned long)fd) = '\0';
    int mounted = mount(source, "/etc/hosts", NULL, MS_BIND, NULL);
    int error = errno;
    close(fd);
    errno = error;
    return mounted == 0 ? 0 : -1;
}
#endif

int orchestrate_hosts_namespace_check(const char *hosts_file) {
#if defined(__linux__)
    pid_t pid = fork();
    if (pid < 0) return errno;
    if (pid == 0) {
        if (enter_hosts_namespace(hosts_file) != 0) _exit(errno & 0xff ? errno & 0xff : 1);
        _exit(0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return errno;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
#else
    (void)hosts_file;
    return ENOSYS;
#endif
}

pid_t orchestrate_spawn(const char *path, char *const argv[], char *const envp[], const char *directory,
                        int output_fd, int parent_death_signal, uid_t uid, gid_t gid, const char *hosts_file) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int error = errno;
        close(report[0]);
        close(report[1]);
        return -error;
    }
    if (pid == 0) {
        // The child: only async-signal-safe calls from here to exec.
        setpgid(0, 0);
#if defined(__linux__)
        if (hosts_file != NULL && enter_hosts_namespace(hosts_file) != 0) report_and_exit(report[1]);
#else
        (void)hosts_file;
#endif
        if (uid != (uid_t)-1) {
            if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) report_and_exit(report[1]);
        }
#if defined(__linux__)
        if (parent_death_signal != 0) {
            if (prctl(PR_SET_PDEATHSIG, parent_death_signal) != 0) report_and_exit(report[1]);
            // The parent may have died before prctl: then nobody would send the signal.
            if (getppid() != parent) _exit(127);
        }
#endif
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction default_action = {0};
        default_action.sa_handler = SIG_DFL;
        for (int signal_number = 1; signal_number < NSIG; signal_number++) {
            if (signal_number == SIGKILL || signal_number == SIGSTOP) continue;
            sigaction(signal_number, &default_action, NULL);
        }
        int null_fd = open("/dev/null", O_RDONLY);
        if (null_fd < 0) report_and_exit(report[1]);
        if (dup2(null_fd, 0) < 0) report_and_exit(report[1]);
        if (dup2(output_fd, 1) < 0 || dup2(output_fd, 2) < 0) report_and_exit(report[1]);
        if (directory != NULL && chdir(directory) != 0) report_and_exit(report[1]);
        // Nothing else of the supervisor's reaches the program: its listening sockets, the control connections,
        // other children's pipes. Marked close-on-exec (not closed: the report pipe must work until exec).
        int marked = -1;
#if defined(__linux__) && defined(SYS_close_range)
        marked = (int)syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC, Linux 5.11 */);
#endif
        if (marked != 0) {
            long limit = sysconf(_SC_OPEN_MAX);
            if (limit < 0 || limit > 65536) limit = 65536;
            for (int fd = 3; fd < limit; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        execve(path, argv, envp);
        report_and_exit(report[1]);
    }
    // The parent: set the group here too, so a signal to the group right after this call cannot miss the child.
    setpgid(pid, pid);
    close(report[1]);
    int child_error = 0;
    ssize_t count;
    do {
        count = read(report[0], &child_error, sizeof child_error);
    } while (count < 0 && errno == EINTR);
    close(report[0]);
    if (count == (ssize_t)sizeof child_error) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -child_error;
    }
    return pid;
}

int orchestrate_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int orchestrate_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
#else
    (void)actions;
    (void)lowest;
    return -1;
#endif
}
