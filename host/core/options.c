/* options.c — every option of contexts, plans, runs and reports in one table: its name,
 * kind, range or choices, help line and default. The CLI builds its option parser and
 * help from it, Python sets options through it, and the library checks the structs it is
 * given against the same ranges (am_options_check), so a name or a bound is written once.
 * Ranges: a bound exists where a larger value cannot be meant (threads beyond 1024 made a
 * thread team the machine cannot hold: `--threads 100000` crashed) or where a value
 * sizes memory; each is stated in docs/ and --help. */
#include "core/options.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/names.h"

typedef enum field_type {
  F_INT,     /* int */
  F_INT64,   /* int64_t */
  F_DOUBLE,  /* double */
  F_ENUM,    /* an enum whose value is the choice's index */
  F_TARGET,  /* am_target plus target_index */
  F_METHODS, /* unsigned bits 1u << choice index, and methods_explicit */
  F_FLAG,    /* int 0/1 */
  F_TEXT     /* const char * */
} field_type;

typedef struct option {
  am_option_info_t info;
  size_t offset; /* in am_settings_t */
  field_type type;
} option_t;

#define AT(member) offsetof(am_settings_t, member)
#define METHOD_CHOICES (AM_METHOD_LIST(AM_METHOD_CSV_) + 1)
#define FUSION_CHOICES (AM_FUSION_NAMES(AM_NAME_CSV_) + 1)
#define NORMALIZE_CHOICES (AM_NORMALIZE_NAMES(AM_NAME_CSV_) + 1)

