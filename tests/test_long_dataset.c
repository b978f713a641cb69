/* test_long_dataset.c — the long-context form through `attnmap analyze` and `inspect`
 * (docs/long-context.md): a dataset of queries/keys/values/attention_output_grads gives
 * the run that its matrix-form twin (attentions/attention_grads formed from the same
 * values, tests/support/long_dataset.c) gives, within the parity tolerances of
 * tests/support/compare_runs.c (rtol 1e-5 per value of examples.safetensors); the same
 * bytes whatever --chunk and --threads; bad inputs and options that need the matrices are
 * refused in one line naming file, tensor and problem. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/compare_runs.h"
#include "support/dataset_builder.h"
#include "support/long_dataset.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

static void setup(void) { scratch_setup("long"); }
TestSuite(long_dataset, .init = setup, .fini = scratch_teardown);

static const lc_case_t decoder = {.L = 2,
                                  .H = 4,
                                  .Hkv = 2,
                                  .T = 150,
                                  .d = 16,
                                  .attn = {0.25, 1, 0, 0},
                                  .dtype = AM_DTYPE_F32,
                                  .seed = 21};

static void analyze_ok(const char *data, const char *run, const char *target,
                       const char *extra) {
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "--target", target, "--quiet",
                       extra ? extra : "--threads", extra ? "1" : "2", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "analyze %s: exit %d: %s", data, r.exit_code, r.err);
  cli_result_free(&r);
}

/* Exit 2 and exactly one line on stderr holding every substring. */
static void expect_refusal(const char *data, const char *const *args, const char *sub1,
                           const char *sub2) {
  const char *argv[16] = {"analyze", data, "-o", tmp_path("refused")};
  int k = 4;
  for (int i = 0; args && args[i]; i++)
    argv[k++] = args[i];
  argv[k] = NULL;
  cli_result_t r;
  cr_assert_eq(cli_runv(&r, NULL, argv), 0);
  cr_expect_eq(r.exit_code, 2, "exit %d: %s", r.exit_code, r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "stderr: %s", r.err);
  cr_expect(strstr(r.err, sub1) && (!sub2 || strstr(r.err, sub2)),
            "stderr lacks '%s' / '%s': %s", sub1, sub2 ? sub2 : "", r.err);
  cli_result_free(&r);
}

static void same_run(const lc_case_t *c, int B, int grads, const char *target) {
  const char *lp = tmp_path("long.safetensors"), *mp = tmp_path("matrix.safetensors");
  char lpath[256], mpath[256], lrun[256], mrun[256];
  snprintf(lpath, sizeof lpath, "%s", lp);
  snprintf(mpath, sizeof mpath, "%s", mp);
  snprintf(lrun, sizeof lrun, "%s", tmp_path("run-long"));
  snprintf(mrun, sizeof mrun, "%s", tmp_path("run-matrix"));
  cr_assert_eq(lcd_write(c, B, grads, lpath, mpath), 0);
  analyze_ok(lpath, lrun, target, NULL);
  analyze_ok(mpath, mrun, target, NULL);
  /* the matrix twin is F32 whatever c's dtype: the dataset's dtype is all that may differ
   */
  cr_expect_eq(cmp_runs_except(ctx, lrun, mrun, "dtype"), 0,
               "the long-context run differs (see stderr)");
}

Test(long_dataset, causal_gqa_run_equals_the_matrix_form) {
  same_run(&decoder, 5, 1, "last");
}

Test(long_dataset, f16_window_softcap_run_equals_the_matrix_form) {
  lc_case_t c = decoder;
  c.dtype = AM_DTYPE_F16;
  c.attn = (am_attention_spec_t){0.25, 1, 40, 6.0};
  c.T = 131;
  c.seed = 22;
  same_run(&c, 4, 1, "mean");
}

Test(long_dataset, bidirectional_without_gradients_equals_the_matrix_form) {
  lc_case_t c = decoder;
  c.attn.causal = 0;
  c.Hkv = 4;
  c.seed = 23;
  same_run(&c, 3, 0, "cls");
}

