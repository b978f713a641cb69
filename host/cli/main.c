/* main.c — the attnmap command: dispatches to analyze, inspect, merge, faithfulness,
 * report, overlay. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: attnmap COMMAND [OPTIONS]\n"
      "\n"
      "commands:\n"
      "  analyze DATASET... -o RUN   compute every analysis, write a run folder\n"
      "  inspect FILE...             list tensors, roles and check attention rows\n"
      "  merge RUN... -o RUN         combine run folders made with the same options\n"
      "  faithfulness RUN PROBS -o OUT  score the maps' faithfulness "
      "(attnmap-faithfulness)\n"
      "  report RUN [--baseline B]   HTML report and PNGs in RUN/report, nightly drift\n"
      "  overlay RUN --example N --map M -o F.png   a map over its image (vision runs)\n"
      "\n"
      "  attnmap COMMAND --help      options of a command\n"
      "  attnmap --version           version\n"
      "\n"
      "exit codes: 0 success, 1 internal or device failure, 2 bad usage or bad input,\n"
      "3 drift found (report --fail-on-drift)\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return AM_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return AM_EXIT_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("attnmap %s\n", am_version());
    return AM_EXIT_OK;
  }
  for (int i = 1; i < argc; i++) /* --version works after any command too */
    if (strcmp(argv[i], "--version") == 0) {
      printf("attnmap %s\n", am_version());
      return AM_EXIT_OK;
    }
  if (strcmp(cmd, "analyze") == 0) {
    am_cli_idle_threads_sleep(argv);
    return am_cli_analyze(argc - 1, argv + 1);
  }
  if (strcmp(cmd, "inspect") == 0)
    return am_cli_inspect(argc - 1, argv + 1);
  if (strcmp(cmd, "merge") == 0)
    return am_cli_merge(argc - 1, argv + 1);
  if (strcmp(cmd, "faithfulness") == 0)
    return am_cli_faithfulness(argc - 1, argv + 1);
  if (strcmp(cmd, "report") == 0)
    return am_cli_report(argc - 1, argv + 1);
  if (strcmp(cmd, "overlay") == 0)
    return am_cli_overlay(argc - 1, argv + 1);
  fprintf(stderr, "attnmap: unknown command '%s' (try attnmap --help)\n", cmd);
  return AM_EXIT_USAGE;
}
