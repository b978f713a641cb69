/* test_length_mix.c — the nightly comparison when only the length mix changed: two runs of
 * the same kind of examples (same generator, same lengths 4 and 12), the baseline mostly
 * short, the run mostly long. Entropy grows with length, so the pooled comparison finds
 * drift; the report says that the length mix changed (comparison.json length_mix and a
 * note), and `--stratify-length` compares examples of similar length only and finds none. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

static char work[128];
static char paths[16][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "lenmix"), 0); }
static void teardown(void) { dsb_rmtree(work); }

TestSuite(length_mix, .init = setup, .fini = teardown, .timeout = 120);

static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 16], sizeof paths[0], work, name);
}

/* A run of `nshort` examples of 4 tokens and `nlong` of 12 (one shard each). */
static const char *make_run(const char *name, int nshort, int nlong, uint64_t seed) {
  char dir[600], s[700], l[700];
  snprintf(dir, sizeof dir, "%s/%s-data", work, name);
  mkdir(dir, 0777);
  snprintf(s, sizeof s, "%s/a.safetensors", dir);
  snprintf(l, sizeof l, "%s/b.safetensors", dir);
  dsb_spec_t a = {.L = 2, .H = 2, .B = nshort, .T = 4, .grads = 1, .seed = seed};
  dsb_spec_t b = {.L = 2, .H = 2, .B = nlong, .T = 12, .grads = 1, .seed = seed + 1};
  cr_assert_eq(dsb_make(&a, s), 0);
  cr_assert_eq(dsb_make(&b, l), 0);
  const char *run = P(name);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", dir, "-o", run, "-q", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
  cli_result_free(&r);
  return run;
}

static json_t *compare(const char *run, const char *base, int stratify) {
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "report", run, "--baseline", base, "--json", "--views", "0",
                       stratify ? "--stratify-length" : NULL, NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
  json_t *doc = json_loads(r.out, 0, NULL);
  cr_assert_not_null(doc, "stdout: %s", r.out);
  cli_result_free(&r);
  return doc;
}

/* Largest |z| of the head statistic stat over layers and heads. */
static double max_z(json_t *doc, const char *stat) {
  double m = 0;
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(doc, "head_stats"), i, e) {
    if (strcmp(json_string_value(json_object_get(e, "statistic")), stat) == 0) {
      double z = json_number_value(json_object_get(e, "z"));
      m = fabs(z) > m ? fabs(z) : m;
    }
  }
  return m;
}

Test(length_mix, a_changed_mix_is_said_and_stratification_removes_its_drift) {
  const char *base = make_run("base", 48, 16, 11), *run = make_run("run", 16, 48, 21);
  json_t *pooled = compare(run, base, 0), *strat = compare(run, base, 1);
  json_t *mix = json_object_get(pooled, "length_mix");
  /* mean length 12*48/64 + 4*16/64 = 10 against 6 */
  cr_expect_float_eq(json_number_value(json_object_get(mix, "run_mean")), 10.0, 1e-9);
  cr_expect_float_eq(json_number_value(json_object_get(mix, "baseline_mean")), 6.0, 1e-9);
  /* histograms: 25%/75% against 75%/25%: half the mass moved */
  cr_expect_float_eq(json_number_value(json_object_get(mix, "tvd")), 0.5, 1e-9);
  cr_expect(json_is_true(json_object_get(mix, "changed")));
  char *text = json_dumps(json_object_get(pooled, "notes"), 0);
  cr_expect(strstr(text, "the length mix changed") && strstr(text, "--stratify-length"),
            "notes: %s", text);
  free(text);
  cr_expect(json_is_false(json_object_get(pooled, "stratified")));
  cr_expect(json_is_true(json_object_get(strat, "stratified")));
  double zp = max_z(pooled, "entropy"), zs = max_z(strat, "entropy");
  cr_expect_gt(zp, 1.0, "pooled entropy change %g sd: the mix alone should move it", zp);
  cr_expect_lt(zs, 0.5, "stratified entropy change %g sd (pooled %g)", zs, zp);
  json_decref(pooled);
  json_decref(strat);
}

Test(length_mix, the_same_mix_is_not_flagged) {
  const char *base = make_run("base", 32, 32, 11), *run = make_run("run", 32, 32, 21);
  json_t *doc = compare(run, base, 0);
  json_t *mix = json_object_get(doc, "length_mix");
  cr_expect(json_is_false(json_object_get(mix, "changed")));
  cr_expect_float_eq(json_number_value(json_object_get(mix, "tvd")), 0.0, 1e-12);
  json_decref(doc);
}
