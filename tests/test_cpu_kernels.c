/* test_cpu_kernels.c — the tuned CPU kernels (host/cpu/row_sweep.h: the AVX2 + FMA + F16C
 * row and head sweeps) against plain double-precision references: the vectorised ln
 * over sampled floats and every F16 weight, every sum of the row sweep for lengths around
 * the 8-key steps and 64-key blocks, F32/F16/BF16 at odd addresses, the head sweep
 * against the row sweep, and the whole tuned pass against the plain loops (outputs
 * within tolerance, faults at the same place, the same bits on every run, overflowing
 * gradients). Skips (visibly) on a CPU without AVX2, FMA and F16C. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "cpu/example_pass.h"
#include "cpu/row_sweep.h"

static void need_simd(void) {
  if (!am_cpu_simd_supported())
    cr_skip_test("no AVX2 + FMA + F16C on this CPU: the plain loops are the only path");
}

static uint64_t rng = 1;
static double uniform01(void) { /* splitmix64 */
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static void put(unsigned char *dst, am_dtype dt, size_t i, float v) {
  if (dt == AM_DTYPE_F32) {
    memcpy(dst + 4 * i, &v, 4);
  } else {
    uint16_t h = dt == AM_DTYPE_F16 ? am_f32_to_f16(v) : am_f32_to_bf16(v);
    memcpy(dst + 2 * i, &h, 2);
  }
}

/* ---- ln ------------------------------------------------------------------------------ */

Test(kernels, ln_within_its_stated_error) {
  need_simd();
  enum { M = 4096 };
  static float x[M], y[M];
  double worst_abs = 0, worst_rel = 0;
  /* every 257th float in [2^-126, 2): 4 million values, all binades and mantissas */
  for (uint32_t b = 0x00800000u; b < 0x40000000u;) {
    int m = 0;
    for (; m < M && b < 0x40000000u; m++, b += 257)
      memcpy(&x[m], &b, 4);
    am_fast_log_avx2(x, y, m);
    for (int k = 0; k < m; k++) {
      double t = log((double)x[k]), e = fabs(y[k] - t);
      if (fabs(t) <= 1.0)
        worst_abs = e > worst_abs ? e : worst_abs;
      else
        worst_rel = e / fabs(t) > worst_rel ? e / fabs(t) : worst_rel;
    }
  }
  cr_log_info("ln: worst absolute error %.3g (|ln x| <= 1), relative %.3g", worst_abs,
              worst_rel);
  cr_expect(worst_abs <= 9e-8, "absolute error %.3g", worst_abs);
  cr_expect(worst_rel <= 1.3e-7, "relative error %.3g", worst_rel);
}

Test(kernels, x_ln_x_of_every_f16_weight) {
  need_simd();
  double worst = 0;
  for (uint16_t h = 1; h < 0x7C00u; h++) { /* every positive finite F16 value */
    uint16_t row[8];
    for (int k = 0; k < 8; k++)
      row[k] = h;
    double x = am_f16_to_f32(h), ref = 8.0 * x * log(x);
    double got = am_row_entropy_avx2(row, AM_DTYPE_F16, 8);
    double err = fabs(got - ref) / (fabs(ref) + 1e-30);
    worst = err > worst ? err : worst;
  }
  cr_log_info("8 x ln x over every F16 value: worst relative error %.3g", worst);
  cr_expect(worst <= 3e-7, "relative error %.3g", worst);
}

/* ---- the row sweep ------------------------------------------------------------------- */

typedef struct rowcase {
  int n, i;
  am_dtype dt;
  size_t offset; /* bytes: odd addresses */
  float a[1100], g[1100], fuse[1100], u[1100];
  unsigned char sa[4 * 1100 + 8], sg[4 * 1100 + 8];
} rowcase_t;

