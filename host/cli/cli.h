/* cli.h — what the subcommands of the attnmap CLI share. */
#ifndef AM_CLI_CLI_H
#define AM_CLI_CLI_H

#include <stdio.h>

#include "attnmap.h"

/* Exit codes (docs/design.md §6). */
#define AM_EXIT_OK 0
#define AM_EXIT_FAILURE 1
#define AM_EXIT_USAGE 2
#define AM_EXIT_DRIFT 3 /* report --fail-on-drift found drift */

int am_cli_analyze(int argc, char **argv);
int am_cli_inspect(int argc, char **argv);
int am_cli_merge(int argc, char **argv);
int am_cli_faithfulness(int argc, char **argv);
int am_cli_report(int argc, char **argv);
int am_cli_overlay(int argc, char **argv);

/* The closing line's note on the target the run read and where it came from. */
void am_cli_target_note(const am_dataset_t *ds, const char *target_arg, char *buf,
                        size_t len);

/* Executes the command again with OMP_WAIT_POLICY=passive and OPENBLAS_NUM_THREADS=1
 * where the user set neither (thread_env.c: spinning idle threads take the cores from the
 * run's); returns when it does not. */
void am_cli_idle_threads_sleep(char **argv);

/* -o OUT, --force, --quiet and --help of a command that writes one run folder from run
 * folders (out_options.c): -1 to go on (the operands start at optind), else the exit
 * code (--help printed with usage, or a usage error). */
int am_cli_out_options(const char *cmd, int argc, char **argv, void (*usage)(FILE *),
                       const char **out, am_run_options_t *opts, int *quiet);

/* Prints "attnmap: MESSAGE" and returns the exit code for status. */
int am_cli_fail(am_ctx_t *ctx, am_status status);
/* Prints "attnmap CMD: MESSAGE" for a usage error and returns AM_EXIT_USAGE. */
int am_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Makes a context or prints why not; returns NULL on failure (*code set). */
am_ctx_t *am_cli_context(const char *backend, int threads, int *code);

/* The library's options (am_option_get) of the scopes in the bit set `scopes` as getopt
 * long options: --NAME ('_' as '-'), val = AM_CLI_OPTION_BASE + the option's index;
 * `skip` (may be NULL) is left out. names holds the spelled names. Returns the count. */
#define AM_CLI_MAX_OPTIONS 64
#define AM_CLI_OPTION_BASE 256
struct option;
int am_cli_options(struct option *out, char (*names)[40], int cap, unsigned scopes,
                   const char *skip);
/* Help lines of the same options: "  --topk K   k of ... (default 5)". */
void am_cli_options_help(FILE *out, unsigned scopes, const char *skip);
/* Sets the option getopt returned as c (a flag: "1") in set; prints a usage error and
 * returns -1 when the value is refused. */
int am_cli_option_apply(const char *cmd, am_settings_t *set, int c, const char *arg);

/* Progress (--progress=auto|always|never): on a terminal a line rewritten in place; with
 * always and no terminal (nightly logs), a plain line at most every interval seconds and
 * one at the end; nothing with never or --quiet. Each line: done/total, examples/s, ETA. */
typedef enum am_progress_mode {
  AM_PROGRESS_AUTO = 0,
  AM_PROGRESS_ALWAYS,
  AM_PROGRESS_NEVER
} am_progress_mode;
typedef struct am_progress {
  int enabled, tty;
  double start, last, interval;
  const char *what;
} am_progress_t;
/* "auto", "always", "never" into *mode; -1 for anything else. */
int am_progress_parse(const char *text, am_progress_mode *mode);
void am_progress_init(am_progress_t *p, const char *what, am_progress_mode mode, int quiet);
void am_progress_update(void *user, int64_t done, int64_t total);
void am_progress_end(am_progress_t *p);

#endif
