/* test_report_compare.c — the nightly comparison (am_run_compare and `attnmap report
 * --baseline`): z of each head statistic and agreement metric as the standardised mean
 * difference with the pooled sample standard deviation (checked against the textbook
 * formula on raw samples), the threshold ("beyond" is strict), zero spread, entries that
 * only one run holds, differing options and shapes, the JSON on stdout and exit codes
 * 0 / 2 / 3 of the CLI on runs analysed from built datasets. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

static char work[128];
static char paths[16][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "cmp"), 0); }
static void teardown(void) { dsb_rmtree(work); }
TestSuite(compare, .init = setup, .fini = teardown, .timeout = 120);

static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 16], sizeof paths[0], work, name);
}

/* Welford state of a raw sample, computed the two-pass way. */
typedef struct moments {
  double n, mean, m2;
} moments_t;
static moments_t moments(const double *x, int n) {
  moments_t m = {n, 0, 0};
  for (int i = 0; i < n; i++)
    m.mean += x[i] / n;
  for (int i = 0; i < n; i++)
    m.m2 += (x[i] - m.mean) * (x[i] - m.mean);
  return m;
}

/* Cohen's d with the pooled sample standard deviation (textbook form). */
static double cohen_d(const double *a, int na, const double *b, int nb) {
  moments_t x = moments(a, na), y = moments(b, nb);
  double va = x.m2 / (na - 1), vb = y.m2 / (nb - 1);
  return (x.mean - y.mean) / sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2));
}

static json_t *stat_json(const moments_t *cells, int L, int H) {
  json_t *n = json_array(), *mean = json_array(), *m2 = json_array();
  for (int l = 0; l < L; l++) {
    json_t *rn = json_array(), *rm = json_array(), *r2 = json_array();
    for (int h = 0; h < H; h++) {
      json_array_append_new(rn, json_real(cells[l * H + h].n));
      json_array_append_new(rm, json_real(cells[l * H + h].mean));
      json_array_append_new(r2, json_real(cells[l * H + h].m2));
    }
    json_array_append_new(n, rn);
    json_array_append_new(mean, rm);
    json_array_append_new(m2, r2);
  }
  return json_pack("{s:o,s:o,s:o}", "n", n, "mean", mean, "m2", m2);
}

static json_t *agree_json(moments_t m) {
  return json_pack("{s:f,s:f,s:f}", "n", m.n, "mean", m.mean, "m2", m.m2);
}

/* A run folder holding only summary.json. */
static const char *write_summary(const char *name, json_t *doc) {
  const char *d = P(name);
  cr_assert_eq(mkdir(d, 0777), 0);
  char path[600];
  cr_assert_eq(json_dump_file(doc, dsb_join(path, sizeof path, d, "summary.json"), 0), 0);
  json_decref(doc);
  return d;
}

static json_t *summary(int L, int H, const char *target, json_t *stats, json_t *agreement) {
  return json_pack("{s:{s:i,s:i,s:i},s:{s:{s:s,s:i}},s:o,s:o}", "dataset", "layers", L,
                   "heads", H, "examples", 9, "provenance", "options", "target", target,
                   "topk", 5, "head_stats", stats, "agreement", agreement);
}

static json_t *compare(const char *run, const char *base, double thr, int64_t *drifted) {
  am_ctx_t *ctx = NULL;
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  const char *out = P("comparison.json");
  am_status st = am_run_compare(ctx, run, base, thr, out, drifted);
  cr_assert_eq(st, AM_STATUS_OK, "%s", am_last_error(ctx));
  am_ctx_destroy(ctx);
  json_t *doc = json_load_file(out, 0, NULL);
  cr_assert_not_null(doc);
  return doc;
}

/* Samples of one statistic in the run and the baseline, per head. */
static const double A0[] = {1, 2, 3, 4, 6}, B0[] = {0, 1, 1, 2};         /* d = 1.42 */
static const double A1[] = {0.5, 0.7, 0.2, 0.9}, B1[] = {0.6, 0.4, 0.8}; /* small */
static const double A2[] = {3, 1, 2}, B2[] = {5, 4, 6, 5};               /* d < 0 */

