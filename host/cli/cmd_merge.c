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
  static const struct option options[] = {{"output", required_argument, 0, 'o'},
                                          {"force", no_argument, 0, 'f'},
                                          {"quiet", no_argument, 0, 'q'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
  const char *out = NULL;
  am_run_options_t opts;
  am_run_options_init(&opts);
  int c, code = AM_EXIT_OK;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:qh", options, NULL)) != -1) {
    if (c == 'h') {
      usage(stdout);
      return AM_EXIT_OK;
    }
    if (c == 'o')
      out = optarg;
    else if (c == 'f')
      opts.force = 1;
    else if (c != 'q')
      return am_cli_usage_error("merge", "unknown option '%s'", argv[optind - 1]);
  }
  if (!out)
    return am_cli_usage_error("merge", "-o OUT is required");
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