/* clang-format off */
static const option_t options[] = {
  {{"target", AM_OPTION_CHOICE, AM_SCOPE_PLAN, -1000000, 1000000, 0, "cls,last,mean,gen", "T",
    "row read out: cls, last, mean, a valid-token index (negative counts from the end); "
    "several: a slice A:B of valid tokens, or gen (from generation_start; docs/generation.md)",
    "cls"}, AT(plan.target), F_TARGET},
  {{"include_target", AM_OPTION_FLAG, AM_SCOPE_PLAN, 0, 1, 0, NULL, NULL,
    "let the target token take part in agreement and the top tokens (docs/analyses.md)",
    "0"}, AT(plan.include_target), F_FLAG},
  {{"fusion", AM_OPTION_CHOICE, AM_SCOPE_PLAN, 0, 0, 0, FUSION_CHOICES, "F",
    "head fusion of rollout", "mean"}, AT(plan.fusion), F_ENUM},
  {{"discard", AM_OPTION_REAL, AM_SCOPE_PLAN, 0, 1, 1, NULL, "R",
    "rollout discard ratio", "0"}, AT(plan.discard), F_DOUBLE},
  {{"normalize", AM_OPTION_CHOICE, AM_SCOPE_PLAN, 0, 0, 0, NORMALIZE_CHOICES, "N",
    "readout of rollout maps", "none"}, AT(plan.normalize), F_ENUM},
  {{"topk", AM_OPTION_INT, AM_SCOPE_PLAN, 1, 1000000, 0, NULL, "K",
    "k of jaccard/feature/rank agreement", "5"}, AT(plan.topk), F_INT},
  {{"include_special", AM_OPTION_FLAG, AM_SCOPE_PLAN, 0, 1, 0, NULL, NULL,
    "let special tokens take part in agreement and rankings", "0"},
   AT(plan.include_special), F_FLAG},
  {{"methods", AM_OPTION_LIST, AM_SCOPE_PLAN, 0, 0, 0, METHOD_CHOICES, "LIST",
    "methods to run (default: all but flow, those whose inputs exist)",
    ""},
   AT(plan.methods), F_METHODS},
  {{"pairs", AM_OPTION_TEXT, AM_SCOPE_PLAN, 0, 0, 0, NULL, "LIST",
    "agreement pairs, e.g. rollout~saliency.ig,rollout~grad_rollout (default: all)", ""},
   AT(plan.pairs), F_TEXT},
  {{"all_rows", AM_OPTION_FLAG, AM_SCOPE_PLAN, 0, 1, 0, NULL, NULL,
    "also write rollout.rows and grad_rollout.rows [N,T,T]", "0"}, AT(plan.all_rows), F_FLAG},
  {{"worst", AM_OPTION_INT, AM_SCOPE_PLAN, 0, 1000000, 0, NULL, "K",
    "examples where attention and gradients disagree most", "20"}, AT(plan.worst), F_INT},
  {{"bins", AM_OPTION_INT, AM_SCOPE_PLAN, 1, 100000, 0, NULL, "N",
    "bins of the agreement histograms", "40"}, AT(plan.histogram_bins), F_INT},
  {{"row_tolerance", AM_OPTION_REAL, AM_SCOPE_PLAN, 0, 1, 0, NULL, "X",
    "allowed |row sum - 1| of attentions (0: by dtype, ~2e-3 F32/F16, ~1.6e-2 BF16)", "0"},
   AT(plan.row_tolerance), F_DOUBLE},
  {{"chunk", AM_OPTION_INT, AM_SCOPE_PLAN, 0, 65536, 0, NULL, "N",
    "examples per chunk (0: from a 256 MiB budget, at least one per thread)", "0"},
   AT(plan.chunk), F_INT64},
  {{"backend", AM_OPTION_TEXT, AM_SCOPE_CTX, 0, 0, 0, NULL, "B",
    "cpu, cuda, cuda:N, cuda:all, auto", "cpu"}, AT(ctx.backend), F_TEXT},
  {{"threads", AM_OPTION_INT, AM_SCOPE_CTX, 0, 1024, 0, NULL, "N",
    "CPU threads (0: all cores)", "0"}, AT(ctx.threads), F_INT},
  {{"force", AM_OPTION_FLAG, AM_SCOPE_RUN, 0, 1, 0, NULL, NULL,
    "replace the output run folder if it exists", "0"}, AT(run.force), F_FLAG},
  {{"resume", AM_OPTION_FLAG, AM_SCOPE_RUN, 0, 1, 0, NULL, NULL,
    "continue RUN.partial left by an interrupted run with the same options and inputs",
    "0"}, AT(run.resume), F_FLAG},
  {{"checkpoint", AM_OPTION_REAL, AM_SCOPE_RUN, 0, 86400, 0, NULL, "S",
    "seconds between checkpoints of a run (0: after every chunk)", "2"},
   AT(run.checkpoint_s), F_DOUBLE},
  {{"checksums", AM_OPTION_FLAG, AM_SCOPE_RUN, 0, 1, 0, NULL, NULL,
    "CRC-32C of the input files in summary.json", "1"}, AT(run.checksums), F_FLAG},
  {{"drift", AM_OPTION_REAL, AM_SCOPE_REPORT, 0, 1e6, 0, NULL, "X",
    "drift threshold in pooled standard deviations", "0.5"}, AT(report.drift), F_DOUBLE},
  {{"stratify_length", AM_OPTION_FLAG, AM_SCOPE_REPORT, 0, 1, 0, NULL, NULL,
    "compare with the baseline within strata of similar length", "0"},
   AT(report.stratify_length), F_FLAG},
  {{"examples", AM_OPTION_INT, AM_SCOPE_REPORT, 0, 100000, 0, NULL, "K",
    "rows of the disagreement and misclassified tables", "20"}, AT(report.examples), F_INT},
  {{"views", AM_OPTION_INT, AM_SCOPE_REPORT, 0, 100000, 0, NULL, "K",
    "examples with attention views (0: none)", "6"}, AT(report.views), F_INT},
  {{"topk_heads", AM_OPTION_INT, AM_SCOPE_REPORT, 0, 100000, 0, NULL, "K",
    "heads named beside each grid", "10"}, AT(report.topk_heads), F_INT},
  {{"overlay_colormap", AM_OPTION_CHOICE, AM_SCOPE_REPORT, 0, 0, 0, "viridis,magma,RdBu_r,jet",
    "C", "colormap of non-negative maps drawn over images (jet: vit-explain's)", "viridis"},
   AT(report.overlay_colormap), F_ENUM},
  {{"overlay_alpha", AM_OPTION_REAL, AM_SCOPE_REPORT, 0, 1, 0, NULL, "A",
    "weight of the map's colour over the image", "0.5"}, AT(report.overlay_alpha), F_DOUBLE},
  {{"overlay_sheet", AM_OPTION_INT, AM_SCOPE_REPORT, 0, 1000, 0, NULL, "K",
    "worst-agreeing examples in the overlay contact sheet (0: none)", "12"},
   AT(report.overlay_sheet), F_INT},
};
/* clang-format on */
#define NOPTIONS ((int)(sizeof options / sizeof options[0]))