static void three_heads(moments_t *run, moments_t *base) {
  run[0] = moments(A0, 5), base[0] = moments(B0, 4);
  run[1] = moments(A1, 4), base[1] = moments(B1, 3);
  run[2] = moments(A2, 3), base[2] = moments(B2, 4);
}

Test(compare, z_is_cohens_d_and_drift_is_listed_first) {
  moments_t r[3], b[3];
  three_heads(r, b);
  json_t *ra =
      json_pack("{s:{s:o}}", "rollout~saliency.ig", "spearman", agree_json(moments(A1, 4)));
  json_t *ba = /* the same pair, its maps in the other order */
      json_pack("{s:{s:o}}", "saliency.ig~rollout", "spearman", agree_json(moments(B1, 3)));
  const char *run = write_summary(
      "run", summary(1, 3, "cls", json_pack("{s:o}", "entropy", stat_json(r, 1, 3)), ra));
  const char *base = write_summary(
      "base", summary(1, 3, "cls", json_pack("{s:o}", "entropy", stat_json(b, 1, 3)), ba));
  int64_t drifted = -1;
  json_t *doc = compare(run, base, 0.5, &drifted);
  double d0 = cohen_d(A0, 5, B0, 4), d1 = cohen_d(A1, 4, B1, 3), d2 = cohen_d(A2, 3, B2, 4);
  cr_assert(fabs(d0) > 0.5 && fabs(d1) < 0.5 && fabs(d2) > fabs(d0), "fixture: %g %g %g",
            d0, d1, d2);
  cr_assert_eq(drifted, 2);
  cr_assert_eq(json_integer_value(json_object_get(doc, "drifted")), 2);
  json_t *heads = json_object_get(doc, "head_stats");
  cr_assert_eq(json_array_size(heads), 3);
  const int order[3] = {2, 0, 1}; /* by |z|: head 2, head 0, then the undrifted head 1 */
  const double want[3] = {d2, d0, d1};
  for (int k = 0; k < 3; k++) {
    json_t *e = json_array_get(heads, (size_t)k);
    cr_assert_str_eq(json_string_value(json_object_get(e, "statistic")), "entropy");
    cr_assert_eq(json_integer_value(json_object_get(e, "head")), order[k]);
    cr_assert_float_eq(json_number_value(json_object_get(e, "z")), want[k], 1e-12);
    cr_assert_eq(json_is_true(json_object_get(e, "drift")), k < 2);
    moments_t x = r[order[k]], y = b[order[k]];
    cr_assert_float_eq(json_number_value(json_object_get(e, "delta")), x.mean - y.mean,
                       1e-12);
  }
  json_t *ag = json_array_get(json_object_get(doc, "agreement"), 0);
  cr_assert_str_eq(json_string_value(json_object_get(ag, "pair")), "rollout~saliency.ig");
  cr_assert_float_eq(json_number_value(json_object_get(ag, "z")), d1, 1e-12);
  cr_assert(json_is_false(json_object_get(ag, "drift")));
  cr_assert_eq(json_array_size(json_object_get(doc, "notes")), 0);
  json_decref(doc);
}

Test(compare, threshold_is_strict_and_zero_spread_drifts_on_any_change) {
  /* sd = sqrt((8 + 8) / (3 + 3 - 2)) = 2, delta = 1: z = 0.5 exactly */
  moments_t r[3] = {{3, 2, 8}, {5, 1, 0}, {5, 4, 0}},
            b[3] = {{3, 1, 8}, {5, 1, 0}, {5, 3, 0}};
  const char *run = write_summary(
      "run", summary(1, 3, "cls", json_pack("{s:o}", "to_first", stat_json(r, 1, 3)),
                     json_object()));
  const char *base = write_summary(
      "base", summary(1, 3, "cls", json_pack("{s:o}", "to_first", stat_json(b, 1, 3)),
                      json_object()));
  int64_t drifted;
  json_t *doc = compare(run, base, 0.5, &drifted);
  cr_assert_eq(drifted, 1, "only the zero-spread head whose mean changed");
  json_t *first = json_array_get(json_object_get(doc, "head_stats"), 0);
  cr_assert_eq(json_integer_value(json_object_get(first, "head")), 2);
  cr_assert(json_is_null(json_object_get(first, "z")));
  cr_assert_eq(json_integer_value(json_object_get(first, "z_infinite")), 1);
  json_t *heads = json_object_get(doc, "head_stats");
  for (size_t i = 0; i < 3; i++) {
    json_t *e = json_array_get(heads, i);
    if (json_integer_value(json_object_get(e, "head")) == 0)
      cr_assert_float_eq(json_number_value(json_object_get(e, "z")), 0.5, 1e-15);
    if (json_integer_value(json_object_get(e, "head")) == 1)
      cr_assert(json_number_value(json_object_get(e, "z")) == 0.0 &&
                json_is_false(json_object_get(e, "drift")));
  }
  json_decref(doc);
  doc = compare(run, base, 0.49, &drifted);
  cr_assert_eq(drifted, 2);
  json_decref(doc);
}