static void make_row(rowcase_t *c, int n, am_dtype dt, size_t offset) {
  double e[1100], s = 0;
  c->n = n, c->dt = dt, c->offset = offset, c->i = (int)(uniform01() * n);
  for (int j = 0; j < n; j++)
    s += e[j] = exp(6.0 * uniform01()) * (uniform01() < 0.1 ? 0.0 : 1.0);
  for (int j = 0; j < n; j++) {
    put(c->sa + offset, dt, (size_t)j, (float)(s > 0 ? e[j] / s : 1.0 / n));
    put(c->sg + offset, dt, (size_t)j, (float)(uniform01() - 0.5));
    c->a[j] = am_load_float(c->sa + offset, dt, j);
    c->g[j] = am_load_float(c->sg + offset, dt, j);
    c->fuse[j] = (float)uniform01();
    c->u[j] = (float)uniform01();
  }
}

static void expect_row(rowcase_t *c, int with_g) {
  int n = c->n;
  float arow[1100], fuse[1100], u[1100];
  memcpy(fuse, c->fuse, sizeof fuse);
  memcpy(u, c->u, sizeof u);
  am_row_job_t job = {.a = c->sa + c->offset,
                      .g = with_g ? c->sg + c->offset : NULL,
                      .dtype = c->dt,
                      .n = n,
                      .i = c->i,
                      .arow = arow,
                      .fuse = fuse,
                      .u = with_g ? u : NULL,
                      .vi = 0.75f};
  am_row_sums_t s;
  am_row_sweep_avx2(&job, &s);
  double sum = 0, ent = 0, absent = 0, dist = 0, imp = 0, absimp = 0;
  float mn = FLT_MAX, mx = 0;
  for (int j = 0; j < n; j++) {
    double x = c->a[j];
    sum += x;
    ent += x > 0 ? x * log(x) : 0.0;
    absent += x > 0 ? fabs(x * log(x)) : 0.0;
    dist += x * abs(c->i - j);
    imp += x * c->g[j];
    absimp += fabs(x * c->g[j]);
    mn = c->a[j] < mn ? c->a[j] : mn;
    mx = c->a[j] > mx ? c->a[j] : mx;
    cr_assert(arow[j] == c->a[j], "n %d dtype %d: arow[%d]", n, c->dt, j);
    cr_assert(fuse[j] == c->fuse[j] + c->a[j], "n %d: fuse[%d]", n, j);
    float want_u = with_g ? fmaf(0.75f, fmaxf(c->a[j] * c->g[j], 0.0f), c->u[j]) : c->u[j];
    cr_assert(u[j] == want_u, "n %d dtype %d: u[%d] %.9g, want %.9g", n, c->dt, j, u[j],
              want_u);
  }
  cr_expect(fabs(s.sum - sum) <= 5e-7 * sum, "n %d dtype %d: sum %.9g vs %.9g", n, c->dt,
            s.sum, sum);
  cr_expect(fabs(s.ent - ent) <= 3e-7 * absent + 1e-12, "n %d: ent %.9g vs %.9g", n, s.ent,
            ent);
  cr_expect(fabs(s.dist - dist) <= 1e-6 * dist + 1e-12, "n %d: dist %.9g vs %.9g", n,
            s.dist, dist);
  if (with_g)
    cr_expect(fabs(s.imp - imp) <= 5e-7 * absimp + 1e-15, "n %d: imp %.9g vs %.9g", n,
              s.imp, imp);
  cr_expect(s.amin == mn && s.amax == mx, "n %d: min %g/%g max %g/%g", n, s.amin, mn,
            s.amax, mx);
}

Test(kernels, row_sweep_matches_double_reference) {
  need_simd();
  static const int lengths[] = {1,  2,  3,  7,   8,   9,   15,  16,  17,  31,   56,
                                63, 64, 65, 100, 127, 128, 129, 200, 513, 1000, 1100};
  static const am_dtype dts[3] = {AM_DTYPE_F32, AM_DTYPE_F16, AM_DTYPE_BF16};
  static rowcase_t c;
  rng = 7;
  for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++)
    for (int d = 0; d < 3; d++)
      for (int with_g = 0; with_g < 2; with_g++) {
        make_row(&c, lengths[k], dts[d], (size_t)(k % 4) * 2 + 1);
        expect_row(&c, with_g);
      }
}