Test(long_dataset, same_bytes_whatever_chunk_and_threads) {
  char data[256], a[256], b[256];
  snprintf(data, sizeof data, "%s", tmp_path("long.safetensors"));
  cr_assert_eq(lcd_write(&decoder, 5, 1, data, NULL), 0);
  snprintf(a, sizeof a, "%s", tmp_path("chunk1"));
  snprintf(b, sizeof b, "%s", tmp_path("chunk4"));
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", a, "--quiet", "--chunk", "1",
                       "--threads", "1", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", b, "--quiet", "--chunk", "4",
                       "--threads", "2", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  static unsigned char x[1 << 20], y[1 << 20];
  char pa[300], pb[300];
  snprintf(pa, sizeof pa, "%s/examples.safetensors", a);
  snprintf(pb, sizeof pb, "%s/examples.safetensors", b);
  size_t nx = read_file(pa, x, sizeof x), ny = read_file(pb, y, sizeof y);
  cr_expect(nx > 0 && nx == ny && !memcmp(x, y, nx),
            "examples.safetensors differs between --chunk 1 --threads 1 and --chunk 4 "
            "--threads 2");
}

Test(long_dataset, options_that_need_the_matrices_are_refused) {
  char data[256];
  snprintf(data, sizeof data, "%s", tmp_path("long.safetensors"));
  cr_assert_eq(lcd_write(&decoder, 2, 1, data, NULL), 0);
  const char *fusion[] = {"--fusion", "max", NULL};
  expect_refusal(data, fusion, "long.safetensors", "fusion max/min needs the attention");
  const char *discard[] = {"--discard", "0.5", NULL};
  expect_refusal(data, discard, "long.safetensors", "--discard");
  const char *rows[] = {"--all-rows", NULL};
  expect_refusal(data, rows, "long.safetensors", "--all-rows");
  const char *flow[] = {"--methods", "rollout,flow", NULL};
  expect_refusal(data, flow, "long.safetensors", "attention flow needs");
}

Test(long_dataset, inspect_reads_and_checks_it) {
  char data[256];
  snprintf(data, sizeof data, "%s", tmp_path("long.safetensors"));
  cr_assert_eq(lcd_write(&decoder, 2, 1, data, NULL), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "inspect", data, NULL), 0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cr_expect(strstr(r.out, "queries.0"), "%s", r.out);
  cr_expect(strstr(r.out, "form: long-context (queries/keys/values/attention_output_grads, "
                          "docs/long-context.md) H=4 Hkv=2 d=16 scale=0.25 causal=yes "
                          "window=none soft-cap=none\n"),
            "%s", r.out);
  cr_expect(strstr(r.out, "check: every value of queries, keys and values"), "%s", r.out);
  cli_result_free(&r);
  /* a sliding window and a soft-cap, no gradients, bidirectional; and the matrix twin */
  lc_case_t c = decoder;
  c.dtype = AM_DTYPE_F16;
  c.attn = (am_attention_spec_t){0.125, 0, 40, 6.5};
  char twin[256];
  snprintf(twin, sizeof twin, "%s", tmp_path("twin.safetensors"));
  cr_assert_eq(lcd_write(&c, 2, 0, data, twin), 0);
  cr_assert_eq(cli_run(&r, NULL, "inspect", data, NULL), 0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cr_expect(strstr(r.out, "form: long-context (queries/keys/values, docs/long-context.md) "
                          "H=4 Hkv=2 d=16 scale=0.125 causal=no window=40 soft-cap=6.5\n"),
            "%s", r.out);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "inspect", twin, NULL), 0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cr_expect(strstr(r.out, "form: matrix (attentions [B,L,H,T,T])\n"), "%s", r.out);
  cr_expect(strstr(r.out, "check: every attention row"), "%s", r.out);
  cli_result_free(&r);
}

/* ---- bad input: a small hand-made dataset, edited one way per case ------------------ */

enum { BL = 2, BH = 2, BT = 4, BD = 2 };
static float qv[BL][BH * BT * BD], kv[BL][BT * BD], vv[BL][BT * BD];
static int64_t bmask[BT] = {0, 1, 1, 1};

typedef struct bad_set {
  am_named_tensor_t t[8];
  char names[8][32];
  int n;
  const char *meta[2];
  int nmeta;
} bad_set_t;

static void add(bad_set_t *s, const char *name, void *data, int heads, am_dtype dt) {
  snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
  size_t es = dt == AM_DTYPE_F64 ? 8 : 4;
  s->t[s->n] = (am_named_tensor_t){
      s->names[s->n], {dt, 4, {1, heads, BT, BD}, data, (size_t)heads * BT * BD * es}};
  s->n++;
}

