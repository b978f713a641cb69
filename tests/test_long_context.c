/* test_long_context.c — the long-context form on the CPU (host/cpu/long_*.c,
 * docs/long-context.md).
 *
 * Where the expected values come from:
 *  - equality with the matrix form: tests/support/long_inputs.c forms A = softmax(mask(
 *    softcap(scale Q K^T))) and G = dO V^T in double from the same stored Q, K, V, dO
 *    (rounded to F32, as a model's eager attention would return them), and the existing CPU
 *    matrix path (am_cpu_example_pass, plain loops), which tests/test_analyses.c checks
 *    against the authors' code, computes every output from them;
 *  - the identities of the issue: sums over the same double A and G written out here;
 *  - determinism: the pass itself, run with other thread counts and batchings.
 * Tolerance: |x - ref| <= RTOL |ref| + ATOL (STYLE.md's F32 rtol); ATOL only absorbs the
 * float noise of values that are 0 or nearly so. */
#include <cblas.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/example_pass.h"
#include "cpu/long_head.h"
#include "cpu/long_kernels.h"
#include "cpu/long_pass.h"
#include "cpu/row_sweep.h"
#include "support/long_inputs.h"

#define RTOL 1e-5
#define ATOL 1e-7
#define WANT_ALL                                                                           \
  (AM_PASS_ATTENTION_LAST | AM_PASS_ROLLOUT | AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_STATS |  \
   AM_PASS_HEAD_IMPORTANCE)

static void init(void) { openblas_set_num_threads(1); }

/* The cases: padding either side and both, GQA / MHA / MQA, causal or not, sliding
 * windows, soft-cap, F16/BF16, T not a multiple of the 64 x 128 tile, one token. */