Test(compare, missing_entries_options_and_shapes_are_reported) {
  moments_t r[3], b[3];
  three_heads(r, b);
  json_t *ra =
      json_pack("{s:{s:o}}", "rollout~flow", "kendall", agree_json(moments(A0, 5)));
  json_t *ba =
      json_pack("{s:{s:o}}", "rollout~saliency.ig", "kendall", agree_json(moments(B0, 4)));
  const char *run = write_summary(
      "run", summary(1, 3, "last", json_pack("{s:o}", "entropy", stat_json(r, 1, 3)), ra));
  const char *base =
      write_summary("base", summary(1, 3, "cls",
                                    json_pack("{s:o,s:o}", "entropy", stat_json(b, 1, 3),
                                              "to_self", stat_json(b, 1, 3)),
                                    ba));
  int64_t drifted;
  json_t *doc = compare(run, base, 0.5, &drifted);
  char *text = json_dumps(doc, 0);
  cr_assert(strstr(text, "\"agreement.rollout~flow.kendall\""), "%s", text);
  cr_assert(strstr(text, "\"agreement.rollout~saliency.ig.kendall\""), "%s", text);
  cr_assert(strstr(text, "\"head_stats.to_self\""), "%s", text);
  cr_assert(strstr(text, "option target differs"), "%s", text);
  cr_assert_eq(json_array_size(json_object_get(doc, "agreement")), 0);
  free(text);
  json_decref(doc);
  /* different heads: nothing of the heads is compared */
  moments_t r4[4] = {r[0], r[1], r[2], r[0]};
  const char *wide = write_summary(
      "wide", summary(1, 4, "cls", json_pack("{s:o}", "entropy", stat_json(r4, 1, 4)),
                      json_object()));
  doc = compare(wide, base, 0.5, &drifted);
  cr_assert(json_is_false(json_object_get(doc, "heads_compared")));
  cr_assert_eq(json_array_size(json_object_get(doc, "head_stats")), 0);
  cr_assert_eq(drifted, 0);
  text = json_dumps(doc, 0);
  cr_assert(strstr(text, "dataset.heads differs"), "%s", text);
  free(text);
  json_decref(doc);
}

