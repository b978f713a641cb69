/* out_options.c — the options of the commands that write one run folder from run folders
 * (`merge`, `faithfulness`): -o OUT, --force, --quiet, --help. */
#include <getopt.h>

#include "cli/cli.h"

int am_cli_out_options(const char *cmd, int argc, char **argv, void (*usage)(FILE *),
                       const char **out, am_run_options_t *opts, int *quiet) {
  static const struct option options[] = {{"output", required_argument, 0, 'o'},
                                          {"force", no_argument, 0, 'f'},
                                          {"quiet", no_argument, 0, 'q'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
  *out = NULL;
  *quiet = 0;
  am_run_options_init(opts);
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:qh", options, NULL)) != -1) {
    if (c == 'h') {
      usage(stdout);
      return AM_EXIT_OK;
    }
    if (c == 'o')
      *out = optarg;
    else if (c == 'f')
      opts->force = 1;
    else if (c == 'q')
      *quiet = 1;
    else
      return am_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
  }
  if (!*out)
    return am_cli_usage_error(cmd, "-o OUT is required");
  return -1;
}
