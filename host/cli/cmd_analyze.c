/* cmd_analyze.c — `attnmap analyze DATASET... -o RUN [options]`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: attnmap analyze DATASET... -o RUN [options]\n"
      "\n"
      "DATASET: a .safetensors file, a directory of shards, or .npy files named after\n"
      "their roles. Writes RUN/examples.safetensors and RUN/summary.json atomically.\n"
      "\n"
      "  -o, --output RUN        run folder to write (required)\n"
      "  --target T              cls, last, mean, or a valid-token index (negative\n"
      "                          counts from the end); default: the target the exporter\n"
      "                          recorded in the shards (attnmap.exporter), else cls\n"
      "  --include-target        let the target token take part in agreement and the\n"
      "                          top tokens (default: left out, docs/analyses.md)\n"
      "  --fusion F              head fusion of rollout: mean (default), max, min\n"
      "  --discard R             rollout discard ratio in [0,1) (default 0)\n"
      "  --normalize N           readout of rollout maps: none, max, sum, minmax\n"
      "  --topk K                k of jaccard/feature/rank agreement (default 5)\n"
      "  --include-special       let special tokens take part in agreement and rankings\n"
      "  --methods LIST          comma list of attention_last, rollout, grad_rollout,\n"
      "                          head_stats, head_importance, saliency, agreement, flow\n"
      "                          (default: all but flow, those whose inputs exist)\n"
      "  --pairs LIST            agreement pairs, e.g. "
      "rollout~saliency.ig,rollout~grad_rollout\n"
      "  --all-rows              also write rollout.rows and grad_rollout.rows [N,T,T]\n"
      "  --worst K               examples where attention and gradients disagree most "
      "(20)\n"
      "  --bins N                bins of the agreement histograms (40)\n"
      "  --row-tolerance X       allowed |row sum - 1| of attentions (default by dtype:\n"
      "                          ~2e-3 for F32/F16, ~1.6e-2 for BF16)\n"
      "  --backend B             cpu (default), cuda, cuda:N, cuda:all, auto\n"
      "  --chunk N               examples per chunk (default: from a 256 MiB budget,\n"
      "                          at least one per thread)\n"
      "  --threads N             CPU threads (default: all cores)\n"
      "  --force                 replace RUN if it exists\n"
      "  --resume                continue RUN.partial left by an interrupted run with\n"
      "                          the same options and inputs (else start afresh)\n"
      "  --checkpoint S          seconds between checkpoints of a run (default 2; 0:\n"
      "                          after every chunk)\n"
      "  --no-checksum           skip the CRC-32C of the input files in summary.json\n"
      "  --progress WHEN         auto (default: on a terminal only), always (a plain line\n"
      "                          every 10 s in logs: examples/s, ETA;\n"
      "                          $ATTNMAP_PROGRESS_INTERVAL seconds), never\n"
      "  -q, --quiet             no progress and no closing line\n"
      "  -h, --help              this help\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int parse_methods(const char *s, unsigned *out) {
  static const struct {
    const char *name;
    unsigned bit;
  } names[] = {{"attention_last", AM_METHOD_ATTENTION_LAST},
               {"rollout", AM_METHOD_ROLLOUT},
               {"grad_rollout", AM_METHOD_GRAD_ROLLOUT},
               {"flow", AM_METHOD_FLOW},
               {"head_stats", AM_METHOD_HEAD_STATS},
               {"head_importance", AM_METHOD_HEAD_IMPORTANCE},
               {"saliency", AM_METHOD_SALIENCY},
               {"agreement", AM_METHOD_AGREEMENT}};
  *out = 0;
  while (*s) {
    size_t len = strcspn(s, ",");
    size_t i = 0;
    for (; i < sizeof names / sizeof names[0]; i++)
      if (strlen(names[i].name) == len && strncmp(names[i].name, s, len) == 0)
        break;
    if (i == sizeof names / sizeof names[0])
      return -1;
    *out |= names[i].bit;
    s += len + (s[len] == ',');
  }
  return *out ? 0 : -1;
}

enum {
  OPT_TARGET = 256,
  OPT_FUSION,
  OPT_DISCARD,
  OPT_NORMALIZE,
  OPT_TOPK,
  OPT_SPECIAL,
  OPT_METHODS,
  OPT_PAIRS,
  OPT_ALL_ROWS,
  OPT_WORST,
  OPT_BINS,
  OPT_BACKEND,
  OPT_CHUNK,
  OPT_THREADS,
  OPT_FORCE,
  OPT_NO_CHECKSUM,
  OPT_RESUME,
  OPT_CHECKPOINT,
  OPT_ROW_TOL,
  OPT_INCLUDE_TARGET,
  OPT_PROGRESS
};

static const struct option options[] = {
    {"output", required_argument, 0, 'o'},
    {"target", required_argument, 0, OPT_TARGET},
    {"fusion", required_argument, 0, OPT_FUSION},
    {"discard", required_argument, 0, OPT_DISCARD},
    {"normalize", required_argument, 0, OPT_NORMALIZE},
    {"topk", required_argument, 0, OPT_TOPK},
    {"include-special", no_argument, 0, OPT_SPECIAL},
    {"include-target", no_argument, 0, OPT_INCLUDE_TARGET},
    {"methods", required_argument, 0, OPT_METHODS},
    {"pairs", required_argument, 0, OPT_PAIRS},
    {"all-rows", no_argument, 0, OPT_ALL_ROWS},
    {"worst", required_argument, 0, OPT_WORST},
    {"bins", required_argument, 0, OPT_BINS},
    {"backend", required_argument, 0, OPT_BACKEND},
    {"chunk", required_argument, 0, OPT_CHUNK},
    {"threads", required_argument, 0, OPT_THREADS},
    {"force", no_argument, 0, OPT_FORCE},
    {"no-checksum", no_argument, 0, OPT_NO_CHECKSUM},
    {"row-tolerance", required_argument, 0, OPT_ROW_TOL},
    {"resume", no_argument, 0, OPT_RESUME},
    {"checkpoint", required_argument, 0, OPT_CHECKPOINT},
    {"progress", required_argument, 0, OPT_PROGRESS},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0}};

typedef struct analyze_args {
  am_plan_t plan;
  am_run_options_t run;
  const char *output, *backend, *target_arg;
  long threads;
  int quiet;
  am_progress_mode progress;
} analyze_args_t;

/* Applies one option; returns 0, or an exit code (>0) to stop with. */
static int apply(analyze_args_t *a, int c, const char *arg) {
  long v;
  char *end;
  switch (c) {
  case 'o':
    a->output = arg;
    return 0;
  case 'q':
    a->quiet = 1;
    return 0;
  case 'h':
    usage(stdout);
    return -1;
  case OPT_TARGET:
    a->plan.target_recorded = 0;
    a->target_arg = arg;
    if (!strcmp(arg, "cls"))
      a->plan.target = AM_TARGET_CLS;
    else if (!strcmp(arg, "last"))
      a->plan.target = AM_TARGET_LAST;
    else if (!strcmp(arg, "mean"))
      a->plan.target = AM_TARGET_MEAN;
    else if (parse_long(arg, -1000000, 1000000, &v) == 0) {
      a->plan.target = AM_TARGET_INDEX;
      a->plan.target_index = (int)v;
    } else
      return am_cli_usage_error(
          "analyze", "--target '%s': expected cls, last, mean or an integer", arg);
    return 0;
  case OPT_FUSION:
    if (!strcmp(arg, "mean"))
      a->plan.fusion = AM_FUSION_MEAN;
    else if (!strcmp(arg, "max"))
      a->plan.fusion = AM_FUSION_MAX;
    else if (!strcmp(arg, "min"))
      a->plan.fusion = AM_FUSION_MIN;
    else
      return am_cli_usage_error("analyze", "--fusion '%s': expected mean, max or min", arg);
    return 0;
  case OPT_DISCARD:
    errno = 0;
    a->plan.discard = strtod(arg, &end);
    if (errno || end == arg || *end || !(a->plan.discard >= 0 && a->plan.discard < 1))
      return am_cli_usage_error("analyze", "--discard '%s': expected a number in [0,1)",
                                arg);
    return 0;
  case OPT_NORMALIZE:
    if (!strcmp(arg, "none"))
      a->plan.normalize = AM_NORMALIZE_NONE;
    else if (!strcmp(arg, "max"))
      a->plan.normalize = AM_NORMALIZE_MAX;
    else if (!strcmp(arg, "sum"))
      a->plan.normalize = AM_NORMALIZE_SUM;
    else if (!strcmp(arg, "minmax"))
      a->plan.normalize = AM_NORMALIZE_MINMAX;
    else
      return am_cli_usage_error("analyze",
                                "--normalize '%s': expected none, max, sum or minmax", arg);
    return 0;
  case OPT_TOPK:
  case OPT_WORST:
  case OPT_BINS:
  case OPT_CHUNK:
  case OPT_THREADS:
    if (parse_long(arg, c == OPT_WORST ? 0 : 1, 1000000, &v) != 0)
      return am_cli_usage_error("analyze", "'%s': expected a positive integer", arg);
    if (c == OPT_TOPK)
      a->plan.topk = (int)v;
    if (c == OPT_WORST)
      a->plan.worst = (int)v;
    if (c == OPT_BINS)
      a->plan.histogram_bins = (int)v;
    if (c == OPT_CHUNK)
      a->plan.chunk = v;
    if (c == OPT_THREADS)
      a->threads = v;
    return 0;
  case OPT_SPECIAL:
    a->plan.include_special = 1;
    return 0;
  case OPT_INCLUDE_TARGET:
    a->plan.include_target = 1;
    return 0;
  case OPT_PROGRESS:
    if (am_progress_parse(arg, &a->progress) != 0)
      return am_cli_usage_error("analyze", "--progress '%s': expected auto, always or never",
                                arg);
    return 0;
  case OPT_METHODS:
    if (parse_methods(arg, &a->plan.methods) != 0)
      return am_cli_usage_error("analyze", "--methods '%s': unknown method", arg);
    a->plan.methods_explicit = 1;
    return 0;
  case OPT_PAIRS:
    a->plan.pairs = arg;
    return 0;
  case OPT_ROW_TOL:
    errno = 0;
    a->plan.row_tolerance = strtod(arg, &end);
    if (errno || end == arg || *end ||
        !(a->plan.row_tolerance > 0 && a->plan.row_tolerance <= 1))
      return am_cli_usage_error("analyze",
                                "--row-tolerance '%s': expected a number in (0,1]", arg);
    return 0;
  case OPT_ALL_ROWS:
    a->plan.all_rows = 1;
    return 0;
  case OPT_BACKEND:
    a->backend = arg;
    return 0;
  case OPT_FORCE:
    a->run.force = 1;
    return 0;
  case OPT_NO_CHECKSUM:
    a->run.checksums = 0;
    return 0;
  case OPT_RESUME:
    a->run.resume = 1;
    return 0;
  case OPT_CHECKPOINT:
    errno = 0;
    a->run.checkpoint_s = strtod(arg, &end);
    if (errno || end == arg || *end || !(a->run.checkpoint_s >= 0))
      return am_cli_usage_error("analyze", "--checkpoint '%s': expected seconds >= 0", arg);
    return 0;
  default:
    return am_cli_usage_error("analyze", "unknown option");
  }
}

