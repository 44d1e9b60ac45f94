#define _GNU_SOURCE
#include "supervisor_spawn.h"

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <signal.h>
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

pid_t orchestrate_spawn(const char *path, char *const argv[], char *const envp[], const char *directory,
                        int output_fd, int parent_death_signal, uid_t uid, gid_t gid) {
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