static const size_t scope_base[] = {AT(ctx), AT(plan), AT(run), AT(report)};

int am_option_count(void) { return NOPTIONS; }

const am_option_info_t *am_option_get(int i) {
  return i >= 0 && i < NOPTIONS ? &options[i].info : NULL;
}

/* name equals want, '-' in name read as '_'. */
static int same_name(const char *name, const char *want) {
  for (; *name && *want; name++, want++)
    if (*name != *want && !(*name == '-' && *want == '_'))
      return 0;
  return *name == *want;
}

static const option_t *find(const char *name) {
  for (int i = 0; name && i < NOPTIONS; i++)
    if (same_name(name, options[i].info.name))
      return &options[i];
  return NULL;
}

const am_option_info_t *am_option_find(const char *name) {
  const option_t *o = find(name);
  return o ? &o->info : NULL;
}

am_status am_option_bounds(const char *name, double *min, double *max) {
  const option_t *o = find(name);
  if (!o || !(o->info.kind == AM_OPTION_INT || o->info.kind == AM_OPTION_REAL ||
              (o->info.kind == AM_OPTION_CHOICE && o->info.min < o->info.max)))
    return AM_STATUS_INVALID_ARGUMENT;
  if (min)
    *min = o->info.min;
  if (max)
    *max = o->info.max;
  return AM_STATUS_OK;
}

/* The index of the len bytes at s in a comma list, or -1. */
int am_choice_index(const char *choices, const char *s, size_t len) {
  int i = 0;
  for (const char *c = choices; c && *c; i++) {
    size_t n = strcspn(c, ",");
    if (n == len && strncmp(c, s, len) == 0)
      return i;
    c += n + (c[n] == ',');
  }
  return -1;
}

/* "an integer in [1, 1000000]" and the like. */
static void describe(const am_option_info_t *o, char *buf, size_t len) {
  switch (o->kind) {
  case AM_OPTION_INT:
    snprintf(buf, len, "an integer in [%.0f,%.0f]", o->min, o->max);
    break;
  case AM_OPTION_REAL:
    snprintf(buf, len, "a number in [%g,%g%c", o->min, o->max, o->max_open ? ')' : ']');
    break;
  case AM_OPTION_CHOICE:
    if (o->min < o->max)
      snprintf(buf, len, "one of %s or an integer in [%.0f,%.0f]", o->choices, o->min,
               o->max);
    else
      snprintf(buf, len, "one of %s", o->choices);
    break;
  case AM_OPTION_LIST:
    snprintf(buf, len, "a comma list of %s", o->choices);
    break;
  case AM_OPTION_FLAG:
    snprintf(buf, len, "0 or 1");
    break;
  case AM_OPTION_TEXT:
    snprintf(buf, len, "a string");
    break;
  }
}

static int in_range(const am_option_info_t *o, double v) {
  return isfinite(v) && v >= o->min && (o->max_open ? v < o->max : v <= o->max);
}

/* An integer of text within the option's range, or -1. */
static int parse_int(const am_option_info_t *o, const char *text, long long *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || !in_range(o, (double)v))
    return -1;
  *out = v;
  return 0;
}

/* One bound of a slice: empty (not given) or an integer within the target's range. */
static int slice_bound(const char *s, size_t len, int *out, int *given) {
  char buf[32];
  *given = len > 0;
  if (!len)
    return 0;
  if (len >= sizeof buf)
    return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  long long v = 0;
  if (parse_int(&find("target")->info, buf, &v) != 0)
    return -1;
  *out = (int)v;
  return 0;
}