static const lc_case_t cases[] = {
    {.L = 2,
     .H = 4,
     .Hkv = 2,
     .T = 200,
     .d = 16,
     .pad_left = 7,
     .attn = {0.25, 1, 0, 0},
     .dtype = AM_DTYPE_F32,
     .seed = 1},
    {.L = 2,
     .H = 4,
     .Hkv = 4,
     .T = 150,
     .d = 16,
     .pad_right = 11,
     .attn = {0.25, 0, 0, 0},
     .dtype = AM_DTYPE_F32,
     .seed = 2},
    {.L = 2,
     .H = 3,
     .Hkv = 1,
     .T = 210,
     .d = 8,
     .pad_left = 5,
     .pad_right = 9,
     .attn = {0.35, 1, 37, 0},
     .dtype = AM_DTYPE_F32,
     .seed = 3},
    {.L = 2,
     .H = 2,
     .Hkv = 1,
     .T = 170,
     .d = 16,
     .pad_left = 3,
     .pad_right = 4,
     .hole_every = 9,
     .attn = {0.25, 0, 20, 0},
     .dtype = AM_DTYPE_F32,
     .seed = 4},
    {.L = 2,
     .H = 4,
     .Hkv = 2,
     .T = 140,
     .d = 16,
     .pad_left = 2,
     .attn = {0.25, 1, 0, 5.0},
     .dtype = AM_DTYPE_F32,
     .sharp = 3.0,
     .seed = 5},
    {.L = 2,
     .H = 4,
     .Hkv = 2,
     .T = 131,
     .d = 32,
     .pad_right = 3,
     .attn = {0.18, 1, 0, 0},
     .dtype = AM_DTYPE_F16,
     .seed = 6},
    {.L = 2,
     .H = 2,
     .Hkv = 2,
     .T = 129,
     .d = 16,
     .pad_left = 1,
     .attn = {0.25, 0, 0, 0},
     .dtype = AM_DTYPE_BF16,
     .sharp = 2.0,
     .seed = 7},
    {.L = 2,
     .H = 2,
     .Hkv = 1,
     .T = 5,
     .d = 4,
     .pad_left = 4,
     .attn = {0.5, 1, 0, 0},
     .dtype = AM_DTYPE_F32,
     .seed = 8},
    {.L = 3,
     .H = 2,
     .Hkv = 1,
     .T = 64,
     .d = 16,
     .attn = {0.25, 1, 8, 30.0},
     .dtype = AM_DTYPE_F32,
     .seed = 9},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

typedef struct outs {
  float *last, *rollout, *grad, *stats, *importance;
  am_pass_output_t out;
} outs_t;

static void outs_alloc(outs_t *o, int n, int L, int H) {
  o->last = calloc((size_t)n + 1, sizeof(float));
  o->rollout = calloc((size_t)n + 1, sizeof(float));
  o->grad = calloc((size_t)n + 1, sizeof(float));
  o->stats = calloc((size_t)AM_STAT_COUNT * L * H, sizeof(float));
  o->importance = calloc((size_t)L * H, sizeof(float));
  o->out = (am_pass_output_t){.attention_last = o->last,
                              .rollout = o->rollout,
                              .grad_rollout = o->grad,
                              .head_stats = o->stats,
                              .head_importance = o->importance};
}

static void outs_free(outs_t *o) {
  free(o->last);
  free(o->rollout);
  free(o->grad);
  free(o->stats);
  free(o->importance);
}

static double worst_rel; /* the largest |x - ref| / |ref| seen (|ref| > 1e-3), reported */

static void expect_close(const float *got, const float *ref, int count, const char *what,
                         int c, int target) {
  for (int k = 0; k < count; k++) {
    double err = fabs((double)got[k] - (double)ref[k]), r = fabs((double)ref[k]);
    if (r > 1e-3 && err / r > worst_rel)
      worst_rel = err / r;
    cr_expect(isfinite(got[k]) && err <= ATOL + RTOL * r,
              "case %d target %d %s[%d]: long %.9g, matrix %.9g (seed %llu)", c, target,
              what, k, got[k], ref[k], (unsigned long long)cases[c].seed);
  }
}

static void run_matrix(const lc_data_t *x, int target, const am_pass_options_t *opt,
                       outs_t *o) {
  am_example_t ex;
  lc_data_matrix_example(x, target, &ex);
  am_cpu_scratch_t scratch = {.kernels = am_cpu_kernels_plain()};
  am_fault_t fault;
  am_status st = am_cpu_example_pass(&ex, opt, &o->out, &scratch, &fault);
  am_cpu_scratch_free(&scratch);
  cr_assert_eq(st, AM_STATUS_OK, "matrix path: status %d fault %d", st, fault.kind);
}

/* The per-tile loops of the long pass (long_kernels.h): NULL, this CPU's fastest (the AVX2
 * set here), or the plain set. */
static const am_cpu_kernels_t *use_kernels;

static void run_long(const lc_data_t *x, int target, const am_pass_options_t *opt,
                     int threads, outs_t *o) {
  am_lc_example_t ex;
  lc_data_example(x, target, &ex);
  am_fault_t fault = {0};
  int fe = -1;
  am_status st =
      am_cpu_lc_pass_with(use_kernels, &ex, 1, opt, &o->out, threads, &fault, &fe);
  cr_assert_eq(st, AM_STATUS_OK, "long path: status %d fault %d", st, fault.kind);
}

static void compare_case(int c, am_normalize normalize, const am_grid_t *grid) {
  lc_data_t x;
  cr_assert_eq(lc_data_make(&x, &cases[c]), 0);
  int n = x.n, L = cases[c].L, H = cases[c].H;
  am_pass_options_t opt = {
      .want = WANT_ALL, .fusion = AM_FUSION_MEAN, .normalize = normalize};
  if (grid)
    opt.grid = *grid;
  const int targets[4] = {0, n - 1, n > 3 ? 3 : 0, AM_ROW_MEAN};
  for (int t = 0; t < 4; t++) {
    outs_t m, g;
    outs_alloc(&m, n, L, H);
    outs_alloc(&g, n, L, H);
    run_matrix(&x, targets[t], &opt, &m);
    run_long(&x, targets[t], &opt, 2, &g);
    expect_close(g.last, m.last, n, "attention_last", c, targets[t]);
    expect_close(g.rollout, m.rollout, n, "rollout", c, targets[t]);
    expect_close(g.grad, m.grad, n, "grad_rollout", c, targets[t]);
    expect_close(g.stats, m.stats, AM_STAT_COUNT * L * H, "head_stats", c, targets[t]);
    expect_close(g.importance, m.importance, L * H, "head_importance", c, targets[t]);
    outs_free(&m);
    outs_free(&g);
  }
  lc_data_free(&x);
}

TestSuite(long_context, .init = init);

Test(long_context, every_output_equals_the_matrix_form) {
  for (int c = 0; c < NCASES; c++)
    compare_case(c, AM_NORMALIZE_NONE, NULL);
  fprintf(stderr, "long_context: largest relative difference to the matrix form %.3g\n",
          worst_rel);
}

Test(long_context, plain_loops_equal_the_matrix_form) {
  use_kernels = am_cpu_kernels_plain();
  for (int c = 0; c < NCASES; c++)
    compare_case(c, AM_NORMALIZE_NONE, NULL);
}

/* The AVX2 set's exp against expf over its range, at every 997th float of [-87, 88.37]
 * and at the edges; -inf (a masked key) and x < -87 give 0. */
Test(long_context, vector_exp_within_two_ulp) {
  if (!am_cpu_simd_supported()) {
    cr_skip_test("no AVX2 + FMA + F16C on this CPU: the plain set alone runs");
  }
  enum { N = 4096 };
  static float x[N], y[N];
  int n = 0, worst = 0;
  for (uint32_t bits = 0; n < N - 6; bits += 997u * 1024u) {
    float v;
    memcpy(&v, &bits, 4);
    if (isfinite(v) && fabsf(v) <= 87.0f)
      x[n++] = v, x[n++] = -v;
    if (bits > 0x7f000000u)
      break;
  }
  const float edge[] = {-87.0f, 88.37f, 0.0f, -INFINITY, -87.5f, -1e30f};
  for (int k = 0; k < 6; k++)
    x[n++] = edge[k];
  am_lc_exp_avx2(x, y, n);
  for (int k = 0; k < n; k++) {
    if (x[k] < -87.0f) {
      cr_expect_eq(y[k], 0.0f, "exp(%g) = %g, want 0", x[k], y[k]);
      continue;
    }
    float want = expf(x[k]);
    int32_t a, b;
    memcpy(&a, &y[k], 4);
    memcpy(&b, &want, 4);
    int ulp = abs(a - b);
    worst = ulp > worst ? ulp : worst;
    cr_expect(ulp <= 2, "exp(%.9g) = %.9g, expf %.9g (%d ulp)", x[k], y[k], want, ulp);
  }
  fprintf(stderr, "long_context: vector exp at %d points, worst %d ulp from expf\n", n,
          worst);
}

Test(long_context, normalised_rows_equal_the_matrix_form) {
  compare_case(0, AM_NORMALIZE_MINMAX, NULL);
  compare_case(2, AM_NORMALIZE_MAX, NULL);
  compare_case(3, AM_NORMALIZE_SUM, NULL);
}

Test(long_context, patch_grid_distance_equals_the_matrix_form) {
  /* a ViT-like example: one prefix token and 4 x 5 patches, bidirectional */
  static const lc_case_t vit = {.L = 2,
                                .H = 2,
                                .Hkv = 2,
                                .T = 21,
                                .d = 8,
                                .attn = {0.35, 0, 0, 0},
                                .dtype = AM_DTYPE_F32,
                                .seed = 11};
  lc_data_t x;
  cr_assert_eq(lc_data_make(&x, &vit), 0);
  am_pass_options_t opt = {.want = WANT_ALL, .grid = {4, 5, 1}};
  outs_t m, g;
  outs_alloc(&m, x.n, 2, 2);
  outs_alloc(&g, x.n, 2, 2);
  run_matrix(&x, 0, &opt, &m);
  run_long(&x, 0, &opt, 1, &g);
  expect_close(g.stats, m.stats, AM_STAT_COUNT * 4, "head_stats", 0, 0);
  outs_free(&m);
  outs_free(&g);
  lc_data_free(&x);
}

/* ---- the identities, on one head --------------------------------------------------- */

/* rows [n,d] of head h of a [L,heads,T,d] F32 tensor at layer l, valid positions only */
static float *gather(const lc_data_t *x, const void *t, int heads, int l, int h) {
  int d = x->c.d, T = x->c.T;
  float *dst = malloc((size_t)x->n * d * sizeof *dst);
  for (int i = 0; i < x->n; i++)
    memcpy(dst + (size_t)i * d,
           (const float *)t + (((size_t)l * heads + h) * T + x->idx[i]) * d,
           (size_t)d * sizeof *dst);
  return dst;
}

static void expect_rel(double got, double ref, double tol, const char *what, int k) {
  cr_expect(fabs(got - ref) <= tol * fabs(ref) + 1e-9,
            "%s[%d]: tiled %.12g, reference %.12g", what, k, got, ref);
}

static void check_identities(int c, int l, int h) {
  lc_data_t x;
  cr_assert_eq(lc_data_make(&x, &cases[c]), 0);
  cr_assert_eq(x.c.dtype, AM_DTYPE_F32);
  int n = x.n, d = x.c.d, kv = h / (x.c.H / x.c.Hkv);
  float *q = gather(&x, x.q, x.c.H, l, h), *k = gather(&x, x.k, x.c.Hkv, l, kv);
  float *v = gather(&x, x.v, x.c.Hkv, l, kv), *dout = gather(&x, x.dout, x.c.H, l, h);
  double *w = malloc(2 * (size_t)n * sizeof *w), *u = calloc(4 * (size_t)n, sizeof *u);
  double *s = malloc((size_t)n * n * sizeof *s), *lse = u + 2 * (size_t)n, *dot = lse + n;
  for (int i = 0; i < n; i++) { /* row weights of mixed size, some 0 */
    w[i] = (i % 5 == 0) ? 0.0 : 1.0 / (1 + i % 7);
    w[n + i] = 0.5 + (i % 3);
  }
  float *work = malloc(am_lc_head_work_floats(n, d) * sizeof *work);
  am_grid_geom_t flat = {0};
  am_lc_head_job_t job = {.q = q,
                          .k = k,
                          .v = v,
                          .dout = dout,
                          .n = n,
                          .d = d,
                          .pos = x.idx,
                          .attn = &x.c.attn,
                          .w_att = w,
                          .w_grad = w + n,
                          .u_att = u,
                          .u_grad = u + n,
                          .stats = 1,
                          .geo = &flat,
                          .importance = 1,
                          .row_lse = lse,
                          .row_dot = dot,
                          .work = work};
  am_lc_head_run(&job);
  cr_assert_eq(job.bad_row, -1);
  lc_data_scores(&x, l, h, s);
  double ent = 0.0, imp = 0.0;
  double *ua = calloc(2 * (size_t)n, sizeof *ua), *ug = ua + n;
  for (int i = 0; i < n; i++) {
    double m = -INFINITY, z = 0.0, rowent = 0.0, ag = 0.0;
    for (int j = 0; j < n; j++)
      m = fmax(m, s[(size_t)i * n + j]);
    for (int j = 0; j < n; j++)
      z += exp(s[(size_t)i * n + j] - m);
    expect_rel(lse[i], m + log(z), 1e-6, "lse = log sum_j exp s_ij", i);
    for (int j = 0; j < n; j++) {
      double a = exp(s[(size_t)i * n + j] - m) / z, g = 0.0;
      for (int t = 0; t < d; t++)
        g += (double)dout[(size_t)i * d + t] * v[(size_t)j * d + t];
      rowent -= a > 0 ? a * log(a) : 0.0;
      ag += a * g;
      ua[j] += w[i] * a;
      ug[j] += w[n + i] * fmax(0.0, g * a);
    }
    /* sum_j a_ij g_ij = dO_i . O_i, the row's head-importance term */
    cr_expect(fabs(dot[i] - ag) <= 1e-5 * fabs(ag) + 1e-7,
              "row %d: dO.O %.9g, sum a g %.9g", i, dot[i], ag);
    ent += rowent;
    imp += fabs(ag);
  }
  /* entropy: lse - sum_j a s (tiled) = -sum_j a ln a (reference), summed over the rows */
  expect_rel(job.acc[AM_STAT_ENTROPY], ent, 1e-5, "entropy", 0);
  expect_rel(job.importance_sum, imp, 1e-5, "importance", 0);
  for (int j = 0; j < n; j++) {
    /* rollout's column product = FlashAttention's dV with the weights in place of dO */
    expect_rel(u[j], ua[j], 1e-5, "sum_i w_i a_ij", j);
    expect_rel(u[n + j], ug[j], 1e-5, "sum_i w_i max(0, g_ij a_ij)", j);
  }
  free(ua);
  free(work);
  free(s);
  free(u);
  free(w);
  free(q);
  free(k);
  free(v);
  free(dout);
  lc_data_free(&x);
}

Test(long_context, identities_hold_tile_by_tile) {
  check_identities(0, 1, 3); /* causal, GQA */
  check_identities(3, 0, 1); /* bidirectional sliding window over holes */
  check_identities(4, 1, 2); /* soft-cap, sharp scores */
  check_identities(1, 0, 0); /* bidirectional, right padding */
}

/* ---- determinism ------------------------------------------------------------------- */

static int same_bits(const outs_t *a, const outs_t *b, int n, int L, int H) {
  return !memcmp(a->last, b->last, (size_t)n * 4) &&
         !memcmp(a->rollout, b->rollout, (size_t)n * 4) &&
         !memcmp(a->grad, b->grad, (size_t)n * 4) &&
         !memcmp(a->stats, b->stats, (size_t)AM_STAT_COUNT * L * H * 4) &&
         !memcmp(a->importance, b->importance, (size_t)L * H * 4);
}

Test(long_context, same_bits_whatever_threads_and_batching) {
  enum { NB = 3 };
  const int which[NB] = {0, 2, 5};
  lc_data_t x[NB];
  am_lc_example_t ex[NB];
  outs_t alone[NB], batch[NB];
  am_pass_options_t opt = {.want = WANT_ALL};
  for (int b = 0; b < NB; b++) {
    cr_assert_eq(lc_data_make(&x[b], &cases[which[b]]), 0);
    lc_data_example(&x[b], AM_ROW_MEAN, &ex[b]);
    outs_alloc(&alone[b], x[b].n, ex[b].L, ex[b].H);
    outs_alloc(&batch[b], x[b].n, ex[b].L, ex[b].H);
    run_long(&x[b], AM_ROW_MEAN, &opt, 1, &alone[b]);
  }
  const int threads[] = {2, 3, 5};
  for (int t = 0; t < 3; t++) {
    am_pass_output_t out[NB];
    for (int b = 0; b < NB; b++) {
      memset(batch[b].rollout, 0, (size_t)x[b].n * 4);
      out[b] = batch[b].out;
    }
    am_fault_t f;
    int fe;
    cr_assert_eq(am_cpu_lc_pass(ex, NB, &opt, out, threads[t], &f, &fe), AM_STATUS_OK);
    for (int b = 0; b < NB; b++)
      cr_expect(same_bits(&alone[b], &batch[b], x[b].n, ex[b].L, ex[b].H),
                "example %d: batch of %d on %d threads differs from alone on 1", b, NB,
                threads[t]);
  }
  for (int b = 0; b < NB; b++) {
    outs_free(&alone[b]);
    outs_free(&batch[b]);
    lc_data_free(&x[b]);
  }
}

/* ---- bad input and refusals -------------------------------------------------------- */

Test(long_context, a_value_not_finite_is_found_where_it_is) {
  lc_data_t x;
  cr_assert_eq(lc_data_make(&x, &cases[0]), 0); /* H 4, Hkv 2, T 200, pad_left 7 */
  int T = x.c.T, d = x.c.d;
  float *k = x.k, *dout = x.dout;
  /* padding is never read */
  k[(((size_t)1 * 2 + 1) * T + 3) * d + 2] = NAN;
  outs_t o;
  outs_alloc(&o, x.n, 2, 4);
  am_pass_options_t opt = {.want = WANT_ALL};
  run_long(&x, 0, &opt, 2, &o);
  /* a key of layer 1, KV head 1, valid token 20; and a dO of layer 0 (lower, so later) */
  k[(((size_t)1 * 2 + 1) * T + 27) * d + 5] = INFINITY;
  dout[(((size_t)0 * 4 + 0) * T + 9) * d] = NAN;
  am_lc_example_t ex;
  lc_data_example(&x, 0, &ex);
  am_fault_t f = {0};
  int fe = -1;
  cr_assert_eq(am_cpu_lc_pass(&ex, 1, &opt, &o.out, 2, &f, &fe), AM_STATUS_BAD_INPUT);
  cr_expect_eq(fe, 0);
  cr_expect_eq((int)f.kind, AM_FAULT_K_NOT_FINITE);
  cr_expect_eq(f.layer, 1);
  cr_expect_eq(f.head, 1);
  cr_expect_eq(f.row, 20);
  outs_free(&o);
  lc_data_free(&x);
}

Test(long_context, what_needs_the_matrices_is_refused_with_a_reason) {
  am_pass_options_t opt = {.want = AM_PASS_ROLLOUT, .fusion = AM_FUSION_MAX};
  cr_expect(am_lc_refusal(&opt) && strstr(am_lc_refusal(&opt), "fusion"));
  opt.fusion = AM_FUSION_MEAN;
  opt.discard = 0.1;
  cr_expect(am_lc_refusal(&opt) && strstr(am_lc_refusal(&opt), "--discard"));
  opt.discard = 0.0;
  cr_expect_null(am_lc_refusal(&opt));
  opt.want |= AM_PASS_ROLLOUT_ROWS;
  cr_expect(am_lc_refusal(&opt) && strstr(am_lc_refusal(&opt), "--all-rows"));
  lc_data_t x;
  cr_assert_eq(lc_data_make(&x, &cases[7]), 0);
  am_lc_example_t ex;
  lc_data_example(&x, 0, &ex);
  outs_t o;
  outs_alloc(&o, x.n, 2, 2);
  am_fault_t f;
  int fe;
  cr_expect_eq(am_cpu_lc_pass(&ex, 1, &opt, &o.out, 1, &f, &fe),
               AM_STATUS_INVALID_ARGUMENT);
  opt = (am_pass_options_t){.want = WANT_ALL};
  ex.Hkv = 3; /* H = 2 is not a multiple of 3 */
  cr_expect_eq(am_cpu_lc_pass(&ex, 1, &opt, &o.out, 1, &f, &fe),
               AM_STATUS_INVALID_ARGUMENT);
  ex.Hkv = 1;
  ex.dout = NULL; /* gradient outputs without dO */
  cr_expect_eq(am_cpu_lc_pass(&ex, 1, &opt, &o.out, 1, &f, &fe),
               AM_STATUS_INVALID_ARGUMENT);
  opt.want = AM_PASS_ROLLOUT | AM_PASS_HEAD_STATS | AM_PASS_ATTENTION_LAST;
  cr_expect_eq(am_cpu_lc_pass(&ex, 1, &opt, &o.out, 1, &f, &fe), AM_STATUS_OK);
  outs_free(&o);
  lc_data_free(&x);
}
