/* test_flow.c — attention flow (host/cpu/flow.h) against networkx, and the `flow` map of a
 * run folder end to end.
 *
 * Golden values: tests/fixtures/flow_reference.h, written by
 * tests/fixtures/make_flow_reference.py with networkx 2.8's Edmonds-Karp
 * (nx.maximum_flow_value) on the graph of samiraabnar/attention_flow's get_adjmat /
 * compute_flows, for seeded inputs of 1 to 32 tokens and 2 to 12 layers, every target
 * kind, the three fusions, discard ratios, F32/F16/BF16 storage and both padding sides.
 * The inputs are regenerated here from the script's LCG, bit for bit. Tolerance: 1e-6
 * relative (the bound; attnmap's capacities are Â rounded to float, ~6e-8
 * relative, and the reference keeps them in double), plus 1e-12 absolute for flows that
 * are exactly 0 in the reference. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnmap.h"
#include "core/half.h"
#include "cpu/flow.h"
#include "fixtures/flow_reference.h"
#include "support/dataset_builder.h"
#include "support/run_cli.h"

#define RTOL 1e-6
#define ATOL 1e-12

/* ---- the script's inputs -------------------------------------------------------- */

static uint32_t lcg_next(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}

/* make_flow_reference.py's attention(): [L,H,n,n] float32. */
static float *ref_attention(const flow_ref_t *r) {
  int n = r->n;
  float *att = malloc((size_t)r->L * r->H * n * n * sizeof *att);
  uint64_t rng = r->seed;
  int64_t w[64];
  for (size_t row = 0; row < (size_t)r->L * r->H * n; row++) {
    int64_t total = 0;
    for (int j = 0; j < n; j++) {
      int64_t x = lcg_next(&rng) % 1000 + 1, k = lcg_next(&rng) % 8;
      w[j] = k == 0 ? 0 : k < 3 ? x * 60 : x;
      total += w[j];
    }
    if (total == 0) {
      w[row % n] = 1;
      total = 1;
    }
    for (int j = 0; j < n; j++)
      att[row * n + j] = (float)((double)w[j] / (double)total);
  }
  return att;
}

/* One example stored as a file would hold it: [H,T,T] per layer in r->dtype, valid tokens
 * at start.., NaN in every padded cell, the data one byte off alignment. */
typedef struct stored {
  unsigned char *buf;
  const void *att[16];
  int32_t idx[64];
  am_example_t ex;
} stored_t;

static void put(unsigned char *dst, am_dtype dt, size_t k, float v) {
  size_t es = am_dtype_size(dt);
  uint16_t h = dt == AM_DTYPE_F16 ? am_f32_to_f16(v) : am_f32_to_bf16(v);
  memcpy(dst + k * es, dt == AM_DTYPE_F32 ? (const void *)&v : (const void *)&h, es);
}

static void store(const flow_ref_t *r, stored_t *s) {
  int L = r->L, H = r->H, T = r->T, n = r->n;
  size_t es = am_dtype_size(r->dtype), block = (size_t)H * T * T;
  float *att = ref_attention(r);
  s->buf = malloc(L * block * es + 1);
  unsigned char *base = s->buf + 1;
  for (size_t k = 0; k < L * block; k++)
    put(base, r->dtype, k, NAN);
  for (int l = 0; l < L; l++) {
    s->att[l] = base + l * block * es;
    for (int h = 0; h < H; h++)
      for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
          put(base, r->dtype,
              l * block + ((size_t)h * T + r->start + i) * T + (size_t)(r->start + j),
              att[(((size_t)l * H + h) * n + i) * n + j]);
  }
  free(att);
  for (int j = 0; j < n; j++)
    s->idx[j] = r->start + j;
  s->ex = (am_example_t){.L = L,
                         .H = H,
                         .T = T,
                         .n = n,
                         .dtype = r->dtype,
                         .att = s->att,
                         .idx = s->idx,
                         .target = r->target};
}

