/* cmd_overlay.c — `attnmap overlay RUN --example N --map NAME -o FILE.png`: one
 * example's map drawn over its image, as the report draws its overlays (a vision run:
 * a patch grid and the dataset's tensor images). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: attnmap overlay RUN --example N --map NAME -o FILE.png [options]\n"
          "\n"
          "Draws map NAME of example N over the example's image (the dataset's tensor\n"
          "images; the run needs a patch grid, attnmap.grid) and writes an RGB PNG: the\n"
          "patch values without the prefix tokens, upsampled bilinearly to the image at\n"
          "pixel centres, coloured from their min to their max, alpha-blended.\n"
          "\n"
          "  --example N               example index, 0-based, in run order\n"
          "  --map NAME                a map of the run (rollout, saliency.ig, ...)\n"
          "  -o, --output FILE         the PNG to write\n"
          "  --colormap C              viridis (default), magma, RdBu_r or jet "
          "(vit-explain's);\n"
          "                            signed maps are always drawn in RdBu_r\n"
          "  --alpha A                 weight of the map's colour, 0..1 (default 0.5)\n"
          "  --dataset PATH            the dataset, where it moved since the run "
          "(repeatable)\n"
          "  -h, --help                this help\n"
          "\n"
          "exit codes: 0 success, 1 internal failure, 2 bad usage or bad input\n");
}

int am_cli_overlay(int argc, char **argv) {
  enum { O_EX = 1000, O_MAP, O_CMAP, O_ALPHA, O_DATA };
  static const struct option options[] = {{"example", required_argument, 0, O_EX},
                                          {"map", required_argument, 0, O_MAP},
                                          {"output", required_argument, 0, 'o'},
                                          {"colormap", required_argument, 0, O_CMAP},
                                          {"alpha", required_argument, 0, O_ALPHA},
                                          {"dataset", required_argument, 0, O_DATA},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
  am_settings_t set;
  am_settings_init(&set);
  const char *datasets[64], *map = NULL, *out = NULL;
  long long ex = -1;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:h", options, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
    case 'h':
      usage(stdout);
      return AM_EXIT_OK;
    case 'o':
      out = optarg;
      break;
    case O_MAP:
      map = optarg;
      break;
    case O_EX:
      ex = strtoll(optarg, &end, 10);
      if (!*optarg || *end || ex < 0)
        return am_cli_usage_error("overlay", "bad value '%s' for --example", optarg);
      break;
    case O_CMAP:
    case O_ALPHA:
      if (am_settings_set(&set, c == O_CMAP ? "overlay_colormap" : "overlay_alpha", optarg,
                          NULL, 0) != AM_STATUS_OK)
        return am_cli_usage_error("overlay", "bad value '%s' for %s", optarg,
                                  c == O_CMAP ? "--colormap" : "--alpha");
      break;
    case O_DATA:
      if (set.report.ndataset >= 64)
        return am_cli_usage_error("overlay", "too many --dataset");
      datasets[set.report.ndataset++] = optarg;
      break;
    default:
      return am_cli_usage_error("overlay", "unknown option '%s'", argv[optind - 1]);
    }
  }
  set.report.dataset = set.report.ndataset ? datasets : NULL;
  if (optind != argc - 1)
    return am_cli_usage_error("overlay", optind >= argc ? "no RUN given" : "one RUN only");
  if (ex < 0 || !map || !out)
    return am_cli_usage_error("overlay", "--example, --map and -o are needed");
  int code;
  am_ctx_t *ctx = am_cli_context("cpu", 1, &code);
  if (!ctx)
    return code;
  am_status st = am_run_write_overlay(ctx, argv[optind], ex, map, out, &set.report);
  code = st == AM_STATUS_OK ? AM_EXIT_OK : am_cli_fail(ctx, st);
  am_ctx_destroy(ctx);
  return code;
}
