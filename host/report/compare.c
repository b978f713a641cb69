/* compare.c — run against baseline: every head statistic (layer x head) and every
 * agreement pair x metric that both summaries hold is compared by its standardised mean
 * difference (Cohen's d with the pooled sample standard deviation, from the Welford n,
 * mean and m2 that summary.json keeps); what only one side holds, and options that
 * differ, are listed so that a nightly job sees why a number is missing. */
#include "report/compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "pipeline/run_dir.h"
#include "report/report_run.h"

typedef struct cmp_entry {
  const char *stat, *pair, *metric; /* stat for heads; pair + metric for agreement */
  int layer, head;
  double run, base, delta, sd, z;
  int drift;
  size_t order; /* position before sorting, for a stable order */
} cmp_entry_t;

typedef struct cmp_list {
  cmp_entry_t *e;
  size_t n, cap;
} cmp_list_t;

double am_compare_z(double n_a, double mean_a, double m2_a, double n_b, double mean_b,
                    double m2_b, double *sd) {
  double s = NAN;
  if (n_a + n_b > 2 && isfinite(m2_a) && isfinite(m2_b))
    s = sqrt((m2_a + m2_b) / (n_a + n_b - 2));
  if (sd)
    *sd = s;
  double d = mean_a - mean_b;
  if (!isfinite(d))
    return NAN;
  if (s > 0 && isfinite(s))
    return d / s;
  return d == 0 ? 0.0 : (d > 0 ? INFINITY : -INFINITY);
}

static cmp_entry_t *push(cmp_list_t *l) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 256;
    cmp_entry_t *e = realloc(l->e, cap * sizeof *e);
    if (!e)
      return NULL;
    l->e = e;
    l->cap = cap;
  }
  cmp_entry_t *e = &l->e[l->n];
  memset(e, 0, sizeof *e);
  e->order = l->n++;
  return e;
}

/* Fills the numbers of e from two {n, mean, m2} objects (or parallel [L][H] arrays). */
static void fill(cmp_entry_t *e, double na, double ma, double m2a, double nb, double mb,
                 double m2b, double threshold) {
  e->run = ma;
  e->base = mb;
  e->delta = ma - mb;
  e->z = am_compare_z(na, ma, m2a, nb, mb, m2b, &e->sd);
  e->drift = !isnan(e->z) && fabs(e->z) > threshold;
}

/* Both runs' examples, for the length-stratified comparison; NULL when not asked. */
typedef struct strata {
  const am_report_run_t *run, *base;
} strata_t;

static void restratify(cmp_entry_t *e, am_strata_input_t a, am_strata_input_t b,
                       double thr) {
  if (!a.values || !b.values)
    return; /* a tensor missing from one examples file: the pooled figures stay */
  am_compare_stratified(&a, &b, &e->run, &e->base, &e->delta, &e->sd, &e->z);
  e->drift = !isnan(e->z) && fabs(e->z) > thr;
}

static am_strata_input_t input(const am_report_run_t *r, const am_tensor_t *t,
                               int64_t stride, int64_t offset) {
  am_strata_input_t in = {t, r->lengths, r->N, stride, offset};
  return in;
}

static void stratify_head(const strata_t *st, cmp_entry_t *e, double thr) {
  char name[96];
  snprintf(name, sizeof name, "head.%s", e->stat);
  int64_t LH = (int64_t)st->run->L * st->run->H,
          at = (int64_t)e->layer * st->run->H + e->head;
  int64_t LHb = (int64_t)st->base->L * st->base->H,
          atb = (int64_t)e->layer * st->base->H + e->head;
  restratify(e, input(st->run, am_file_find(st->run->file, name), LH, at),
             input(st->base, am_file_find(st->base->file, name), LHb, atb), thr);
}

/* Index of pair in r's pairs, also under its reversed name; -1 when absent. */
static int pair_index(const am_report_run_t *r, const char *pair) {
  const char *tilde = strchr(pair, '~');
  char rev[512] = "";
  if (tilde)
    snprintf(rev, sizeof rev, "%s~%.*s", tilde + 1, (int)(tilde - pair), pair);
  for (int p = 0; p < r->npairs; p++)
    if (!strcmp(r->pairs[p], pair) || !strcmp(r->pairs[p], rev))
      return p;
  return -1;
}

