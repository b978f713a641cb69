/* run_limited.c — see run_limited.h. */
#include "support/run_limited.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int run_limited(const char *const *argv, int resource, unsigned long long limit,
                int ignore_signal, char *err, size_t errlen) {
  int fds[2];
  if (errlen == 0 || pipe(fds) != 0)
    return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null < 0)
      _exit(120);
    dup2(null, 0);
    dup2(null, 1);
    dup2(fds[1], 2);
    close(fds[0]);
    if (ignore_signal)
      signal(ignore_signal, SIG_IGN);
    struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
    if (setrlimit(resource, &rl) != 0)
      _exit(121);
    execv(argv[0], (char *const *)argv);
    _exit(122);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t got;
  while (n + 1 < errlen &&
         ((got = read(fds[0], err + n, errlen - 1 - n)) > 0 || (got < 0 && errno == EINTR)))
    n += got > 0 ? (size_t)got : 0;
  err[n] = '\0';
  char drain[4096]; /* whatever does not fit, so that the child never blocks on the pipe */
  while ((got = read(fds[0], drain, sizeof drain)) > 0 || (got < 0 && errno == EINTR))
    ;
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return status;
}
