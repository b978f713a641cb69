/* common.c — error printing, context creation and the progress line of the CLI. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

int am_cli_fail(am_ctx_t *ctx, am_status status) {
  const char *msg = am_last_error(ctx);
  fprintf(stderr, "attnmap: %s\n", msg && *msg ? msg : am_status_str(status));
  return (status == AM_STATUS_BAD_INPUT || status == AM_STATUS_INVALID_ARGUMENT)
             ? AM_EXIT_USAGE
             : AM_EXIT_FAILURE;
}

int am_cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "attnmap %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (try attnmap %s --help)\n", cmd);
  va_end(ap);
  return AM_EXIT_USAGE;
}

am_ctx_t *am_cli_context(const char *backend, int threads, int *code) {
  am_ctx_options_t o = {.backend = backend, .threads = threads};
  am_ctx_t *ctx = NULL;
  char err[1024] = "";
  am_status st = am_ctx_create(&o, &ctx, err, sizeof err);
  if (st != AM_STATUS_OK) {
    fprintf(stderr, "attnmap: %s\n", err[0] ? err : am_status_str(st));
    *code = st == AM_STATUS_INVALID_ARGUMENT ? AM_EXIT_USAGE : AM_EXIT_FAILURE;
    return NULL;
  }
  return ctx;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int am_progress_parse(const char *text, am_progress_mode *mode) {
  if (!strcmp(text, "auto"))
    *mode = AM_PROGRESS_AUTO;
  else if (!strcmp(text, "always"))
    *mode = AM_PROGRESS_ALWAYS;
  else if (!strcmp(text, "never"))
    *mode = AM_PROGRESS_NEVER;
  else
    return -1;
  return 0;
}

void am_progress_init(am_progress_t *p, const char *what, am_progress_mode mode, int quiet) {
  p->tty = isatty(STDERR_FILENO);
  p->enabled = !quiet && (mode == AM_PROGRESS_ALWAYS || (mode == AM_PROGRESS_AUTO && p->tty));
  p->start = now();
  p->last = -1.0;
  /* a steady line in logs: often enough to see a stall, rarely enough to read; settable for
   * tests and short jobs */
  const char *env = getenv("ATTNMAP_PROGRESS_INTERVAL");
  p->interval = env && atof(env) > 0 ? atof(env) : 10.0;
  p->what = what;
}

void am_progress_update(void *user, int64_t done, int64_t total) {
  am_progress_t *p = user;
  if (!p->enabled)
    return;
  double t = now(), dt = t - p->start;
  if (!p->tty && p->last >= 0 && t - p->last < p->interval && done < total)
    return;
  p->last = t;
  double rate = dt > 0 ? (double)done / dt : 0.0;
  char eta[32] = "-";
  if (rate > 0 && done < total)
    snprintf(eta, sizeof eta, "%.0f s", (double)(total - done) / rate);
  else if (done >= total)
    snprintf(eta, sizeof eta, "done in %.1f s", dt);
  fprintf(stderr, "%s%s: %lld/%lld examples (%3.0f%%)  %.0f examples/s  ETA %s%s",
          p->tty ? "\r" : "", p->what, (long long)done, (long long)total,
          total ? 100.0 * (double)done / (double)total : 100.0, rate, eta,
          p->tty ? "   " : "\n");
  fflush(stderr);
}

void am_progress_end(am_progress_t *p) {
  if (p->enabled && p->tty)
    fputc('\n', stderr);
}
