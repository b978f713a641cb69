/* cmd_faithfulness.c — `attnmap faithfulness RUN PROBS.safetensors -o OUT`
 * (docs/faithfulness.md). */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: attnmap faithfulness RUN PROBS.safetensors -o OUT [--force]\n"
      "\n"
      "Scores the faithfulness of RUN's maps from the target-class probabilities that\n"
      "attnmap-faithfulness wrote for RUN (PROBS): comprehensiveness, sufficiency, AOPC,\n"
      "deletion and insertion areas per example, and their means with 95%% intervals.\n"
      "Writes a new run folder OUT (RUN's files, faithfulness.safetensors, summary.json\n"
      "with a faithfulness section); RUN is not modified. docs/faithfulness.md.\n");
}

int am_cli_faithfulness(int argc, char **argv) {
  const char *out;
  am_run_options_t opts;
  int quiet,
      code = am_cli_out_options("faithfulness", argc, argv, usage, &out, &opts, &quiet);
  if (code >= 0)
    return code;
  code = AM_EXIT_OK;
  if (argc - optind != 2)
    return am_cli_usage_error("faithfulness", "expected RUN and PROBS.safetensors");
  am_ctx_t *ctx = am_cli_context("cpu", 1, &code);
  if (!ctx)
    return code;
  am_status st = am_run_faithfulness(ctx, argv[optind], argv[optind + 1], out, &opts);
  if (st != AM_STATUS_OK)
    code = am_cli_fail(ctx, st);
  else if (!quiet)
    printf("faithfulness: %s written (attnmap report %s draws it)\n", out, out);
  am_ctx_destroy(ctx);
  return code;
}