/* queries.{0,1} [1,2,4,2], keys/values [1,1,4,2], mask (first position padding). */
static void good_set(bad_set_t *s) {
  memset(s, 0, sizeof *s);
  for (int l = 0; l < BL; l++) {
    for (int i = 0; i < BH * BT * BD; i++)
      qv[l][i] = 0.1f * (float)((i * 7 + l) % 5);
    for (int i = 0; i < BT * BD; i++)
      kv[l][i] = vv[l][i] = 0.2f * (float)((i * 3 + l) % 4);
    char name[32];
    snprintf(name, sizeof name, "queries.%d", l);
    add(s, name, qv[l], BH, AM_DTYPE_F32);
    snprintf(name, sizeof name, "keys.%d", l);
    add(s, name, kv[l], 1, AM_DTYPE_F32);
    snprintf(name, sizeof name, "values.%d", l);
    add(s, name, vv[l], 1, AM_DTYPE_F32);
  }
  s->t[s->n++] = (am_named_tensor_t){"attention_mask",
                                     {AM_DTYPE_I64, 2, {1, BT}, bmask, sizeof bmask}};
}

static void expect_bad(bad_set_t *s, const char *sub1, const char *sub2) {
  const char *path = tmp_path("bad.safetensors");
  cr_assert_eq(dsb_write_list(path, s->t, s->n, s->meta, s->nmeta), 0);
  expect_refusal(path, NULL, sub1, sub2);
}

Test(long_dataset, the_good_set_is_read) {
  bad_set_t s;
  good_set(&s);
  const char *path = tmp_path("good.safetensors");
  cr_assert_eq(dsb_write_list(path, s.t, s.n, NULL, 0), 0);
  analyze_ok(path, tmp_path("good-run"), "last", NULL);
}

Test(long_dataset, gradient_methods_without_output_grads_name_them) {
  bad_set_t s;
  good_set(&s);
  const char *path = tmp_path("nograd.safetensors");
  cr_assert_eq(dsb_write_list(path, s.t, s.n, NULL, 0), 0);
  const char *args[] = {"--methods", "rollout,grad_rollout", NULL};
  expect_refusal(path, args, "attention_output_grads", "needed by grad_rollout");
}

Test(long_dataset, a_value_not_finite_names_tensor_and_position) {
  bad_set_t s;
  good_set(&s);
  kv[1][0] = NAN; /* position 0 is padding: never read */
  const char *path = tmp_path("pad.safetensors");
  cr_assert_eq(dsb_write_list(path, s.t, s.n, NULL, 0), 0);
  analyze_ok(path, tmp_path("pad-run"), "last", NULL);
  kv[1][2 * BD + 1] = INFINITY;
  expect_bad(&s, "tensor keys.1: example 0, layer 1, head 0, position 2", "not finite");
}

Test(long_dataset, shapes_dtypes_and_settings_are_checked) {
  bad_set_t s;
  good_set(&s);
  s.t[1].tensor.shape[1] = 2; /* keys.0 with 2 heads: [1,2,2,2] holds as many values */
  s.t[1].tensor.shape[2] = 2;
  expect_bad(&s, "keys.0", "does not match the queries'");
  good_set(&s);
  s.t[4].tensor.dtype = AM_DTYPE_I32; /* keys.1 */
  expect_bad(&s, "keys.1", "not F32, F16 or BF16");
  good_set(&s);
  s.n = 5; /* values.1 and the mask gone */
  expect_bad(&s, "values.N", "1 layers, but queries has 2");
  good_set(&s);
  s.meta[0] = "attnmap.attention";
  s.meta[1] = "{\"scale\": 0.5, \"window\": 4}";
  s.nmeta = 1;
  expect_bad(&s, "attnmap.attention", "key 'window'");
  s.meta[1] = "{\"scale\": -1}";
  expect_bad(&s, "attnmap.attention", "key 'scale'");
  s.meta[1] = "[1, 2]";
  expect_bad(&s, "attnmap.attention", "not a JSON object");
}

Test(long_dataset, heads_must_group_and_one_form_per_dataset) {
  static float k3[3 * BT * BD];
  bad_set_t s;
  good_set(&s);
  /* H = 2 query heads over Hkv = 3 key/value heads */
  s.t[1].tensor = (am_tensor_t){AM_DTYPE_F32, 4, {1, 3, BT, BD}, k3, sizeof k3};
  s.t[2].tensor = s.t[1].tensor;
  s.t[4].tensor = s.t[1].tensor;
  s.t[5].tensor = s.t[1].tensor;
  expect_bad(&s, "keys.0", "do not divide the queries' 2 heads");
  good_set(&s);
  static float att[BH * BT * BT];
  s.t[s.n++] = (am_named_tensor_t){"attentions.0",
                                   {AM_DTYPE_F32, 4, {1, BH, BT, BT}, att, sizeof att}};
  expect_bad(&s, "queries.0", "both the matrix form");
}
