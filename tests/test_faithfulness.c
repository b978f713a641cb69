/* test_faithfulness.c — `attnmap faithfulness RUN PROBS -o OUT` (docs/faithfulness.md):
 * the scores and aggregates of a hand-written PROBS (tests/support/faith_probs.c, where
 * every expected number below comes from), a merge of two halves equal to the whole, every
 * refusal of a bad PROBS (exit 2, one line naming file, tensor and problem, RUN untouched,
 * no OUT), and the same inputs giving the same bytes. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/dataset_builder.h"
#include "support/faith_probs.h"
#include "support/run_cli.h"

static char work[128];
static char paths[64][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "faith"), 0); }
static void teardown(void) { dsb_rmtree(work); }

TestSuite(faithfulness, .init = setup, .fini = teardown, .timeout = 120);

static const char *P(const char *name) {
  char *p = paths[next_path++ % 64];
  return dsb_join(p, sizeof paths[0], work, name);
}

static const int lens[FP_N] = {5, 5, 3, 0};

static dsb_spec_t spec(int B, const int *l, int64_t first) {
  dsb_spec_t s = {.L = 2, .H = 2, .B = B, .T = 6, .lengths = l, .seed = 3, .first = first};
  s.grads = s.saliency = 1;
  return s;
}

static void analyze(const char *input, const char *run) {
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", input, "-o", run, "--quiet", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "analyze: %s", r.err);
  cli_result_free(&r);
}

/* The dataset as two shards in one folder (whole) and each shard's run (a, b). */
static void make_runs(const char **whole, const char **a, const char **b) {
  const char *shards = P("shards");
  char pa[600], pb[600];
  cr_assert_eq(mkdir(shards, 0777), 0);
  dsb_spec_t s = spec(2, lens, 0);
  cr_assert_eq(dsb_make(&s, dsb_join(pa, sizeof pa, shards, "a.safetensors")), 0);
  s = spec(2, lens + 2, 2);
  cr_assert_eq(dsb_make(&s, dsb_join(pb, sizeof pb, shards, "b.safetensors")), 0);
  *whole = P("run");
  analyze(shards, *whole);
  if (a) {
    *a = P("run-a");
    *b = P("run-b");
    analyze(pa, *a);
    analyze(pb, *b);
  }
}

static void faith_ok(const char *run, const char *probs, const char *out) {
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "faithfulness", run, probs, "-o", out, "--quiet", NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "faithfulness: %s", r.err);
  cli_result_free(&r);
}

static json_t *section(const char *run) {
  char p[600];
  json_t *doc = json_load_file(dsb_join(p, sizeof p, run, "summary.json"), 0, NULL);
  cr_assert_not_null(doc);
  json_t *s = json_incref(json_object_get(doc, "faithfulness"));
  json_decref(doc);
  cr_assert_not_null(s, "%s/summary.json: no faithfulness section", run);
  return s;
}

static double at(const json_t *o, const char *path) {
  json_t *v = (json_t *)o;
  char buf[256], *save = NULL;
  snprintf(buf, sizeof buf, "%s", path);
  for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
    v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
  cr_assert(json_is_number(v), "%s: not a number", path);
  return json_number_value(v);
}