Test(kernels, negative_and_non_finite_rows_are_flagged) {
  need_simd();
  static rowcase_t c;
  rng = 9;
  make_row(&c, 70, AM_DTYPE_F32, 0);
  float arow[80], neg = -1e-30f, inf = INFINITY;
  am_row_sums_t s;
  for (int where = 0; where < 70; where += 23) {
    rowcase_t bad = c;
    memcpy(bad.sa + 4 * where, &neg, 4);
    am_row_job_t job = {.a = bad.sa, .dtype = AM_DTYPE_F32, .n = 70, .arow = arow};
    am_row_sweep_avx2(&job, &s);
    cr_expect(s.amin < 0, "a negative weight at %d is seen", where);
    memcpy(bad.sa + 4 * where, &inf, 4);
    am_row_sweep_avx2(&job, &s);
    cr_expect(!isfinite(s.sum), "an infinite weight at %d is seen", where);
    memcpy(bad.sa + 4 * where, c.sa + 4 * where, 4);
    memcpy(bad.sg + 4 * where, &inf, 4);
    job.g = bad.sg;
    am_row_sweep_avx2(&job, &s);
    cr_expect(!isfinite(s.imp), "an infinite gradient at %d is seen", where);
  }
}

/* ---- the head sweep against the row sweep ------------------------------------------- */

Test(kernels, head_sweep_adds_what_the_row_sweep_finds) {
  need_simd();
  enum { N = 37, T = 41 };
  static unsigned char att[4 * T * T + 8], grad[4 * T * T + 8];
  rng = 11;
  for (int i = 0; i < N; i++) { /* rows of N valid keys at stride T */
    double e[N], s = 0;
    for (int j = 0; j < N; j++)
      s += e[j] = exp(4.0 * uniform01());
    for (int j = 0; j < N; j++) {
      put(att + 3, AM_DTYPE_F16, (size_t)i * T + j, (float)(e[j] / s));
      put(grad + 3, AM_DTYPE_F16, (size_t)i * T + j, (float)(uniform01() - 0.5));
    }
  }
  double v[N], ug[N] = {0}, ug2[N] = {0};
  static float fuse[N * N], fuse2[N * N], uf[N], uf2[N], arow[N + 8], dist[2 * N];
  for (int i = 0; i < N; i++)
    v[i] = uniform01();
  for (int k = 0; k < 2 * N - 1; k++)
    dist[k] = (float)abs(k - (N - 1));
  am_head_job_t hj = {.a = att + 3,
                      .g = grad + 3,
                      .dtype = AM_DTYPE_F16,
                      .stride = T,
                      .n = N,
                      .stats = 1,
                      .arow = arow,
                      .fuse = fuse,
                      .v = v,
                      .uf = uf,
                      .ug = ug,
                      .dist_mid = dist + N - 1,
                      .tol = 1e-3};
  cr_assert_eq(am_head_sweep_avx2(&hj), N, "no row stops the sweep");
  double acc[AM_STAT_COUNT] = {0}, importance = 0;
  for (int i = 0; i < N; i++) {
    am_row_job_t job = {.a = att + 3 + 2 * (size_t)i * T,
                        .g = grad + 3 + 2 * (size_t)i * T,
                        .dtype = AM_DTYPE_F16,
                        .n = N,
                        .i = i,
                        .arow = arow,
                        .fuse = fuse2 + (size_t)i * N,
                        .u = uf2,
                        .vi = (float)v[i]};
    am_row_sums_t s;
    am_row_sweep_avx2(&job, &s);
    acc[AM_STAT_ENTROPY] -= s.ent;
    acc[AM_STAT_CONFIDENCE] += s.amax;
    acc[AM_STAT_DISTANCE] += s.dist;
    acc[AM_STAT_TO_SELF] += arow[i];
    importance += fabs(s.imp);
    if ((i & 15) == 15 || i == N - 1)
      for (int j = 0; j < N; j++)
        ug2[j] += uf2[j], uf2[j] = 0.0f;
  }
  static const am_stat same[4] = {AM_STAT_ENTROPY, AM_STAT_CONFIDENCE, AM_STAT_DISTANCE,
                                  AM_STAT_TO_SELF};
  for (int k = 0; k < 4; k++)
    cr_expect(hj.acc[same[k]] == acc[same[k]], "statistic %d", same[k]);
  cr_expect(hj.importance == importance);
  cr_expect(memcmp(fuse, fuse2, sizeof fuse) == 0, "fused rows");
  cr_expect(memcmp(ug, ug2, sizeof ug) == 0, "gradient rollout sums");
}

