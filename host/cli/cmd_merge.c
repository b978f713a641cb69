/* cmd_merge.c — `attnmap merge RUN... -o OUT`. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"

static void usage(FILE *out) {
  fprintf(out, "usage: attnmap merge RUN... -o OUT [--force]\n"
               "\n"
               "Combines run folders made with the same options, in the given order:\n"
               "examples are concatenated and the aggregates merged.\n");
}

int am_cli_merge(int argc, char **argv) {
  const char *out;
  am_run_options_t opts;
  int quiet, code = am_cli_out_options("merge", argc, argv, usage, &out, &opts, &quiet);
  if (code >= 0)
    return code;
  code = AM_EXIT_OK;
  if (optind >= argc)
    return am_cli_usage_error("merge", "no RUN given");
  am_ctx_t *ctx = am_cli_context("cpu", 1, &code);
  if (!ctx)
    return code;
  am_status st =
      am_run_merge(ctx, (const char *const *)argv + optind, argc - optind, out, &opts);
  if (st != AM_STATUS_OK)
    code = am_cli_fail(ctx, st);
  am_ctx_destroy(ctx);
  return code;
}