#define NEAR(x, want)                                                                      \
  cr_expect(fabs((x) - (want)) < 1e-6, "%s = %.9g, want %.9g", #x, (x), (want))

Test(faithfulness, scores_and_aggregates_take_the_hand_worked_values) {
  const char *run, *probs = P("probs.safetensors"), *out = P("frun");
  make_runs(&run, NULL, NULL);
  fp_probs_t p;
  fp_default(&p);
  p.p_full[3] = 0.5f; /* example 3 has no rankable token (only specials): p_full is kept */
  cr_assert_eq(fp_write(&p, run, 0, FP_N, probs), 0);
  faith_ok(run, probs, out);
  am_ctx_t *ctx = NULL;
  am_ctx_options_t o = {.backend = "cpu", .threads = 1};
  cr_assert_eq(am_ctx_create(&o, &ctx, NULL, 0), AM_STATUS_OK);
  char fp[600];
  am_file_t *f = NULL;
  cr_assert_eq(
      am_file_open(ctx, dsb_join(fp, sizeof fp, out, "faithfulness.safetensors"), &f),
      AM_STATUS_OK, "%s", am_last_error(ctx));
  const am_tensor_t *comp = am_file_find(f, "faithfulness.comprehensiveness");
  const am_tensor_t *aopc = am_file_find(f, "faithfulness.aopc_comprehensiveness");
  const am_tensor_t *del = am_file_find(f, "faithfulness.deletion_area");
  const am_tensor_t *full = am_file_find(f, "faithfulness.p_full");
  cr_assert(comp && aopc && del && full);
  float pf[FP_N];
  memcpy(pf, full->data, sizeof pf);
  NEAR((double)pf[3], 0.5);
  cr_expect(comp->shape[0] == FP_N && comp->shape[1] == FP_M && comp->shape[2] == FP_K);
  float c[FP_N * FP_M * FP_K], a[FP_N * FP_M], d[FP_N * FP_M];
  memcpy(c, comp->data, sizeof c);
  memcpy(a, aopc->data, sizeof a);
  memcpy(d, del->data, sizeof d);
  NEAR((double)c[0], 0.25); /* example 0, attention_last, bin 10% */
  NEAR((double)c[1 * FP_M * FP_K + 1],
       0.625);                         /* example 1, attention_last, 50%: 0.5+0.125 */
  NEAR((double)a[2 * FP_M + 0], 0.25); /* example 2, attention_last: (0.125+0.375)/2 */
  NEAR((double)a[0 * FP_M + 1], 0.1875);
  NEAR((double)d[0], 0.5125);
  NEAR((double)d[2], 0.75); /* random's deletion curve stays at 0.75 */
  cr_expect(isnan(c[3 * FP_M * FP_K]) && isnan(a[3 * FP_M]), "example 3 has no token: NaN");
  am_file_close(f);
  am_ctx_destroy(ctx);

  json_t *s = section(out);
  cr_expect_eq(at(s, "scored"), 3);
  NEAR(at(s, "maps/attention_last/comprehensiveness/aopc/mean"), 0.375);
  NEAR(at(s, "maps/attention_last/comprehensiveness/aopc/std"), 0.125);
  NEAR(at(s, "maps/attention_last/comprehensiveness/aopc/m2"), 0.03125);
  NEAR(at(s, "maps/attention_last/comprehensiveness/aopc/ci95/0"),
       0.375 - 1.96 * 0.125 / sqrt(3));
  NEAR(at(s, "maps/attention_last/comprehensiveness/bins/1/mean"), 0.5);
  NEAR(at(s, "maps/rollout/comprehensiveness/aopc/std"), 0);
  NEAR(at(s, "maps/random/sufficiency/aopc/mean"), 0.5);
  NEAR(at(s, "maps/attention_last/sufficiency/aopc/mean"), 0.0625);
  NEAR(at(s, "maps/rollout/deletion/area/mean"), 0.5125);
  NEAR(at(s, "maps/random/insertion/area/mean"), 0.7125);
  NEAR(at(s, "maps/random/deletion/curve/10/mean"), 0.75);
  /* classes {1, 0, 1}: class 0 is example 1 (AOPC 0.5), class 1 examples 0 and 2 */
  cr_expect_eq(at(s, "by_class/0/class"), 0);
  cr_expect_eq(at(s, "by_class/1/count"), 2);
  NEAR(at(s, "by_class/0/maps/attention_last/aopc_comprehensiveness/mean"), 0.5);
  NEAR(at(s, "by_class/1/maps/attention_last/aopc_comprehensiveness/mean"), 0.3125);
  /* ranking by AOPC comprehensiveness: 0.375 > 0.1875 > 0.03125 */
  const json_t *rank = json_object_get(s, "ranking");
  cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rank, 0), "map")),
                   "attention_last");
  cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rank, 2), "map")),
                   "random");
  NEAR(at(s, "ranking/1/minus_random"), 0.1875 - 0.03125);
  /* listed: the most agreed-upon map's examples by its AOPC, lowest first */
  const json_t *ma = json_object_get(s, "most_agreed");
  const char *map = json_string_value(json_object_get(ma, "map"));
  cr_assert_not_null(map);
  const json_t *ex = json_object_get(ma, "examples");
  cr_expect_eq(json_array_size(ex), 3);
  if (strcmp(map, "attention_last") == 0) /* AOPC 0.375, 0.5, 0.25 */
    cr_expect(at(ex, "0/index") == 2 && at(ex, "1/index") == 0 && at(ex, "2/index") == 1);
  else /* rollout: 0.1875 everywhere, ties by index */
    cr_expect(at(ex, "0/index") == 0 && at(ex, "2/index") == 2);
  json_decref(s);
}