/* ---- the layer sweep against the head sweep ----------------------------------------- */

/* Three heads of 37 valid keys in rows of 41 (blocks of 16 rows and a short last block):
 * each head's statistics and importance are the head sweep's exactly (the same additions
 * in the same order), the fused rows too (heads added in head order); the gradient-rollout
 * sums differ only by the order of float additions (the heads' max(0, a g) summed first).
 */
Test(kernels, layer_sweep_adds_what_the_head_sweep_finds) {
  need_simd();
  enum { N = 37, T = 41, H = 3 };
  static unsigned char att[H * T * T * 2 + 8], grad[H * T * T * 2 + 8];
  rng = 12;
  for (int h = 0; h < H; h++)
    for (int i = 0; i < N; i++) {
      double e[N], s = 0;
      for (int j = 0; j < N; j++)
        s += e[j] = exp(4.0 * uniform01());
      for (int j = 0; j < N; j++) {
        size_t at = ((size_t)h * T + (size_t)i) * T + (size_t)j;
        put(att + 3, AM_DTYPE_F16, at, (float)(e[j] / s));
        put(grad + 3, AM_DTYPE_F16, at, (float)(uniform01() - 0.5));
      }
    }
  double v[N], ug[N] = {0}, ug2[N] = {0}, hacc[H * (AM_STAT_COUNT + 1)] = {0};
  static float fuse[N * N], fuse2[N * N], uf[N], uf2[N], arow[N + 8], trow[16 * N];
  static float dist[2 * N];
  for (int i = 0; i < N; i++)
    v[i] = uniform01();
  for (int k = 0; k < 2 * N - 1; k++)
    dist[k] = (float)abs(k - (N - 1));
  am_layer_job_t lj = {.a = att + 3,
                       .g = grad + 3,
                       .dtype = AM_DTYPE_F16,
                       .stride = T,
                       .head_stride = (int64_t)T * T,
                       .n = N,
                       .H = H,
                       .stats = 1,
                       .arow = arow,
                       .trow = trow,
                       .fuse = fuse,
                       .v = v,
                       .uf = uf,
                       .ug = ug,
                       .dist_mid = dist + N - 1,
                       .tol = 1e-3,
                       .acc = hacc,
                       .importance = hacc + H * AM_STAT_COUNT};
  cr_assert_eq(am_layer_sweep_avx2(&lj), 1, "no row stops the sweep");
  for (int h = 0; h < H; h++) {
    am_head_job_t hj = {.a = att + 3 + 2 * (size_t)h * T * T,
                        .g = grad + 3 + 2 * (size_t)h * T * T,
                        .dtype = AM_DTYPE_F16,
                        .stride = T,
                        .n = N,
                        .stats = 1,
                        .arow = arow,
                        .fuse = fuse2,
                        .v = v,
                        .uf = uf2,
                        .ug = ug2,
                        .dist_mid = dist + N - 1,
                        .tol = 1e-3};
    cr_assert_eq(am_head_sweep_avx2(&hj), N);
    for (int k = 0; k < AM_STAT_COUNT; k++)
      cr_expect(hacc[h * AM_STAT_COUNT + k] == hj.acc[k], "head %d statistic %d", h, k);
    cr_expect(hacc[H * AM_STAT_COUNT + h] == hj.importance, "head %d importance", h);
  }
  cr_expect(memcmp(fuse, fuse2, sizeof fuse) == 0, "fused rows");
  for (int j = 0; j < N; j++)
    cr_expect(fabs(ug[j] - ug2[j]) <= 1e-6 * fabs(ug2[j]) + 1e-9, "u[%d]: %.9g vs %.9g", j,
              ug[j], ug2[j]);
}

/* ---- the whole pass: tuned against the plain loops ----------------------------------- */

typedef struct passcase {
  int L, H, T, n, target;
  am_dtype dtype;
  int32_t idx[80];
  unsigned char *att, *grad; /* [L,H,T,T] */
} passcase_t;

typedef struct passout {
  am_status st;
  am_fault_t fault;
  float last[80], roll[80], grad[80], rrows[80 * 80], grows[80 * 80];
  float stats[AM_STAT_COUNT * 64], imp[64];
} passout_t;