static void expect_close(double got, double ref, const char *what, int c, int j) {
  cr_expect(isfinite(got) && fabs(got - ref) <= ATOL + RTOL * fabs(ref),
            "case %d %s[%d]: got %.12g, networkx %.12g", c, what, j, got, ref);
}

/* ---- golden values ----------------------------------------------------------------- */

Test(flow, normalised_flow_matches_networkx_edmonds_karp) {
  for (int c = 0; c < FLOW_REF_CASES; c++) {
    const flow_ref_t *r = &flow_refs[c];
    stored_t s;
    store(r, &s);
    am_pass_options_t opt = {.fusion = r->fusion, .discard = r->discard};
    float out[64 + 1];
    out[r->n] = -7.0f; /* guard */
    am_cpu_scratch_t scratch = {0};
    cr_assert_eq(am_cpu_flow(&s.ex, &opt, out, &scratch), AM_STATUS_OK, "case %d", c);
    for (int j = 0; j < r->n; j++)
      expect_close(out[j], r->out[j], "flow", c, j);
    cr_expect_eq(out[r->n], -7.0f, "case %d: the guard after the output was written", c);
    am_cpu_scratch_free(&scratch);
    free(s.buf);
  }
}

Test(flow, raw_maximum_flows_match_networkx_edmonds_karp) {
  for (int c = 0; c < FLOW_REF_CASES; c++) {
    const flow_ref_t *r = &flow_refs[c];
    stored_t s;
    store(r, &s);
    am_pass_options_t opt = {.fusion = r->fusion, .discard = r->discard};
    int n = r->n, L = r->L, nsrc = r->target == AM_ROW_MEAN ? n : 1, src[64];
    size_t nn = (size_t)n * n;
    float *cap = malloc(2 * L * nn * sizeof *cap), row[64];
    double *raw = malloc((size_t)nsrc * n * sizeof *raw);
    am_cpu_flow_capacities(&s.ex, &opt, cap, cap + L * nn, row);
    for (int k = 0; k < nsrc; k++)
      src[k] = r->target == AM_ROW_MEAN ? k : r->target;
    cr_assert_eq(am_cpu_flow_values(L, n, cap, cap + L * nn, src, nsrc, raw), AM_STATUS_OK);
    for (int k = 0; k < nsrc * n; k++)
      expect_close(raw[k], r->raw[k], "raw", c, k);
    free(raw);
    free(cap);
    free(s.buf);
  }
}

/* ---- the run folder -------------------------------------------------------------- */

static char work[128];
static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "flow"), 0); }
static void teardown(void) { dsb_rmtree(work); }
TestSuite(flow_run, .init = setup, .fini = teardown, .timeout = 120);

static float f32_at(const am_tensor_t *t, size_t i) {
  float v;
  memcpy(&v, (const unsigned char *)t->data + 4 * i, 4);
  return v;
}

/* The map written for example b of ds equals am_cpu_flow on the same tensors, at the
 * valid positions (target cls), and padded positions hold 0. */
static void expect_rows(const dsb_t *ds, const am_tensor_t *flow) {
  const dsb_spec_t *p = &ds->spec;
  size_t block = (size_t)p->H * p->T * p->T;
  for (int b = 0; b < p->B; b++) {
    const void *att[8];
    int32_t idx[32];
    for (int l = 0; l < p->L; l++)
      att[l] = ds->att + ((size_t)l * p->B + b) * block;
    for (int j = 0; j < ds->len[b]; j++)
      idx[j] = ds->start[b] + j;
    am_example_t ex = {.L = p->L,
                       .H = p->H,
                       .T = p->T,
                       .n = ds->len[b],
                       .dtype = AM_DTYPE_F32,
                       .att = att,
                       .idx = idx,
                       .target = 0};
    am_pass_options_t opt = {0};
    float want[32];
    am_cpu_scratch_t scratch = {0};
    cr_assert_eq(am_cpu_flow(&ex, &opt, want, &scratch), AM_STATUS_OK);
    am_cpu_scratch_free(&scratch);
    double sum = 0.0;
    for (int t = 0; t < p->T; t++) {
      float got = f32_at(flow, (size_t)b * p->T + t);
      int j = t - ds->start[b];
      int valid = j >= 0 && j < ds->len[b];
      cr_expect_eq(got, valid ? want[j] : 0.0f, "example %d position %d: %g", b, t, got);
      sum += got;
    }
    if (ds->len[b] > 0)
      cr_expect(fabs(sum - 1.0) < 1e-5, "example %d: flows sum to %.9g", b, sum);
  }
}