Test(faithfulness, merging_halves_equals_the_whole) {
  const char *run, *ra, *rb;
  make_runs(&run, &ra, &rb);
  fp_probs_t p;
  fp_default(&p);
  const char *pw = P("w.safetensors"), *pa = P("a.safetensors"), *pb = P("b.safetensors");
  cr_assert_eq(fp_write(&p, run, 0, FP_N, pw), 0);
  cr_assert_eq(fp_write(&p, ra, 0, 2, pa), 0);
  cr_assert_eq(fp_write(&p, rb, 2, FP_N, pb), 0);
  const char *fw = P("fw"), *fa = P("fa"), *fb = P("fb"), *fm = P("fm");
  faith_ok(run, pw, fw);
  faith_ok(ra, pa, fa);
  faith_ok(rb, pb, fb);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "merge", fa, fb, "-o", fm, "--quiet", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "merge: %s", r.err);
  cli_result_free(&r);
  char x[600], y[600];
  size_t nx = 0, ny = 0;
  char *bx = dsb_read_file(dsb_join(x, sizeof x, fw, "faithfulness.safetensors"), &nx);
  char *by = dsb_read_file(dsb_join(y, sizeof y, fm, "faithfulness.safetensors"), &ny);
  cr_assert(bx && by);
  cr_expect(nx == ny && memcmp(bx, by, nx) == 0, "faithfulness.safetensors differs");
  free(bx);
  free(by);
  json_t *sw = section(fw), *sm = section(fm);
  json_object_del(sw, "provenance");
  json_object_del(sm, "provenance");
  cr_expect(json_equal(sw, sm), "the merged faithfulness section differs from the whole's");
  json_decref(sw);
  json_decref(sm);
  /* a faithfulness run and a plain run do not merge */
  cr_assert_eq(cli_run(&r, NULL, "merge", fa, rb, "-o", P("mixed"), NULL), 0);
  cr_expect_eq(r.exit_code, 2, "%s", r.err);
  cr_expect(strstr(r.err, "no faithfulness scores") != NULL, "%s", r.err);
  cli_result_free(&r);
}

Test(faithfulness, same_inputs_give_the_same_bytes) {
  const char *run, *probs = P("probs.safetensors"), *o1 = P("o1"), *o2 = P("o2");
  make_runs(&run, NULL, NULL);
  fp_probs_t p;
  fp_default(&p);
  cr_assert_eq(fp_write(&p, run, 0, FP_N, probs), 0);
  faith_ok(run, probs, o1);
  faith_ok(run, probs, o2);
  static const char *files[] = {"summary.json", "faithfulness.safetensors",
                                "examples.safetensors"};
  for (int i = 0; i < 3; i++) {
    char x[600], y[600];
    size_t nx = 0, ny = 0;
    char *bx = dsb_read_file(dsb_join(x, sizeof x, o1, files[i]), &nx);
    char *by = dsb_read_file(dsb_join(y, sizeof y, o2, files[i]), &ny);
    cr_assert(bx && by);
    cr_expect(nx == ny && memcmp(bx, by, nx) == 0, "%s differs between two runs", files[i]);
    free(bx);
    free(by);
  }
}

typedef struct bad {
  const char *what; /* expected in the message */
  void (*spoil)(fp_probs_t *p);
} bad_t;