static const am_tensor_t *metric_tensor(const am_report_run_t *r, const char *metric) {
  for (int m = 0; m < r->nmetrics; m++)
    if (!strcmp(r->metric_names[m], metric))
      return r->metrics[m];
  return NULL;
}

static void stratify_agreement(const strata_t *st, cmp_entry_t *e, double thr) {
  int pa = pair_index(st->run, e->pair), pb = pair_index(st->base, e->pair);
  if (pa < 0 || pb < 0)
    return;
  restratify(e, input(st->run, metric_tensor(st->run, e->metric), st->run->npairs, pa),
             input(st->base, metric_tensor(st->base, e->metric), st->base->npairs, pb),
             thr);
}

static double cell(json_t *obj, const char *key, int l, int h) {
  return am_jnum(
      json_array_get(json_array_get(json_object_get(obj, key), (size_t)l), (size_t)h));
}

static int compare_heads(json_t *run, json_t *base, double thr, cmp_list_t *l, json_t *only,
                         const strata_t *st) {
  json_t *ra = am_jget(run, "head_stats", NULL), *ba = am_jget(base, "head_stats", NULL);
  int L = (int)am_jnum(am_jget(run, "dataset", "layers", NULL));
  int H = (int)am_jnum(am_jget(run, "dataset", "heads", NULL));
  const char *stat;
  json_t *rs;
  json_object_foreach(ra, stat, rs) {
    json_t *bs = json_object_get(ba, stat);
    if (!json_is_object(bs)) {
      json_array_append_new(json_object_get(only, "run"),
                            json_sprintf("head_stats.%s", stat));
      continue;
    }
    for (int i = 0; i < L; i++)
      for (int h = 0; h < H; h++) {
        cmp_entry_t *e = push(l);
        if (!e)
          return -1;
        e->stat = stat;
        e->layer = i;
        e->head = h;
        fill(e, cell(rs, "n", i, h), cell(rs, "mean", i, h), cell(rs, "m2", i, h),
             cell(bs, "n", i, h), cell(bs, "mean", i, h), cell(bs, "m2", i, h), thr);
        if (st)
          stratify_head(st, e, thr);
      }
  }
  json_object_foreach(ba, stat, rs) if (!json_object_get(ra, stat)) json_array_append_new(
      json_object_get(only, "baseline"), json_sprintf("head_stats.%s", stat));
  return 0;
}

/* The pair's entry of an agreement object, also under its reversed name ("b~a" for
 * "a~b"): every metric is symmetric, and runs may list their maps in another order. */
static json_t *find_pair(json_t *agreement, const char *pair) {
  json_t *v = json_object_get(agreement, pair);
  const char *tilde = strchr(pair, '~');
  if (v || !tilde)
    return v;
  char rev[512];
  int n = snprintf(rev, sizeof rev, "%s~%.*s", tilde + 1, (int)(tilde - pair), pair);
  return n > 0 && n < (int)sizeof rev ? json_object_get(agreement, rev) : NULL;
}