Test(flow_run, cli_writes_the_flow_map_and_its_agreement_pairs) {
  static const int lens[6] = {12, 7, 1, 0, 12, 4};
  dsb_spec_t spec = {.L = 3, .H = 2, .B = 6, .T = 12, .lengths = lens, .seed = 5};
  spec.left_pad = 1;
  char ds_path[512], run[512], file[600];
  dsb_join(ds_path, sizeof ds_path, work, "ds.safetensors");
  dsb_join(run, sizeof run, work, "run");
  dsb_t *ds = dsb_build(&spec);
  cr_assert_not_null(ds);
  cr_assert_eq(dsb_write(ds, ds_path), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds_path, "-o", run, "--methods",
                       "rollout,flow,agreement", "--quiet", NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "exit %d: %s", r.exit_code, r.err);
  cli_result_free(&r);

  am_ctx_t *ctx = NULL;
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  am_file_t *f = NULL;
  cr_assert_eq(
      am_file_open(ctx, dsb_join(file, sizeof file, run, "examples.safetensors"), &f),
      AM_STATUS_OK, "%s", am_last_error(ctx));
  const am_tensor_t *flow = am_file_find(f, "flow");
  cr_assert_not_null(flow, "no flow map");
  cr_assert(flow->dtype == AM_DTYPE_F32 && flow->ndim == 2 && flow->shape[0] == 6 &&
            flow->shape[1] == 12);
  expect_rows(ds, flow);
  const char *pairs = am_file_metadata(f, "attnmap.pairs");
  cr_expect(pairs && strstr(pairs, "\"rollout~flow\""), "pairs: %s", pairs ? pairs : "");
  cr_expect_not_null(am_file_find(f, "agreement.spearman"));
  am_file_close(f);
  am_ctx_destroy(ctx);
  dsb_free(ds);
}

Test(flow_run, cli_flow_with_mean_target_and_discard) {
  static const int lens[3] = {9, 5, 2};
  dsb_spec_t spec = {.L = 2, .H = 3, .B = 3, .T = 9, .lengths = lens, .seed = 8};
  char ds_path[512], run[512], file[600];
  dsb_join(ds_path, sizeof ds_path, work, "ds.safetensors");
  dsb_join(run, sizeof run, work, "run");
  cr_assert_eq(dsb_make(&spec, ds_path), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds_path, "-o", run, "--methods", "flow",
                       "--target", "mean", "--discard", "0.4", "--quiet", NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "exit %d: %s", r.exit_code, r.err);
  cli_result_free(&r);
  am_ctx_t *ctx = NULL;
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  am_file_t *f = NULL;
  cr_assert_eq(
      am_file_open(ctx, dsb_join(file, sizeof file, run, "examples.safetensors"), &f),
      AM_STATUS_OK);
  const am_tensor_t *flow = am_file_find(f, "flow");
  cr_assert_not_null(flow);
  for (int b = 0; b < 3; b++) { /* a mean of distributions is a distribution */
    double sum = 0.0;
    for (int t = 0; t < 9; t++) {
      float v = f32_at(flow, (size_t)b * 9 + t);
      cr_expect(v >= 0.0f && (t < lens[b] || v == 0.0f), "example %d pos %d: %g", b, t, v);
      sum += v;
    }
    cr_expect(fabs(sum - 1.0) < 1e-5, "example %d: sum %.9g", b, sum);
  }
  am_file_close(f);
  am_ctx_destroy(ctx);
}