static void no_kept(fp_probs_t *p) { p->drop = 3; }
static void target_f32(fp_probs_t *p) { p->target_f32 = 1; }
static void three_bins(fp_probs_t *p) { p->removed_k = 3; }
static void n_off(fp_probs_t *p) { p->run_n = 5; }
static void crc_off(fp_probs_t *p) { p->crc = "00000000"; }
static void above_one(fp_probs_t *p) { p->p_kept[1][2][1] = 1.5f; }
static void nan_prob(fp_probs_t *p) { p->del[2][0][4] = NAN; }
static void negative(fp_probs_t *p) { p->p_full[0] = -0.25f; }
static void bad_mode(fp_probs_t *p) { p->mode = "\"blur\""; }
static void bins_down(fp_probs_t *p) { p->bins = "[50,10]"; }
static void bin_zero(fp_probs_t *p) { p->bins = "[0,50]"; }
static void bin_over(fp_probs_t *p) { p->bins = "[10,101]"; }
static void dup_map(fp_probs_t *p) { p->maps = "[\"rollout\",\"rollout\",\"random\"]"; }
static void unknown_map(fp_probs_t *p) { p->maps = "[\"rollout\",\"lime\",\"random\"]"; }
static void random_first(fp_probs_t *p) { p->maps = "[\"random\",\"rollout\",\"flow\"]"; }
static void no_meta(fp_probs_t *p) { p->meta = ""; }
static void bad_json(fp_probs_t *p) { p->meta = "{\"version\":1,"; }
static void too_many(fp_probs_t *p) { p->tokens[2] = 4; } /* its run example has 3 */
static void bin_text(fp_probs_t *p) { p->bins = "[\"10\",50]"; }
static void maps_text(fp_probs_t *p) { p->maps = "\"rollout\""; }
static void html_map(fp_probs_t *p) { p->maps = "[\"<b>x</b>\",\"rollout\",\"random\"]"; }
static void version2(fp_probs_t *p) {
  p->meta = "{\"version\":2,\"maps\":[\"rollout\",\"random\"]}";
}
static void no_steps(fp_probs_t *p) {
  p->meta = "{\"version\":1,\"maps\":[\"attention_last\",\"rollout\",\"random\"],"
            "\"bins\":[10,50],\"steps\":[0,50,100]}";
}
static void negative_class(fp_probs_t *p) { p->target[1] = -1; }

static const bad_t bads[] = {
    {"tensor faithfulness.p_kept: missing", no_kept},
    {"tensor faithfulness.target: expected I32", target_f32},
    {"tensor faithfulness.p_removed: expected F32 [4,3,2]", three_bins},
    {"run.N: 5 examples", n_off},
    {"made from another run", crc_off},
    {"faithfulness.p_kept: example 1, map random, bin 1: 1.5 is not a probability",
     above_one},
    {"faithfulness.deletion: example 2, map attention_last, step 4: nan", nan_prob},
    {"faithfulness.p_full: example 0: -0.25 is not a probability", negative},
    {"mode: \"blur\" is not", bad_mode},
    {"bins[1]: not strictly increasing in (0, 100]", bins_down},
    {"bins[0]: not strictly increasing", bin_zero},
    {"bins[1]: not strictly increasing", bin_over},
    {"maps: \"rollout\" named twice", dup_map},
    {"maps: \"lime\" is not a map of the run", unknown_map},
    {"\"random\" must be the last name", random_first},
    {"metadata attnmap.faithfulness: missing", no_meta},
    {"metadata attnmap.faithfulness: not valid JSON", bad_json},
    {"faithfulness.tokens: example 2: 4, but the run's example has 3 tokens", too_many},
    {"bins[0]: not strictly increasing", bin_text},
    {"maps: not an array", maps_text},
    {"maps: \"<b>x</b>\" is not a map of the run", html_map},
    {"version: not 1", version2},
    {"steps: not [0, 10, ..., 100]", no_steps},
    {"faithfulness.target: example 1: class -1 is negative", negative_class},
};