Test(compare, bad_folders_and_threshold) {
  moments_t r[3], b[3];
  three_heads(r, b);
  const char *run = write_summary(
      "run", summary(1, 3, "cls", json_pack("{s:o}", "entropy", stat_json(r, 1, 3)),
                     json_object()));
  am_ctx_t *ctx = NULL;
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  int64_t d = 7;
  cr_assert_eq(am_run_compare(ctx, run, P("nowhere"), 0.5, NULL, &d), AM_STATUS_BAD_INPUT);
  cr_assert(strstr(am_last_error(ctx), "nowhere/summary.json"), "%s", am_last_error(ctx));
  cr_assert_eq(d, 0);
  const char *junk = P("junk");
  cr_assert_eq(mkdir(junk, 0777), 0);
  char path[600];
  cr_assert_eq(
      dsb_write_bytes(dsb_join(path, sizeof path, junk, "summary.json"), "{\"a\":", 5), 0);
  cr_assert_eq(am_run_compare(ctx, run, junk, 0.5, NULL, &d), AM_STATUS_BAD_INPUT);
  cr_assert_eq(am_run_compare(ctx, run, run, -1.0, NULL, &d), AM_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(am_run_compare(ctx, run, run, 0.0, NULL, &d), AM_STATUS_OK);
  cr_assert_eq(d, 0, "a run against itself never drifts");
  am_ctx_destroy(ctx);
}

/* ---- through the CLI on analysed runs ---------------------------------------------- */
static void make_run(const char *data, const char *run, int sharpen) {
  dsb_spec_t spec = {.L = 2,
                     .H = 2,
                     .B = 24,
                     .T = 9,
                     .dtype = AM_DTYPE_F32,
                     .grads = 1,
                     .saliency = 1,
                     .labels = 1,
                     .special = 1,
                     .seed = 11};
  dsb_t *ds = dsb_build(&spec);
  cr_assert_not_null(ds);
  if (sharpen) /* layer 1, head 0 attends to the first token only: a changed model */
    for (int b = 0; b < spec.B; b++)
      for (int i = 0; i < spec.T; i++)
        for (int j = 0; j < spec.T; j++)
          *dsb_att(ds, 1, b, 0, i, j) = j == 0 ? 1.0f : 0.0f;
  cr_assert_eq(dsb_write(ds, data), 0);
  dsb_free(ds);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "--quiet", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
}

Test(compare, cli_exit_codes_and_json) {
  const char *base = P("base"), *same = P("same"), *changed = P("changed");
  make_run(P("a.safetensors"), base, 0);
  make_run(P("b.safetensors"), same, 0);
  make_run(P("c.safetensors"), changed, 1);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "report", same, "--baseline", base, "--json",
                       "--fail-on-drift", "--views", "0", NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  json_error_t err;
  json_t *doc = json_loads(r.out, 0, &err);
  cr_assert_not_null(doc, "stdout is JSON: %s", err.text);
  cr_assert_eq(json_integer_value(json_object_get(doc, "drifted")), 0);
  cr_assert_gt(json_array_size(json_object_get(doc, "head_stats")), 0);
  json_decref(doc);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "report", changed, "--baseline", base, "--json",
                       "--fail-on-drift", NULL),
               0);
  cr_assert_eq(r.exit_code, 3, "drift: exit 3 (%s)", r.err);
  doc = json_loads(r.out, 0, &err);
  cr_assert_not_null(doc, "stdout is JSON: %s", err.text);
  cr_assert_gt(json_integer_value(json_object_get(doc, "drifted")), 0);
  json_t *top = json_array_get(json_object_get(doc, "head_stats"), 0);
  cr_assert(json_is_true(json_object_get(top, "drift")));
  cr_assert_eq(json_integer_value(json_object_get(top, "layer")), 1, "the sharpened layer");
  json_decref(doc);
  cli_result_free(&r);
  char path[600];
  cr_assert(dsb_exists(dsb_join(path, sizeof path, changed, "report/comparison.json")));
  char *html =
      dsb_read_file(dsb_join(path, sizeof path, changed, "report/index.html"), NULL);
  cr_assert(html && strstr(html, "id=\"comparison\"") &&
            strstr(html, "id=\"drift-count\""));
  cr_assert(strstr(html, "class=\"drift\""), "drifted rows marked on the page");
  free(html);
  cr_assert_eq(cli_run(&r, NULL, "report", changed, "--baseline", base, NULL), 0);
  cr_assert_eq(r.exit_code, 0, "drift without --fail-on-drift is not a failure");
  cr_assert(strstr(r.out, "beyond 0.5 sd"), "%s", r.out);
  cli_result_free(&r);
  static const char *const bad[][6] = {{"report", "RUN", "--json", NULL},
                                       {"report", "RUN", "--fail-on-drift", NULL},
                                       {"report", "RUN", "--drift", "-1", NULL},
                                       {"report", "RUN", "--views", "x", NULL},
                                       {"report", NULL},
                                       {"report", "RUN", "--baseline", "NOWHERE", NULL}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *argv[6];
    for (int k = 0; k < 6; k++)
      argv[k] = bad[i][k] && strcmp(bad[i][k], "RUN") == 0       ? base
                : bad[i][k] && strcmp(bad[i][k], "NOWHERE") == 0 ? P("nowhere")
                                                                 : bad[i][k];
    cr_assert_eq(cli_runv(&r, NULL, argv), 0);
    cr_assert_eq(r.exit_code, 2, "case %zu: exit %d (%s)", i, r.exit_code, r.err);
    cr_assert_eq(cli_count_lines(r.err), 1, "case %zu: one line: %s", i, r.err);
    cli_result_free(&r);
  }
}