/* Which target the run read and where it came from, for the closing line: a causal model
 * analysed at the first token instead of the last gives maps that look plausible and mean
 * nothing. */
static void target_note(const am_dataset_t *ds, const analyze_args_t *a, char *buf,
                        size_t len) {
  am_dataset_info_t info;
  am_dataset_get_info(ds, &info);
  if (a->target_arg && info.target && strcmp(a->target_arg, info.target) != 0)
    snprintf(buf, len, "target %s from --target; the exporter recorded %s in %s",
             a->target_arg, info.target, info.target_file);
  else if (a->target_arg)
    snprintf(buf, len, "target %s from --target", a->target_arg);
  else if (info.target)
    snprintf(buf, len, "target %s as the exporter recorded it in %s", info.target,
             info.target_file);
  else
    snprintf(buf, len, "target cls, the default: the inputs record none");
}

int am_cli_analyze(int argc, char **argv) {
  analyze_args_t a = {.backend = "cpu"};
  am_plan_init(&a.plan);
  a.plan.target_recorded = 1; /* the exporter's record unless --target says otherwise */
  am_run_options_init(&a.run);
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:qh", options, NULL)) != -1) {
    if (c == '?')
      return am_cli_usage_error("analyze", "unknown option or missing value '%s'",
                                argv[optind - 1]);
    int code = apply(&a, c, optarg);
    if (code)
      return code < 0 ? AM_EXIT_OK : code;
  }
  if (!a.output)
    return am_cli_usage_error("analyze", "-o RUN is required");
  if (optind >= argc)
    return am_cli_usage_error("analyze", "no DATASET given");
  int code = AM_EXIT_OK;
  am_ctx_t *ctx = am_cli_context(a.backend, (int)a.threads, &code);
  if (!ctx)
    return code;
  am_dataset_t *ds = NULL;
  am_status st =
      am_dataset_open(ctx, (const char *const *)argv + optind, argc - optind, &ds);
  am_progress_t progress;
  am_progress_init(&progress, "analyze", a.progress, a.quiet);
  a.run.progress = am_progress_update;
  a.run.progress_user = &progress;
  if (st == AM_STATUS_OK)
    st = am_run_analyze(ctx, ds, &a.plan, a.output, &a.run);
  am_progress_end(&progress);
  if (st != AM_STATUS_OK)
    code = am_cli_fail(ctx, st);
  else if (!a.quiet) {
    am_dataset_info_t info;
    am_dataset_get_info(ds, &info);
    char note[1024];
    target_note(ds, &a, note, sizeof note);
    fprintf(stderr, "attnmap: wrote %s (%lld examples, backend %s, %s)\n", a.output,
            (long long)info.examples, am_ctx_backend_name(ctx), note);
  }
  am_dataset_close(ds);
  am_ctx_destroy(ctx);
  return code;
}