static int compare_agreement(json_t *run, json_t *base, double thr, cmp_list_t *l,
                             json_t *only, const strata_t *st) {
  json_t *ra = am_jget(run, "agreement", NULL), *ba = am_jget(base, "agreement", NULL);
  const char *pair, *metric;
  json_t *rp, *rm;
  json_object_foreach(ra, pair, rp) {
    json_t *bp = find_pair(ba, pair);
    json_object_foreach(rp, metric, rm) {
      json_t *bm = json_object_get(bp, metric);
      if (!json_is_object(bm)) {
        json_array_append_new(json_object_get(only, "run"),
                              json_sprintf("agreement.%s.%s", pair, metric));
        continue;
      }
      cmp_entry_t *e = push(l);
      if (!e)
        return -1;
      e->pair = pair;
      e->metric = metric;
      fill(e, am_jnum(json_object_get(rm, "n")), am_jnum(json_object_get(rm, "mean")),
           am_jnum(json_object_get(rm, "m2")), am_jnum(json_object_get(bm, "n")),
           am_jnum(json_object_get(bm, "mean")), am_jnum(json_object_get(bm, "m2")), thr);
      if (st)
        stratify_agreement(st, e, thr);
    }
  }
  json_t *bp;
  json_object_foreach(ba, pair, bp) {
    json_t *mine = find_pair(ra, pair);
    json_object_foreach(bp, metric, rm) {
      if (!json_is_object(json_object_get(mine, metric)))
        json_array_append_new(json_object_get(only, "baseline"),
                              json_sprintf("agreement.%s.%s", pair, metric));
    }
  }
  return 0;
}

