/* run_cli.h — runs the attnmap CLI (ATTNMAP_CLI) as a child process with posix_spawn,
 * stdin from /dev/null, stdout and stderr captured through pipes (or stderr on a
 * pseudo-terminal, to see what a person at a terminal sees), under a timeout. */
#ifndef TESTS_SUPPORT_RUN_CLI_H
#define TESTS_SUPPORT_RUN_CLI_H

#include <stddef.h>

typedef struct cli_result {
  int exit_code; /* the exit status; -1 when killed by a signal or timed out */
  int signal;    /* the terminating signal, 0 when it exited */
  int timed_out; /* 1: killed after the timeout */
  char *out;     /* stdout, NUL-terminated (malloc'd) */
  char *err;     /* stderr, NUL-terminated (malloc'd) */
  size_t out_len, err_len;
} cli_result_t;

typedef struct cli_options {
  double timeout_s;   /* 0: 60 seconds */
  int stderr_tty;     /* 1: the child's stderr is a pseudo-terminal */
  const char *binary; /* NULL: ATTNMAP_CLI */
} cli_options_t;

/* Runs BINARY argv[0] argv[1] ... (argv NULL-terminated, without the binary). Returns 0
 * when the child ran (whatever its exit code), -1 when it could not be started. */
int cli_runv(cli_result_t *r, const cli_options_t *opts, const char *const *argv);
/* The same with the arguments as a NULL-terminated list: cli_run(&r, NULL, "inspect", p,
 * NULL). */
int cli_run(cli_result_t *r, const cli_options_t *opts, const char *arg0, ...);
void cli_result_free(cli_result_t *r);

/* Lines of s: the number of '\n', plus one when the last line has none ("" has 0). */
int cli_count_lines(const char *s);

#endif
