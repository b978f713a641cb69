/* cmd_report.c — `attnmap report RUN [--baseline OTHER] [options]`: the HTML report and
 * its PNGs, and the nightly comparison (exit code 3 with --fail-on-drift when drift). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: attnmap report RUN [options]\n"
      "\n"
      "Writes RUN/report/index.html (one self-contained page, no network) and its PNGs\n"
      "under RUN/report/img/. Token strings and attention views come from the dataset\n"
      "recorded in RUN/summary.json; without it the report says so and leaves them out.\n"
      "\n"
      "  --baseline B              compare against run folder B (writes comparison.json)\n"
      "  --json                    print the comparison as JSON on stdout (needs "
      "--baseline)\n"
      "  --fail-on-drift           exit with 3 when a statistic or metric drifted\n"
      "  -o, --output DIR          write the report to DIR instead of RUN/report\n"
      "  --dataset PATH            the dataset, where it moved since the run "
      "(repeatable)\n");
  am_cli_options_help(out, 1u << AM_SCOPE_REPORT, NULL);
  fprintf(out, "  -q, --quiet               print nothing on success\n"
               "  -h, --help                this help\n"
               "\n"
               "exit codes: 0 success, 1 internal failure, 2 bad usage or bad input,\n"
               "3 drift found with --fail-on-drift\n");
}

typedef struct report_args {
  am_settings_t set;
  const char *datasets[64];
  int json, fail_on_drift, quiet;
} report_args_t;

/* Parses argv into a; returns -1 on success, else the exit code to return. */
static int parse(int argc, char **argv, report_args_t *a) {
  enum { O_BASE = 1000, O_JSON, O_FAIL, O_DATA };
  struct option options[AM_CLI_MAX_OPTIONS];
  char names[AM_CLI_MAX_OPTIONS][40];
  int n =
      am_cli_options(options, names, AM_CLI_MAX_OPTIONS - 8, 1u << AM_SCOPE_REPORT, NULL);
  options[n++] = (struct option){"baseline", required_argument, 0, O_BASE};
  options[n++] = (struct option){"json", no_argument, 0, O_JSON};
  options[n++] = (struct option){"fail-on-drift", no_argument, 0, O_FAIL};
  options[n++] = (struct option){"output", required_argument, 0, 'o'};
  options[n++] = (struct option){"dataset", required_argument, 0, O_DATA};
  options[n++] = (struct option){"quiet", no_argument, 0, 'q'};
  options[n++] = (struct option){"help", no_argument, 0, 'h'};
  options[n] = (struct option){0, 0, 0, 0};
  am_report_options_t *opts = &a->set.report;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:qh", options, NULL)) != -1) {
    int bad = 0;
    if (c >= AM_CLI_OPTION_BASE && c < O_BASE) {
      if (am_cli_option_apply("report", &a->set, c, optarg) != 0)
        return AM_EXIT_USAGE;
      continue;
    }
    switch (c) {
    case 'h':
      usage(stdout);
      return AM_EXIT_OK;
    case 'o':
      opts->out_dir = optarg;
      break;
    case 'q':
      a->quiet = 1;
      break;
    case O_BASE:
      opts->baseline = optarg;
      break;
    case O_JSON:
      a->json = 1;
      break;
    case O_FAIL:
      a->fail_on_drift = 1;
      break;
    case O_DATA:
      bad = opts->ndataset >= 64;
      if (!bad)
        a->datasets[opts->ndataset++] = optarg;
      break;
    default:
      return am_cli_usage_error("report", "unknown option '%s'", argv[optind - 1]);
    }
    if (bad)
      return am_cli_usage_error("report", "bad value '%s' for %s", optarg,
                                argv[optind - 2]);
  }
  opts->dataset = opts->ndataset ? a->datasets : NULL;
  if (optind != argc - 1)
    return am_cli_usage_error("report", optind >= argc ? "no RUN given" : "one RUN only");
  if ((a->json || a->fail_on_drift) && !opts->baseline)
    return am_cli_usage_error("report", "%s needs --baseline",
                              a->json            ? "--json"
                              : a->fail_on_drift ? "--fail-on-drift"
                                                 : "--stratify-length");
  return -1;
}

/* Prints the comparison.json the report wrote. */
static int print_json(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/comparison.json", dir);
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "attnmap: %s: cannot read: %s\n", path, strerror(errno));
    return -1;
  }
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    fwrite(buf, 1, n, stdout);
  fclose(f);
  return fflush(stdout) == 0 ? 0 : -1;
}

int am_cli_report(int argc, char **argv) {
  report_args_t a;
  memset(&a, 0, sizeof a);
  am_settings_init(&a.set);
  int code = parse(argc, argv, &a);
  if (code >= 0)
    return code;
  const char *run = argv[optind];
  char dir[4200];
  if (a.set.report.out_dir)
    snprintf(dir, sizeof dir, "%s", a.set.report.out_dir);
  else
    snprintf(dir, sizeof dir, "%s/report", run);
  am_ctx_t *ctx = am_cli_context("cpu", 0, &code);
  if (!ctx)
    return code;
  am_report_result_t res;
  am_status st = am_run_report(ctx, run, &a.set.report, &res);
  if (st != AM_STATUS_OK) {
    code = am_cli_fail(ctx, st);
    am_ctx_destroy(ctx);
    return code;
  }
  am_ctx_destroy(ctx);
  FILE *info = a.json ? stderr : stdout;
  if (!a.quiet) {
    fprintf(info, "attnmap: wrote %s/index.html", dir);
    if (res.compared)
      fprintf(info, " (%lld beyond %.3g sd of the baseline)", (long long)res.drifted,
              a.set.report.drift);
    fputc('\n', info);
    if (res.note[0]) /* a live run's token strings are its own (docs/live-runs.md) */
      fprintf(stderr, "attnmap: no %s: %s\n",
              strncmp(res.note, "a live run", 10) == 0 ? "attention views"
                                                       : "token strings or attention views",
              res.note);
  }
  if (a.json && print_json(dir) != 0)
    return AM_EXIT_FAILURE;
  return a.fail_on_drift && res.drifted > 0 ? AM_EXIT_DRIFT : AM_EXIT_OK;
}