int am_target_parse(const char *text, am_plan_t *plan) {
  const option_t *o = find("target");
  long long iv = 0;
  if (!text)
    return -1;
  const char *colon = strchr(text, ':');
  if (colon) {
    int a = 0, b = 0, ga = 0, gb = 0;
    if (strchr(colon + 1, ':') || slice_bound(text, (size_t)(colon - text), &a, &ga) ||
        slice_bound(colon + 1, strlen(colon + 1), &b, &gb))
      return -1;
    plan->target = AM_TARGET_RANGE;
    plan->target_index = a;
    plan->target_stop = b;
    plan->target_slice = (ga ? 1 : 0) | (gb ? 2 : 0);
    return 0;
  }
  int i = am_choice_index(o->info.choices, text, strlen(text));
  if (i < 0 && parse_int(&o->info, text, &iv) != 0)
    return -1;
  plan->target = i >= 0 ? (am_target)am_list_find(AM_LIST_TARGETS, text) : AM_TARGET_INDEX;
  plan->target_index = i >= 0 ? plan->target_index : (int)iv;
  return 0;
}

void am_target_text(const am_plan_t *plan, char *buf, size_t len) {
  if (plan->target != AM_TARGET_RANGE) {
    const char *name = am_list_name(AM_LIST_TARGETS, (int)plan->target);
    snprintf(buf, len, "%s", name ? name : "?");
    return;
  }
  char a[16] = "", b[16] = "";
  if (plan->target_slice & 1)
    snprintf(a, sizeof a, "%d", plan->target_index);
  if (plan->target_slice & 2)
    snprintf(b, sizeof b, "%d", plan->target_stop);
  snprintf(buf, len, "%s:%s", a, b);
}

int am_target_several(const am_plan_t *plan) {
  return plan->target == AM_TARGET_RANGE || plan->target == AM_TARGET_GEN;
}

static int parse_value(const option_t *opt, const char *text, void *field) {
  const am_option_info_t *o = &opt->info;
  long long iv = 0;
  char *end = NULL;
  switch (opt->type) {
  case F_INT:
  case F_FLAG:
    if (parse_int(o, text, &iv) != 0)
      return -1;
    *(int *)field = (int)iv;
    return 0;
  case F_INT64:
    if (parse_int(o, text, &iv) != 0)
      return -1;
    *(int64_t *)field = (int64_t)iv;
    return 0;
  case F_DOUBLE: {
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !in_range(o, v))
      return -1;
    *(double *)field = v;
    return 0;
  }
  case F_ENUM: {
    int i = am_choice_index(o->choices, text, strlen(text));
    if (i < 0)
      return -1;
    *(int *)field = i;
    return 0;
  }
  case F_TARGET: {
    am_plan_t *plan = (am_plan_t *)((char *)field - offsetof(am_plan_t, target));
    if (am_target_parse(text, plan) != 0)
      return -1;
    plan->target_recorded = 0; /* a target given by name overrides the exporter's record */
    return 0;
  }
  case F_METHODS: {
    am_plan_t *plan = (am_plan_t *)((char *)field - offsetof(am_plan_t, methods));
    unsigned bits = 0;
    for (const char *s = text; *s;) {
      size_t n = strcspn(s, ",");
      int i = am_choice_index(o->choices, s, n);
      if (i < 0)
        return -1;
      bits |= 1u << i;
      s += n + (s[n] == ',');
    }
    if (!bits)
      return -1;
    plan->methods = bits;
    plan->methods_explicit = 1;
    return 0;
  }
  case F_TEXT:
    *(const char **)field = text;
    return 0;
  }
  return -1;
}

/* At most 200 bytes of text for a message, control characters as '?': a value echoed
 * back must not break the one-line message or drive the terminal. */
static void printable(const char *text, char *buf, size_t len) {
  size_t n = 0;
  for (; text && text[n] && n < 200 && n + 1 < len; n++)
    buf[n] = ((unsigned char)text[n] < 0x20 || text[n] == 0x7f) ? '?' : text[n];
  buf[n] = '\0';
}