Test(faithfulness, bad_probs_are_refused_in_one_line_and_run_is_untouched) {
  const char *run;
  make_runs(&run, NULL, NULL);
  char sp[600];
  size_t n0 = 0;
  char *before = dsb_read_file(dsb_join(sp, sizeof sp, run, "summary.json"), &n0);
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
    fp_probs_t p;
    fp_default(&p);
    bads[i].spoil(&p);
    char name[32];
    snprintf(name, sizeof name, "bad%zu.safetensors", i);
    const char *probs = P(name), *out = P("out");
    cr_assert_eq(fp_write(&p, run, 0, FP_N, probs), 0, "case %zu: cannot write", i);
    cli_result_t r;
    cr_assert_eq(cli_run(&r, NULL, "faithfulness", run, probs, "-o", out, NULL), 0);
    cr_expect_eq(r.exit_code, 2, "case %zu (%s): exit %d: %s", i, bads[i].what, r.exit_code,
                 r.err);
    cr_expect_eq(cli_count_lines(r.err), 1, "case %zu: not one line: %s", i, r.err);
    cr_expect(strstr(r.err, bads[i].what) != NULL, "case %zu: want [%s] in: %s", i,
              bads[i].what, r.err);
    cr_expect(strstr(r.err, probs) != NULL, "case %zu: the file is not named: %s", i,
              r.err);
    cr_expect(!dsb_exists(out), "case %zu: %s was written", i, out);
    cr_expect_eq(dsb_count_prefixed(out, ".tmp-"), 0, "case %zu: temporaries left", i);
    cli_result_free(&r);
  }
  size_t n1 = 0;
  char *after = dsb_read_file(sp, &n1);
  cr_expect(n0 == n1 && memcmp(before, after, n0) == 0, "RUN/summary.json changed");
  free(before);
  free(after);
}

Test(faithfulness, output_checks_refuse_to_replace_the_run) {
  const char *run, *probs = P("probs.safetensors");
  make_runs(&run, NULL, NULL);
  fp_probs_t p;
  fp_default(&p);
  cr_assert_eq(fp_write(&p, run, 0, FP_N, probs), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "faithfulness", run, probs, "-o", run, "--force", NULL),
               0);
  cr_expect_neq(r.exit_code, 0, "OUT = RUN was accepted");
  cli_result_free(&r);
  char inner[600];
  dsb_join(inner, sizeof inner, run, "sub/frun");
  cr_assert_eq(cli_run(&r, NULL, "faithfulness", run, probs, "-o", inner, NULL), 0);
  cr_expect_eq(r.exit_code, 2, "OUT inside RUN was accepted: %s", r.err);
  cr_expect(strstr(r.err, "inside the run folder") != NULL, "%s", r.err);
  cr_expect(!dsb_exists(inner), "%s was written", inner);
  cli_result_free(&r);
  const char *out = P("frun");
  faith_ok(run, probs, out);
  cr_assert_eq(cli_run(&r, NULL, "faithfulness", run, probs, "-o", out, NULL), 0);
  cr_expect_eq(r.exit_code, 2, "an existing OUT was replaced without --force: %s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "faithfulness", run, probs, "-o", out, "--force", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "--force over a faithfulness run: %s", r.err);
  cli_result_free(&r);
}

/* The report draws the section (escaped text, the random reference line, the ranking, the
 * listed examples) and report --baseline compares two faithfulness runs. */
