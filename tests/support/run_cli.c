/* run_cli.c — runs the attnmap CLI in a child process and captures what it prints
 * (see run_cli.h). posix_spawn keeps this safe inside Criterion's forked test workers. */
#include "run_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct buffer {
  char *p;
  size_t n, cap;
} buffer_t;

static int append(buffer_t *b, const char *data, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *grown = realloc(b->p, cap);
    if (!grown)
      return -1;
    b->p = grown;
    b->cap = cap;
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
  b->p[b->n] = '\0';
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads what is ready on *fd into b; closes it at end of file (EIO: a pty whose other
 * side is closed). */
static void drain(int *fd, buffer_t *b) {
  char chunk[4096];
  ssize_t got = read(*fd, chunk, sizeof chunk);
  if (got > 0) {
    append(b, chunk, (size_t)got);
  } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
    close(*fd);
    *fd = -1;
  }
}

/* Opens a pseudo-terminal: the master in *master, the slave's name in name. */
static int open_pty(int *master, char *name, size_t len) {
  *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*master < 0)
    return -1;
  if (grantpt(*master) != 0 || unlockpt(*master) != 0 ||
      ptsname_r(*master, name, len) != 0) {
    close(*master);
    *master = -1;
    return -1;
  }
  return 0;
}

static void collect(cli_result_t *r, pid_t pid, int out_fd, int err_fd, double timeout) {
  buffer_t out = {0}, err = {0};
  double deadline = now() + timeout;
  while (out_fd >= 0 || err_fd >= 0) {
    struct pollfd p[2] = {{.fd = out_fd, .events = POLLIN},
                          {.fd = err_fd, .events = POLLIN}};
    double left = deadline - now();
    if (left <= 0) {
      kill(pid, SIGKILL);
      r->timed_out = 1;
      break;
    }
    int ready = poll(p, 2, (int)(left * 1000) + 1);
    if (ready < 0 && errno != EINTR)
      break;
    if (ready <= 0)
      continue;
    if (out_fd >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
      drain(&out_fd, &out);
    if (err_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
      drain(&err_fd, &err);
  }
  if (out_fd >= 0)
    close(out_fd);
  if (err_fd >= 0)
    close(err_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  r->exit_code = WIFEXITED(status) && !r->timed_out ? WEXITSTATUS(status) : -1;
  r->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  append(&out, "", 0);
  append(&err, "", 0);
  r->out = out.p ? out.p : strdup("");
  r->err = err.p ? err.p : strdup("");
  r->out_len = out.n;
  r->err_len = err.n;
}

int cli_runv(cli_result_t *r, const cli_options_t *opts, const char *const *argv) {
  memset(r, 0, sizeof *r);
  r->exit_code = -1;
  const char *binary = opts && opts->binary ? opts->binary : ATTNMAP_CLI;
  double timeout = opts && opts->timeout_s > 0 ? opts->timeout_s : 60.0;
  int tty = opts && opts->stderr_tty;
  int outp[2] = {-1, -1}, errp[2] = {-1, -1}, master = -1, rc = -1;
  char slave[256];
  size_t argc = 0;
  while (argv[argc])
    argc++;
  const char **args = calloc(argc + 2, sizeof *args);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!args || pipe2(outp, O_CLOEXEC) != 0)
    goto done;
  if (tty ? open_pty(&master, slave, sizeof slave) != 0 : pipe2(errp, O_CLOEXEC) != 0)
    goto done;
  args[0] = binary;
  memcpy(args + 1, argv, argc * sizeof *args);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
  if (tty)
    posix_spawn_file_actions_addopen(&fa, 2, slave, O_RDWR | O_NOCTTY, 0);
  else
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
  pid_t pid;
  if (posix_spawn(&pid, binary, &fa, NULL, (char *const *)args, environ) != 0)
    goto done;
  close(outp[1]);
  outp[1] = -1;
  if (errp[1] >= 0) {
    close(errp[1]);
    errp[1] = -1;
  }
  collect(r, pid, outp[0], tty ? master : errp[0], timeout);
  outp[0] = errp[0] = master = -1; /* closed by collect */
  rc = 0;
done:
  posix_spawn_file_actions_destroy(&fa);
  int fds[5] = {outp[0], outp[1], errp[0], errp[1], master};
  for (int i = 0; i < 5; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  free(args);
  return rc;
}

int cli_run(cli_result_t *r, const cli_options_t *opts, const char *arg0, ...) {
  const char *argv[64];
  int n = 0;
  va_list ap;
  va_start(ap, arg0);
  for (const char *a = arg0; a && n < 63; a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  return cli_runv(r, opts, argv);
}

void cli_result_free(cli_result_t *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

int cli_count_lines(const char *s) {
  int n = 0;
  size_t len = strlen(s);
  for (size_t i = 0; i < len; i++)
    n += s[i] == '\n';
  return n + (len > 0 && s[len - 1] != '\n');
}