/* Drifted first, then by |z| (NaN last), then in the order found. */
static int by_drift(const void *pa, const void *pb) {
  const cmp_entry_t *a = pa, *b = pb;
  if (a->drift != b->drift)
    return b->drift - a->drift;
  double za = isnan(a->z) ? -1 : fabs(a->z), zb = isnan(b->z) ? -1 : fabs(b->z);
  if (za != zb)
    return za > zb ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *entry_json(const cmp_entry_t *e) {
  json_t *o = e->stat ? json_pack("{s:s,s:i,s:i}", "statistic", e->stat, "layer", e->layer,
                                  "head", e->head)
                      : json_pack("{s:s,s:s}", "pair", e->pair, "metric", e->metric);
  json_object_set_new(o, "run", num(e->run));
  json_object_set_new(o, "baseline", num(e->base));
  json_object_set_new(o, "delta", num(e->delta));
  json_object_set_new(o, "sd", num(e->sd));
  json_object_set_new(o, "z", num(e->z));
  if (isinf(e->z))
    json_object_set_new(o, "z_infinite", json_integer(e->z > 0 ? 1 : -1));
  json_object_set_new(o, "drift", json_boolean(e->drift));
  return o;
}

/* Notes on what makes the two runs differ beyond their numbers. */
static json_t *notes(json_t *run, json_t *base, json_t *mix, int stratified) {
  json_t *out = json_array();
  if (json_is_true(json_object_get(mix, "changed")))
    json_array_append_new(
        out, json_sprintf("the length mix changed (mean %.1f tokens, baseline %.1f; length "
                          "histograms %.0f%% apart): length-dependent statistics such as "
                          "entropy and distance move with it%s",
                          am_jnum(json_object_get(mix, "run_mean")),
                          am_jnum(json_object_get(mix, "baseline_mean")),
                          100 * am_jnum(json_object_get(mix, "tvd")),
                          stratified ? "; the changes below are stratified by length"
                                     : "; report --stratify-length compares examples of "
                                       "similar length only"));
  json_t *ro = am_jget(run, "provenance", "options", NULL);
  json_t *bo = am_jget(base, "provenance", "options", NULL);
  const char *key;
  json_t *rv;
  json_object_foreach(ro, key, rv) {
    if (strcmp(key, "chunk") == 0)
      continue;
    json_t *bv = json_object_get(bo, key);
    if (!bv || !json_equal(rv, bv))
      json_array_append_new(out, json_sprintf("option %s differs from the baseline", key));
  }
  static const char *const ds_keys[] = {"examples", "layers", "heads", "max_tokens",
                                        "model"};
  for (size_t k = 0; k < sizeof ds_keys / sizeof *ds_keys; k++) {
    json_t *a = am_jget(run, "dataset", ds_keys[k], NULL),
           *b = am_jget(base, "dataset", ds_keys[k], NULL);
    if ((a || b) && !(a && b && json_equal(a, b)))
      json_array_append_new(
          out, json_sprintf("dataset.%s differs from the baseline", ds_keys[k]));
  }
  return out;
}

static json_t *list_json(cmp_list_t *l, int heads) {
  json_t *arr = json_array();
  for (size_t i = 0; i < l->n; i++)
    if ((l->e[i].stat != NULL) == heads)
      json_array_append_new(arr, entry_json(&l->e[i]));
  return arr;
}

am_status am_compare_summaries(am_ctx_t *ctx, json_t *run, json_t *base,
                               const char *run_name, const char *base_name,
                               double threshold, const am_report_run_t *strata_run,
                               const am_report_run_t *strata_base, json_t **out,
                               int64_t *drifted) {
  *out = NULL;
  *drifted = 0;
  if (!(threshold >= 0))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "drift threshold must be >= 0");
  cmp_list_t l = {0};
  json_t *only = json_pack("{s:[],s:[]}", "run", "baseline");
  int same_shape = json_equal(am_jget(run, "dataset", "layers", NULL),
                              am_jget(base, "dataset", "layers", NULL)) &&
                   json_equal(am_jget(run, "dataset", "heads", NULL),
                              am_jget(base, "dataset", "heads", NULL));
  strata_t strata = {strata_run, strata_base};
  const strata_t *st = strata_run && strata_base ? &strata : NULL;
  if ((same_shape && compare_heads(run, base, threshold, &l, only, st) != 0) ||
      compare_agreement(run, base, threshold, &l, only, st) != 0) {
    free(l.e);
    json_decref(only);
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  if (l.n)
    qsort(l.e, l.n, sizeof *l.e, by_drift);
  for (size_t i = 0; i < l.n; i++)
    *drifted += l.e[i].drift;
  json_t *mix = am_compare_length_mix(run, base, threshold);
  json_t *doc = json_pack(
      "{s:i,s:s,s:s,s:f,s:s,s:b,s:I,s:b,s:O,s:o,s:o,s:o,s:o}", "format", 1, "run", run_name,
      "baseline", base_name, "threshold", threshold, "measure",
      st ? "length-stratified: mean over strata of similar length (weights: both runs' "
           "examples in the stratum) of (run mean - baseline mean), / pooled "
           "within-stratum "
           "sample standard deviation"
         : "(run mean - baseline mean) / pooled sample standard deviation over examples",
      "stratified", st != NULL, "drifted", (json_int_t)*drifted, "heads_compared",
      same_shape, "length_mix", mix, "notes", notes(run, base, mix, st != NULL), "only_in",
      only, "head_stats", list_json(&l, 1), "agreement", list_json(&l, 0));
  json_decref(mix);
  free(l.e);
  int64_t faith_drifted = 0;
  json_t *faith = am_compare_faithfulness(run, base, threshold, &faith_drifted);
  if (doc && faith && !json_is_null(faith)) {
    *drifted += faith_drifted;
    json_object_set_new(doc, "drifted", json_integer(*drifted));
  }
  if (doc)
    json_object_set_new(doc, "faithfulness", faith);
  else
    json_decref(faith);
  if (!doc)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  *out = doc;
  return AM_STATUS_OK;
}

am_status am_run_compare(am_ctx_t *ctx, const char *run_dir, const char *baseline_dir,
                         double drift, const char *json_path, int64_t *drifted) {
  if (drifted)
    *drifted = 0;
  if (!run_dir || !baseline_dir)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_run_compare: a run folder is NULL");
  am_report_run_t a, b;
  am_status st = am_report_run_open(ctx, run_dir, 0, &a);
  if (st != AM_STATUS_OK)
    return st;
  st = am_report_run_open(ctx, baseline_dir, 0, &b);
  if (st != AM_STATUS_OK) {
    am_report_run_close(&a);
    return st;
  }
  json_t *doc = NULL;
  int64_t n = 0;
  st = am_compare_summaries(ctx, a.summary, b.summary, run_dir, baseline_dir, drift, NULL,
                            NULL, &doc, &n);
  if (st == AM_STATUS_OK && json_path)
    st = am_write_json(ctx, json_path, doc);
  if (st == AM_STATUS_OK && drifted)
    *drifted = n;
  json_decref(doc);
  am_report_run_close(&a);
  am_report_run_close(&b);
  return st;
}