static void make_pass(passcase_t *c, int L, int H, int T, int n, int left, am_dtype dt) {
  size_t es = am_dtype_size(dt), count = (size_t)L * H * T * T;
  *c = (passcase_t){.L = L, .H = H, .T = T, .n = n, .dtype = dt};
  c->att = calloc(count * es + 1, 1);
  c->grad = calloc(count * es + 1, 1);
  for (int j = 0; j < n; j++)
    c->idx[j] = left + j;
  for (int b = 0; b < L * H; b++)
    for (int i = 0; i < n; i++) {
      double e[80], s = 0, sharp = b % 3 == 0 ? 12.0 : 3.0;
      for (int j = 0; j < n; j++)
        s += e[j] = exp(sharp * uniform01());
      for (int j = 0; j < n; j++) {
        size_t at = ((size_t)b * T + c->idx[i]) * T + c->idx[j];
        put(c->att + 1, dt, at, (float)(e[j] / s));
        put(c->grad + 1, dt, at, (float)(uniform01() - 0.5));
      }
    }
}

static void run_pass(const passcase_t *c, const am_pass_options_t *opt, int simd,
                     passout_t *o) {
  const void *att[8], *grad[8];
  size_t layer = (size_t)c->H * c->T * c->T * am_dtype_size(c->dtype);
  for (int l = 0; l < c->L; l++) {
    att[l] = c->att + 1 + l * layer;
    grad[l] = c->grad + 1 + l * layer;
  }
  am_example_t ex = {.L = c->L,
                     .H = c->H,
                     .T = c->T,
                     .n = c->n,
                     .dtype = c->dtype,
                     .att = att,
                     .grad = grad,
                     .idx = c->idx,
                     .target = c->target};
  am_pass_output_t out = {.attention_last = o->last,
                          .rollout = o->roll,
                          .grad_rollout = o->grad,
                          .rollout_rows = o->rrows,
                          .grad_rollout_rows = o->grows,
                          .head_stats = o->stats,
                          .head_importance = o->imp};
  am_cpu_scratch_t scratch = {.kernels = simd ? am_cpu_kernels_for_this_cpu()
                                              : am_cpu_kernels_plain()};
  memset(o, 0, sizeof *o);
  o->st = am_cpu_example_pass(&ex, opt, &out, &scratch, &o->fault);
  am_cpu_scratch_free(&scratch);
}

static void expect_close(const float *got, const float *ref, int count, const char *what) {
  for (int k = 0; k < count; k++)
    cr_expect(fabs((double)got[k] - ref[k]) <= 1e-7 + 1e-5 * fabs((double)ref[k]) ||
                  (isnan(got[k]) && isnan(ref[k])),
              "%s[%d]: tuned %.9g, plain %.9g", what, k, got[k], ref[k]);
}

static void compare_pass(const passcase_t *c, const am_pass_options_t *opt) {
  passout_t tuned, plain, again;
  run_pass(c, opt, 1, &tuned);
  run_pass(c, opt, 0, &plain);
  run_pass(c, opt, 1, &again);
  cr_assert_eq(tuned.st, plain.st, "status %d vs %d", tuned.st, plain.st);
  cr_expect(memcmp(&tuned, &again, sizeof tuned) == 0, "the same bits on every run");
  if (tuned.st != AM_STATUS_OK) {
    cr_expect(
        tuned.fault.kind == plain.fault.kind && tuned.fault.layer == plain.fault.layer &&
            tuned.fault.head == plain.fault.head && tuned.fault.row == plain.fault.row,
        "fault %d l%d h%d r%d vs %d l%d h%d r%d", tuned.fault.kind, tuned.fault.layer,
        tuned.fault.head, tuned.fault.row, plain.fault.kind, plain.fault.layer,
        plain.fault.head, plain.fault.row);
    return;
  }
  int n = c->n, lh = c->L * c->H;
  expect_close(tuned.last, plain.last, n, "attention_last");
  expect_close(tuned.roll, plain.roll, n, "rollout");
  expect_close(tuned.grad, plain.grad, n, "grad_rollout");
  expect_close(tuned.stats, plain.stats, AM_STAT_COUNT * lh, "head_stats");
  expect_close(tuned.imp, plain.imp, lh, "head_importance");
  if (opt->want & AM_PASS_ROLLOUT_ROWS)
    expect_close(tuned.rrows, plain.rrows, n * n, "rollout_rows");
}

