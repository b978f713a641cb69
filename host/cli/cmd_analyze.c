/* cmd_analyze.c — `attnmap analyze DATASET... -o RUN [options]`. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#ifdef ATTNMAP_HAVE_MPI
#include "mpi/mpi_job.h"
#endif

#define SCOPES (1u << AM_SCOPE_CTX | 1u << AM_SCOPE_PLAN | 1u << AM_SCOPE_RUN)

static void usage(FILE *out) {
  fprintf(out,
          "usage: attnmap analyze DATASET... -o RUN [options]\n"
          "\n"
          "DATASET: a .safetensors file, a directory of shards, or .npy files named after\n"
          "their roles. Writes RUN/examples.safetensors and RUN/summary.json atomically.\n"
          "\n"
          "  -o, --output RUN          run folder to write (required)\n");
  am_cli_options_help(out, SCOPES, "checksums");
  fprintf(out, "  --no-checksum             skip the CRC-32C of the input files in "
               "summary.json\n"
               "  --progress WHEN           auto (default: on a terminal only), always (a "
               "plain line\n"
               "                            every 10 s in logs: examples/s, ETA;\n"
               "                            $ATTNMAP_PROGRESS_INTERVAL seconds), never\n"
               "  -q, --quiet               no progress and no closing line\n"
               "  -h, --help                this help\n"
               "\n"
               "Without --target, the target the exporter recorded in the shards\n"
               "(attnmap.exporter) is used, else cls.\n");
}

enum { OPT_NO_CHECKSUM = 1000, OPT_PROGRESS };

/* Which target the run read and where it came from, for the closing line: a causal model
 * analysed at the first token instead of the last gives maps that look plausible and mean
 * nothing. */
void am_cli_target_note(const am_dataset_t *ds, const char *target_arg, char *buf,
                        size_t len) {
  am_dataset_info_t info;
  am_dataset_get_info(ds, &info);
  if (target_arg && info.target && strcmp(target_arg, info.target) != 0)
    snprintf(buf, len, "target %s from --target; the exporter recorded %s in %s",
             target_arg, info.target, info.target_file);
  else if (target_arg)
    snprintf(buf, len, "target %s from --target", target_arg);
  else if (info.target)
    snprintf(buf, len, "target %s as the exporter recorded it in %s", info.target,
             info.target_file);
  else
    snprintf(buf, len, "target cls, the default: the inputs record none");
}

int am_cli_analyze(int argc, char **argv) {
  struct option options[AM_CLI_MAX_OPTIONS];
  char names[AM_CLI_MAX_OPTIONS][40];
  int n = am_cli_options(options, names, AM_CLI_MAX_OPTIONS - 5, SCOPES, "checksums");
  options[n++] = (struct option){"output", required_argument, 0, 'o'};
  options[n++] = (struct option){"no-checksum", no_argument, 0, OPT_NO_CHECKSUM};
  options[n++] = (struct option){"progress", required_argument, 0, OPT_PROGRESS};
  options[n++] = (struct option){"quiet", no_argument, 0, 'q'};
  options[n++] = (struct option){"help", no_argument, 0, 'h'};
  options[n] = (struct option){0, 0, 0, 0};
  am_settings_t set;
  am_settings_init(&set);
  set.plan.target_recorded = 1; /* the exporter's record unless --target says otherwise */
  struct {
    const char *output, *target_arg;
    int quiet;
    am_progress_mode progress;
  } a = {0};
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:qh", options, NULL)) != -1) {
    if (c == '?')
      return am_cli_usage_error("analyze", "unknown option or missing value '%s'",
                                argv[optind - 1]);
    if (c == 'h') {
      usage(stdout);
      return AM_EXIT_OK;
    }
    if (c == 'o')
      a.output = optarg;
    else if (c == 'q')
      a.quiet = 1;
    else if (c == OPT_NO_CHECKSUM)
      set.run.checksums = 0;
    else if (c == OPT_PROGRESS) {
      if (am_progress_parse(optarg, &a.progress) != 0)
        return am_cli_usage_error(
            "analyze", "--progress '%s': expected auto, always or never", optarg);
    } else if (am_cli_option_apply("analyze", &set, c, optarg) != 0)
      return AM_EXIT_USAGE;
    else if (strcmp(am_option_get(c - AM_CLI_OPTION_BASE)->name, "target") == 0)
      a.target_arg = optarg; /* set by --target: target_recorded is 0 now */
  }
  if (!a.output)
    return am_cli_usage_error("analyze", "-o RUN is required");
  if (optind >= argc)
    return am_cli_usage_error("analyze", "no DATASET given");
#ifdef ATTNMAP_HAVE_MPI
  if (am_mpi_launched()) { /* mpirun, srun: the ranks share the run (docs/cluster.md) */
    am_mpi_args_t m = {.set = &set,
                       .paths = (const char *const *)argv + optind,
                       .npaths = argc - optind,
                       .output = a.output,
                       .target_arg = a.target_arg,
                       .progress = a.progress,
                       .quiet = a.quiet};
    return am_mpi_analyze(&m);
  }
#endif
  int code = AM_EXIT_OK;
  am_ctx_t *ctx = am_cli_context(set.ctx.backend, set.ctx.threads, &code);
  if (!ctx)
    return code;
  am_dataset_t *ds = NULL;
  am_status st =
      am_dataset_open(ctx, (const char *const *)argv + optind, argc - optind, &ds);
  am_progress_t progress;
  am_progress_init(&progress, "analyze", a.progress, a.quiet);
  set.run.progress = am_progress_update;
  set.run.progress_user = &progress;
  int complete = 0; /* nightly jobs pass --resume every time: a finished run is success */
  if (st == AM_STATUS_OK && set.run.resume && !set.run.force)
    st = am_run_is_complete(ctx, ds, &set.plan, a.output, &complete);
  if (st == AM_STATUS_OK && !complete)
    st = am_run_analyze(ctx, ds, &set.plan, a.output, &set.run);
  am_progress_end(&progress);
  if (st != AM_STATUS_OK)
    code = am_cli_fail(ctx, st);
  else if (complete)
    fprintf(stderr, "attnmap: %s is already complete with these inputs and options\n",
            a.output);
  else if (!a.quiet) {
    am_dataset_info_t info;
    am_dataset_get_info(ds, &info);
    char note[1024];
    am_cli_target_note(ds, a.target_arg, note, sizeof note);
    fprintf(stderr, "attnmap: wrote %s (%lld examples, backend %s, %s)\n", a.output,
            (long long)info.examples, am_ctx_backend_name(ctx), note);
  }
  am_dataset_close(ds);
  am_ctx_destroy(ctx);
  return code;
}