am_status am_settings_set(am_settings_t *settings, const char *name, const char *value,
                          char *errbuf, size_t errlen) {
  const option_t *o = find(name);
  char want[256], shown[208];
  if (!o || !settings || !value) {
    printable(name ? name : "(null)", shown, sizeof shown);
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "%s: %s", shown,
               o ? "no settings or value given" : "unknown option");
    return AM_STATUS_INVALID_ARGUMENT;
  }
  if (parse_value(o, value, (char *)settings + o->offset) == 0)
    return AM_STATUS_OK;
  describe(&o->info, want, sizeof want);
  if (o->type == F_TARGET) /* the slice is not a choice of the table */
    snprintf(want + strlen(want), sizeof want - strlen(want),
             ", or a slice A:B of such integers (either may be left out)");
  printable(value, shown, sizeof shown);
  if (errbuf && errlen)
    snprintf(errbuf, errlen, "%s '%s': expected %s", o->info.name, shown, want);
  return AM_STATUS_INVALID_ARGUMENT;
}

void am_settings_init(am_settings_t *settings) {
  memset(settings, 0, sizeof *settings);
  settings->ctx.backend = "cpu";
  am_plan_init(&settings->plan);
  am_run_options_init(&settings->run);
  am_report_options_init(&settings->report);
}

/* The value of a numeric field as double, for the range check; 0 when in range. */
static int check_field(const option_t *opt, const void *field, char *buf, size_t len) {
  const am_option_info_t *o = &opt->info;
  double v;
  switch (opt->type) {
  case F_INT:
    v = *(const int *)field;
    break;
  case F_INT64:
    v = (double)*(const int64_t *)field;
    break;
  case F_DOUBLE:
    v = *(const double *)field;
    break;
  case F_ENUM: {
    int e = *(const int *)field;
    int n = 0;
    for (const char *c = o->choices; c; c = strchr(c, ','), c = c ? c + 1 : NULL)
      n++;
    if (e >= 0 && e < n)
      return 0;
    snprintf(buf, len, "%s = %d: expected one of %s", o->name, e, o->choices);
    return -1;
  }
  case F_TARGET: {
    const am_plan_t *plan =
        (const am_plan_t *)((const char *)field - offsetof(am_plan_t, target));
    if (plan->target == AM_TARGET_CLS || plan->target == AM_TARGET_LAST ||
        plan->target == AM_TARGET_MEAN || plan->target == AM_TARGET_GEN ||
        (plan->target == AM_TARGET_INDEX && in_range(o, plan->target_index)) ||
        (plan->target == AM_TARGET_RANGE && in_range(o, plan->target_index) &&
         in_range(o, plan->target_stop) && plan->target_slice >= 0 &&
         plan->target_slice <= 3))
      return 0;
    snprintf(buf, len,
             "target = %d (index %d, stop %d): expected cls, last, mean, gen, an index or "
             "a slice with bounds in [%.0f,%.0f]",
             (int)plan->target, plan->target_index, plan->target_stop, o->min, o->max);
    return -1;
  }
  case F_METHODS: {
    unsigned bits = *(const unsigned *)field;
    if ((bits >> am_list_count(AM_LIST_METHODS)) == 0)
      return 0;
    snprintf(buf, len, "methods = 0x%x: expected AM_METHOD_* bits", bits);
    return -1;
  }
  default:
    return 0; /* flags and texts: any value means something */
  }
  if (in_range(o, v))
    return 0;
  char want[256];
  describe(o, want, sizeof want);
  snprintf(buf, len, "%s = %.17g: expected %s", o->name, v, want);
  return -1;
}

am_status am_options_check(am_ctx_t *ctx, am_option_scope scope, const void *part,
                           char *errbuf, size_t errlen) {
  char msg[512];
  for (int i = 0; i < NOPTIONS; i++) {
    const option_t *o = &options[i];
    if (o->info.scope != scope)
      continue;
    const char *field = (const char *)part + (o->offset - scope_base[scope]);
    if (check_field(o, field, msg, sizeof msg) != 0) {
      if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", msg);
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s", msg);
    }
  }
  return AM_STATUS_OK;
}
