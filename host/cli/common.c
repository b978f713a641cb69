/* common.c — error printing, context creation and the progress line of the CLI. */
#include <getopt.h>
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

/* The CLI sees only the public API; the library escapes its own messages (am_fail), this
 * escapes what the CLI prints from argv: no escape sequence reaches the terminal. */
static void put_escaped(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f)
      fprintf(stderr, "\\x%02x", *p);
    else
      fputc(*p, stderr);
}

int am_cli_usage_error(const char *cmd, const char *fmt, ...) {
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  fprintf(stderr, "attnmap %s: ", cmd);
  put_escaped(text);
  fprintf(stderr, " (try attnmap %s --help)\n", cmd);
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

int am_cli_options(struct option *out, char (*names)[40], int cap, unsigned scopes,
                   const char *skip) {
  int n = 0;
  for (int i = 0; i < am_option_count() && n < cap; i++) {
    const am_option_info_t *o = am_option_get(i);
    if (!(scopes & (1u << o->scope)) || (skip && strcmp(skip, o->name) == 0))
      continue;
    snprintf(names[n], sizeof names[n], "%s", o->name);
    for (char *p = names[n]; *p; p++)
      *p = *p == '_' ? '-' : *p;
    out[n] = (struct option){names[n],
                             o->kind == AM_OPTION_FLAG ? no_argument : required_argument, 0,
                             AM_CLI_OPTION_BASE + i};
    n++;
  }
  return n;
}

void am_cli_options_help(FILE *out, unsigned scopes, const char *skip) {
  for (int i = 0; i < am_option_count(); i++) {
    const am_option_info_t *o = am_option_get(i);
    if (!(scopes & (1u << o->scope)) || (skip && strcmp(skip, o->name) == 0))
      continue;
    char flag[64], range[160] = "", note[320] = "";
    snprintf(flag, sizeof flag, "--%s%s%s", o->name, o->metavar ? " " : "",
             o->metavar ? o->metavar : "");
    for (char *p = flag + 2; *p && *p != ' '; p++)
      *p = *p == '_' ? '-' : *p;
    if (o->kind == AM_OPTION_INT)
      snprintf(range, sizeof range, "%.0f..%.0f", o->min, o->max);
    else if (o->kind == AM_OPTION_REAL)
      snprintf(range, sizeof range, "[%g,%g%c", o->min, o->max, o->max_open ? ')' : ']');
    else if (o->kind == AM_OPTION_CHOICE || o->kind == AM_OPTION_LIST)
      snprintf(range, sizeof range, "%s", o->choices);
    int dflt = o->kind != AM_OPTION_FLAG && o->fallback && o->fallback[0];
    if (dflt || range[0])
      snprintf(note, sizeof note, " (%s%s%s%s)", dflt ? "default " : "",
               dflt ? o->fallback : "", dflt && range[0] ? "; " : "", range);
    if (27 + strlen(o->help) + strlen(note) <= 90)
      fprintf(out, "  %-25s %s%s\n", flag, o->help, note);
    else /* long lines wrap: the bounds go on a line of their own */
      fprintf(out, "  %-25s %s\n  %-25s%s\n", flag, o->help, "", note);
  }
}

int am_cli_option_apply(const char *cmd, am_settings_t *set, int c, const char *arg) {
  const am_option_info_t *o = am_option_get(c - AM_CLI_OPTION_BASE);
  char err[512];
  if (!o)
    return am_cli_usage_error(cmd, "unknown option"), -1;
  if (am_settings_set(set, o->name, o->kind == AM_OPTION_FLAG ? "1" : arg, err,
                      sizeof err) != AM_STATUS_OK) {
    for (char *p = err; *p && *p != ' '; p++)
      *p = *p == '_' ? '-' : *p;
    am_cli_usage_error(cmd, "--%s", err);
    return -1;
  }
  return 0;
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

void am_progress_init(am_progress_t *p, const char *what, am_progress_mode mode,
                      int quiet) {
  p->tty = isatty(STDERR_FILENO);
  p->enabled =
      !quiet && (mode == AM_PROGRESS_ALWAYS || (mode == AM_PROGRESS_AUTO && p->tty));
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