Test(kernels, tuned_pass_agrees_with_the_plain_loops) {
  need_simd();
  static const am_dtype dts[3] = {AM_DTYPE_F32, AM_DTYPE_F16, AM_DTYPE_BF16};
  static const int sizes[4][2] = {{1, 0}, {9, 2}, {64, 0}, {71, 5}}; /* n, left padding */
  rng = 21;
  for (int d = 0; d < 3; d++)
    for (int k = 0; k < 4; k++) {
      passcase_t c;
      make_pass(&c, 3, 4, sizes[k][0] + sizes[k][1] + 2, sizes[k][0], sizes[k][1], dts[d]);
      static const int targets[3] = {0, -1, 2};
      for (int t = 0; t < 3; t++) {
        c.target = targets[t] < c.n ? targets[t] : 0;
        am_pass_options_t all = {.want = 0x7Fu, .fusion = AM_FUSION_MEAN};
        am_pass_options_t fast = {.want = 0x67u, .fusion = AM_FUSION_MEAN}; /* head mode */
        am_pass_options_t roll = {.want = AM_PASS_ROLLOUT, .fusion = AM_FUSION_MEAN};
        am_pass_options_t other = {.want = 0x67u,
                                   .fusion = AM_FUSION_MAX,
                                   .discard = 0.3,
                                   .grid = {.rows = 2, .cols = 4, .prefix = 1}};
        compare_pass(&c, &all);
        compare_pass(&c, &fast);
        compare_pass(&c, &roll);
        compare_pass(&c, &other);
      }
      free(c.att), free(c.grad);
    }
}

Test(kernels, faults_are_found_where_the_plain_loops_find_them) {
  need_simd();
  rng = 31;
  static const float bad[3] = {-0.25f, NAN, 0.5f}; /* negative, not finite, bad sum */
  for (int k = 0; k < 3; k++)
    for (int grad = 0; grad < 2; grad++) {
      passcase_t c;
      make_pass(&c, 2, 3, 40, 37, 1, AM_DTYPE_F16);
      size_t at = ((size_t)(1 * 3 + 2) * 40 + 20) * 40 + 9; /* layer 1, head 2, row 19 */
      put((grad ? c.grad : c.att) + 1, AM_DTYPE_F16, at, grad ? INFINITY : bad[k]);
      am_pass_options_t opt = {.want = 0x67u, .fusion = AM_FUSION_MEAN};
      compare_pass(&c, &opt);
      free(c.att), free(c.grad);
    }
}

Test(kernels, huge_gradients_fall_back_to_the_plain_loops) {
  need_simd();
  /* one-hot rows (a_ii = 1) and gradients of FLT_MAX: the gradient-rollout vector grows
   * to ~FLT_MAX / H after the top layer, and v_i a g overflows a float below it */
  enum { L = 2, H = 2, T = 12 };
  passcase_t c = {.L = L, .H = H, .T = T, .n = T, .dtype = AM_DTYPE_F32};
  c.att = calloc(4 * L * H * T * T + 1, 1);
  c.grad = calloc(4 * L * H * T * T + 1, 1);
  for (int j = 0; j < T; j++)
    c.idx[j] = j;
  for (size_t k = 0; k < (size_t)L * H * T * T; k++) {
    put(c.att + 1, AM_DTYPE_F32, k, k % T == (k / T) % T ? 1.0f : 0.0f);
    put(c.grad + 1, AM_DTYPE_F32, k, FLT_MAX);
  }
  am_pass_options_t opt = {.want = 0x67u, .fusion = AM_FUSION_MEAN};
  passout_t tuned, plain;
  run_pass(&c, &opt, 1, &tuned);
  run_pass(&c, &opt, 0, &plain);
  cr_assert_eq(tuned.st, AM_STATUS_OK);
  cr_expect(memcmp(&tuned, &plain, sizeof tuned) == 0, "the plain loops' results exactly");
  free(c.att), free(c.grad);
}