Test(faithfulness, report_section_and_baseline_comparison) {
  const char *run, *probs = P("probs.safetensors"), *out = P("frun");
  make_runs(&run, NULL, NULL);
  fp_probs_t p;
  fp_default(&p);
  p.model = "\"<script>alert(1)</script>&\"";
  cr_assert_eq(fp_write(&p, run, 0, FP_N, probs), 0);
  faith_ok(run, probs, out);
  /* a baseline whose attention_last is less comprehensive: AOPC 0.375 - 0.125 */
  fp_probs_t q;
  fp_default(&q);
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < FP_K; k++)
      q.p_removed[i][0][k] += 0.125f;
  const char *qprobs = P("base.safetensors"), *base = P("fbase");
  cr_assert_eq(fp_write(&q, run, 0, FP_N, qprobs), 0);
  faith_ok(run, qprobs, base);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "report", out, "--baseline", base, NULL), 0);
  cr_assert_eq(r.exit_code, 0, "report: %s", r.err);
  cli_result_free(&r);
  char path[600];
  size_t n = 0;
  char *html = dsb_read_file(dsb_join(path, sizeof path, out, "report/index.html"), &n);
  cr_assert_not_null(html);
  cr_expect(strstr(html, "<section id=\"faithfulness\">") != NULL);
  cr_expect(strstr(html, "href=\"#faithfulness\"") != NULL, "no navigation link");
  cr_expect(strstr(html, "<script>alert(1)") == NULL, "the model name is not escaped");
  cr_expect(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;&amp;") != NULL);
  cr_expect(strstr(html, "stroke-dasharray") != NULL, "no dashed random reference line");
  cr_expect(strstr(html, "Where the most agreed-upon map is least faithful") != NULL);
  cr_expect(strstr(html, "<h3>Faithfulness</h3>") != NULL, "no comparison table");
  free(html);
  json_t *cmp =
      json_load_file(dsb_join(path, sizeof path, out, "report/comparison.json"), 0, NULL);
  cr_assert_not_null(cmp);
  const json_t *e =
      json_array_get(json_object_get(json_object_get(cmp, "faithfulness"), "entries"),
                     0); /* attention_last, comprehensiveness.aopc */
  cr_expect_str_eq(json_string_value(json_object_get(e, "map")), "attention_last");
  cr_expect_str_eq(json_string_value(json_object_get(e, "quantity")),
                   "comprehensiveness.aopc");
  NEAR(json_number_value(json_object_get(e, "delta")), 0.125);
  /* pooled sd: both runs' m2 = 0.03125 over 3 + 3 examples: sqrt(0.0625 / 4) = 0.125 */
  NEAR(json_number_value(json_object_get(e, "z")), 1.0);
  json_decref(cmp);
}

/* A PROBS cut short or not a safetensors file, and a faithfulness run whose scores file was
 * changed or removed (merge reads it back), are refused in one line naming the file. */
Test(faithfulness, damaged_files_are_refused) {
  const char *run, *probs = P("probs.safetensors"), *out = P("frun");
  make_runs(&run, NULL, NULL);
  fp_probs_t p;
  fp_default(&p);
  cr_assert_eq(fp_write(&p, run, 0, FP_N, probs), 0);
  size_t n = 0;
  char *bytes = dsb_read_file(probs, &n);
  cr_assert_not_null(bytes);
  const char *cut = P("cut.safetensors"), *junk = P("junk.safetensors");
  cr_assert_eq(dsb_write_bytes(cut, bytes, n / 2), 0);
  static const char not_st[] = "{\"not\": \"safetensors\"}";
  cr_assert_eq(dsb_write_bytes(junk, not_st, strlen(not_st)), 0);
  const char *bad[2] = {cut, junk};
  cli_result_t r;
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(cli_run(&r, NULL, "faithfulness", run, bad[i], "-o", out, NULL), 0);
    cr_expect_eq(r.exit_code, 2, "%s: exit %d: %s", bad[i], r.exit_code, r.err);
    cr_expect(cli_count_lines(r.err) == 1 && strstr(r.err, bad[i]), "%s: %s", bad[i],
              r.err);
    cr_expect(!dsb_exists(out));
    cli_result_free(&r);
  }
  faith_ok(run, probs, out);
  char path[600];
  dsb_join(path, sizeof path, out, "faithfulness.safetensors");
  char *scores = dsb_read_file(path, &n);
  cr_assert_not_null(scores);
  scores[n - 1] ^= 0x40; /* one bit of the last score */
  cr_assert_eq(dsb_write_bytes(path, scores, n), 0);
  const char *m1 = P("m1"), *m2 = P("m2");
  cr_assert_eq(cli_run(&r, NULL, "merge", out, "-o", m1, NULL), 0);
  cr_expect_eq(r.exit_code, 2, "a changed scores file was merged: %s", r.err);
  cr_expect(strstr(r.err, "faithfulness.safetensors") && strstr(r.err, "was changed"), "%s",
            r.err);
  cli_result_free(&r);
  cr_assert_eq(remove(path), 0);
  cr_assert_eq(cli_run(&r, NULL, "merge", out, "-o", m2, NULL), 0);
  cr_expect_eq(r.exit_code, 2, "a missing scores file was merged: %s", r.err);
  cr_expect(strstr(r.err, "cannot open") != NULL, "%s", r.err);
  cr_expect(!dsb_exists(m1) && !dsb_exists(m2));
  cli_result_free(&r);
  free(bytes);
  free(scores);
}
