/* test_analysis_properties.c — properties of the CPU reference of the per-example analyses
 * (host/cpu/example_pass.h) on seeded random attentions: rollout rows are distributions,
 * entropy lies in [0, ln n], padding (left, right, both, holes, filled with NaN) changes
 * nothing, F16/BF16/F64 storage agrees with F32, bad values give AM_STATUS_BAD_INPUT
 * naming the first bad row, n = 1 and n = 0, the row form equals the matching row of the
 * whole matrix, scratch reuse and unaligned data. Seeds are printed on failure. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "cpu/example_pass.h"

#define MAXL 4
#define MAXH 4
#define MAXN 72
#define ALL_PASSES 0x7Fu

/* ---- inputs ------------------------------------------------------------------------ */

static double uniform01(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* Valid-token attention [L,H,n,n] (softmax of logits of scale `sharp`) and gradients. */
static void make_valid(uint64_t seed, int L, int H, int n, double sharp, float *att,
                       float *grad) {
  uint64_t s = seed;
  for (int r = 0; r < L * H * n; r++) {
    double e[MAXN], sum = 0.0;
    for (int j = 0; j < n; j++)
      sum += e[j] = exp(sharp * (uniform01(&s) - 0.5));
    for (int j = 0; j < n; j++) {
      att[r * n + j] = (float)(e[j] / sum);
      grad[r * n + j] = (float)(2.0 * uniform01(&s) - 1.0);
    }
  }
}

/* Places [L,H,n,n] at valid positions idx of [L,H,T,T]; the rest is `fill`. */
static void embed(const float *src, int L, int H, int n, int T, const int32_t *idx,
                  float fill, float *dst) {
  for (int k = 0; k < L * H * T * T; k++)
    dst[k] = fill;
  for (int b = 0; b < L * H; b++)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++)
        dst[((size_t)b * T + idx[i]) * T + idx[j]] = src[((size_t)b * n + i) * n + j];
}

/* Stores F32 values as dtype (F16/BF16/F64/F32) into dst. */
static void store_as(const float *src, size_t count, am_dtype dtype, unsigned char *dst) {
  for (size_t k = 0; k < count; k++) {
    if (dtype == AM_DTYPE_F16) {
      uint16_t h = am_f32_to_f16(src[k]);
      memcpy(dst + 2 * k, &h, 2);
    } else if (dtype == AM_DTYPE_BF16) {
      uint16_t h = am_f32_to_bf16(src[k]);
      memcpy(dst + 2 * k, &h, 2);
    } else if (dtype == AM_DTYPE_F64) {
      double d = src[k];
      memcpy(dst + 8 * k, &d, 8);
    } else {
      memcpy(dst + 4 * k, &src[k], 4);
    }
  }
}

/* ---- running a pass ------------------------------------------------------------------ */

typedef struct result {
  am_status st;
  am_fault_t fault;
  float last[MAXN], rollout[MAXN], grad[MAXN], rrows[MAXN * MAXN], grows[MAXN * MAXN];
  float stats[AM_STAT_COUNT * MAXL * MAXH], importance[MAXL * MAXH];
} result_t;

typedef struct input {
  int L, H, T, n, target;
  am_dtype dtype;
  const void *att, *grad; /* [L,H,T,T] in dtype; grad may be NULL */
  const int32_t *idx;
} input_t;

static void run(const input_t *in, const am_pass_options_t *opt, am_cpu_scratch_t *scratch,
                result_t *r) {
  const void *att[MAXL], *grad[MAXL];
  size_t layer = (size_t)in->H * in->T * in->T * am_dtype_size(in->dtype);
  for (int l = 0; l < in->L; l++) {
    att[l] = (const unsigned char *)in->att + l * layer;
    grad[l] = in->grad ? (const unsigned char *)in->grad + l * layer : NULL;
  }
  /* L, H, T, n, dtype, att, grad, idx, target */
  am_example_t ex = {.L = in->L,
                     .H = in->H,
                     .T = in->T,
                     .n = in->n,
                     .dtype = in->dtype,
                     .att = att,
                     .grad = in->grad ? grad : NULL,
                     .idx = in->idx,
                     .target = in->target};
  am_pass_output_t out = {.attention_last = r->last,
                          .rollout = r->rollout,
                          .grad_rollout = r->grad,
                          .rollout_rows = r->rrows,
                          .grad_rollout_rows = r->grows,
                          .head_stats = r->stats,
                          .head_importance = r->importance};
  am_cpu_scratch_t own = {0};
  r->st = am_cpu_example_pass(&ex, opt, &out, scratch ? scratch : &own, &r->fault);
  am_cpu_scratch_free(&own);
}

static am_pass_options_t options(unsigned want, am_fusion fusion, double discard) {
  am_pass_options_t opt = {.want = want, .fusion = fusion, .discard = discard};
  return opt;
}

/* |a - b| <= atol + rtol |b| for count values, else a failure naming what and seed;
 * returns the largest error / bound. */
static double expect_near(const float *a, const float *b, int count, double rtol,
                          double atol, const char *what, uint64_t seed) {
  double worst = 0.0;
  for (int k = 0; k < count; k++) {
    double err = fabs((double)a[k] - (double)b[k]),
           bound = atol + rtol * fabs((double)b[k]);
    if (bound > 0.0 && err / bound > worst)
      worst = err / bound;
    cr_expect(err <= bound, "%s[%d]: %.9g vs %.9g (seed %llu)", what, k, a[k], b[k],
              (unsigned long long)seed);
  }
  return worst;
}

/* Compares every output of two passes over n valid tokens of L x H heads. */
static double expect_same(const result_t *a, const result_t *b, int L, int H, int n,
                          double rtol, double atol, uint64_t seed) {
  const struct {
    const float *x, *y;
    int count;
    const char *what;
  } outs[7] = {{a->last, b->last, n, "attention_last"},
               {a->rollout, b->rollout, n, "rollout"},
               {a->grad, b->grad, n, "grad_rollout"},
               {a->rrows, b->rrows, n * n, "rollout_rows"},
               {a->grows, b->grows, n * n, "grad_rollout_rows"},
               {a->stats, b->stats, AM_STAT_COUNT * L * H, "head_stats"},
               {a->importance, b->importance, L * H, "head_importance"}};
  double worst = 0.0;
  for (int k = 0; k < 7; k++)
    worst = fmax(worst, expect_near(outs[k].x, outs[k].y, outs[k].count, rtol, atol,
                                    outs[k].what, seed));
  return worst;
}

/* A seeded example: valid [L,H,n,n] attention and gradients, and the unpadded input. */
typedef struct sample {
  int L, H, n;
  float *att, *grad;
  int32_t idx[MAXN];
  input_t in;
} sample_t;

static void sample_make(sample_t *s, uint64_t seed, int L, int H, int n, double sharp) {
  size_t count = (size_t)L * H * n * n;
  s->L = L, s->H = H, s->n = n;
  s->att = malloc(count * sizeof(float));
  s->grad = malloc(count * sizeof(float));
  cr_assert(s->att && s->grad);
  make_valid(seed, L, H, n, sharp, s->att, s->grad);
  for (int j = 0; j < n; j++)
    s->idx[j] = j;
  input_t in = {L, H, n, n, 0, AM_DTYPE_F32, s->att, s->grad, s->idx};
  s->in = in;
}

static void sample_free(sample_t *s) {
  free(s->att);
  free(s->grad);
}

static float row_sum(const float *v, int n) {
  double s = 0.0;
  for (int j = 0; j < n; j++)
    s += v[j];
  return (float)s;
}

static const am_fusion fusions[3] = {AM_FUSION_MEAN, AM_FUSION_MAX, AM_FUSION_MIN};

Test(properties, rollout_rows_are_distributions) {
  static const double discards[3] = {0.0, 0.5, 0.9};
  static const int sizes[3] = {9, 33, 70};
  for (uint64_t seed = 1; seed <= 3; seed++) {
    sample_t s;
    sample_make(&s, seed, 3, 4, sizes[seed - 1], 3.0);
    s.in.target = AM_ROW_MEAN;
    for (int f = 0; f < 3; f++)
      for (int d = 0; d < 3; d++) {
        am_pass_options_t opt = options(ALL_PASSES, fusions[f], discards[d]);
        result_t r;
        run(&s.in, &opt, NULL, &r);
        cr_assert_eq(r.st, AM_STATUS_OK);
        int n = s.n;
        cr_expect(fabsf(row_sum(r.rollout, n) - 1.0f) <= 1e-5f, "mean row (seed %llu)",
                  (unsigned long long)seed);
        for (int i = 0; i < n; i++) {
          cr_expect(fabsf(row_sum(r.rrows + i * n, n) - 1.0f) <= 1e-5f,
                    "row %d of n=%d sums to %.9g (seed %llu f%d d%.1f)", i, n,
                    row_sum(r.rrows + i * n, n), (unsigned long long)seed, f, discards[d]);
          for (int j = 0; j < n; j++)
            cr_expect(r.rrows[i * n + j] >= 0.0f);
        }
      }
    sample_free(&s);
  }
}

Test(properties, entropy_between_zero_and_log_n) {
  static const double sharpness[3] = {0.1, 4.0, 80.0};
  for (int k = 0; k < 3; k++) {
    sample_t s;
    sample_make(&s, 10 + k, 3, 4, 11, sharpness[k]);
    am_pass_options_t opt = options(AM_PASS_HEAD_STATS, AM_FUSION_MEAN, 0.0);
    result_t r;
    run(&s.in, &opt, NULL, &r);
    cr_assert_eq(r.st, AM_STATUS_OK);
    int lh = s.L * s.H;
    for (int x = 0; x < lh; x++) {
      float e = r.stats[AM_STAT_ENTROPY * lh + x],
            en = r.stats[AM_STAT_ENTROPY_NORM * lh + x];
      cr_expect(e >= 0.0f && e <= logf(11.0f) + 1e-6f, "entropy %.9g (sharpness %g)", e,
                sharpness[k]);
      cr_expect(en >= 0.0f && en <= 1.0f + 1e-6f, "entropy_norm %.9g", en);
      cr_expect(fabsf(en * logf(11.0f) - e) <= 1e-5f);
      float conf = r.stats[AM_STAT_CONFIDENCE * lh + x];
      cr_expect(conf >= 1.0f / 11 - 1e-6f && conf <= 1.0f + 1e-6f);
    }
    sample_free(&s);
  }
}

/* Runs sample s stored as dtype at a byte offset (odd: unaligned), its valid tokens at
 * positions idx of T (idx NULL: unpadded, T = n), the padding NaN. */
static void run_stored(const sample_t *s, am_dtype dtype, size_t offset, int T,
                       const int32_t *idx, int target, const am_pass_options_t *opt,
                       result_t *r) {
  int32_t own[MAXN];
  if (!idx) {
    for (int j = 0; j < s->n; j++)
      own[j] = j;
    idx = own, T = s->n;
  }
  size_t count = (size_t)s->L * s->H * T * T, size = am_dtype_size(dtype);
  float *f32 = malloc(count * sizeof(float));
  unsigned char *att = malloc(count * size + offset), *grad = malloc(count * size + offset);
  cr_assert(f32 && att && grad);
  embed(s->att, s->L, s->H, s->n, T, idx, NAN, f32);
  store_as(f32, count, dtype, att + offset);
  embed(s->grad, s->L, s->H, s->n, T, idx, NAN, f32);
  store_as(f32, count, dtype, grad + offset);
  input_t in = {s->L, s->H, T, s->n, target, dtype, att + offset, grad + offset, idx};
  run(&in, opt, NULL, r);
  free(f32), free(att), free(grad);
}

/* The sample with `left` and `right` padding (or at the positions `holes` of T) gives the
 * same results as unpadded. */
static void check_padding(const sample_t *s, int left, int right, const int32_t *holes,
                          int T, uint64_t seed) {
  int32_t idx[MAXN];
  for (int j = 0; j < s->n; j++)
    idx[j] = holes ? holes[j] : left + j;
  static const int targets[3] = {0, 3, AM_ROW_MEAN};
  for (int t = 0; t < 3; t++) {
    am_pass_options_t opt = options(ALL_PASSES, AM_FUSION_MAX, 0.3);
    opt.normalize = AM_NORMALIZE_MINMAX;
    result_t a, b;
    run_stored(s, AM_DTYPE_F32, 0, holes ? T : left + s->n + right, idx, targets[t], &opt,
               &a);
    run_stored(s, AM_DTYPE_F32, 0, 0, NULL, targets[t], &opt, &b);
    cr_assert_eq(a.st, AM_STATUS_OK, "left %d right %d: status %d fault %d", left, right,
                 a.st, a.fault.kind);
    /* the same arithmetic on the same values: equal up to BLAS rounding */
    expect_same(&a, &b, s->L, s->H, s->n, 1e-6, 1e-9, seed);
  }
}

Test(properties, padding_left_right_both_or_holes_changes_nothing) {
  sample_t s;
  sample_make(&s, 21, 3, 2, 6, 3.0);
  static const int pads[6][2] = {{1, 0}, {3, 0}, {0, 1}, {0, 4}, {2, 3}, {5, 1}};
  for (int k = 0; k < 6; k++)
    check_padding(&s, pads[k][0], pads[k][1], NULL, 0, 21);
  static const int32_t holes[6] = {0, 2, 3, 5, 6, 8};
  check_padding(&s, 0, 0, holes, 10, 21);
  sample_free(&s);
}

Test(properties, half_and_double_storage_agree_with_f32) {
  for (uint64_t seed = 31; seed <= 33; seed++) {
    sample_t s;
    sample_make(&s, seed, 3, 2, 7, 3.0);
    am_pass_options_t opt = options(ALL_PASSES, AM_FUSION_MEAN, 0.0);
    result_t f32, f16, bf16, f64;
    run_stored(&s, AM_DTYPE_F32, 0, 0, NULL, 0, &opt, &f32);
    run_stored(&s, AM_DTYPE_F16, 0, 0, NULL, 0, &opt, &f16);
    run_stored(&s, AM_DTYPE_BF16, 0, 0, NULL, 0, &opt, &bf16);
    run_stored(&s, AM_DTYPE_F64, 0, 0, NULL, 0, &opt, &f64);
    cr_assert_eq(f16.st, AM_STATUS_OK, "F16 fault %d row sum %.9g", f16.fault.kind,
                 f16.fault.value);
    cr_assert_eq(bf16.st, AM_STATUS_OK, "BF16 fault %d row sum %.9g", bf16.fault.kind,
                 bf16.fault.value);
    cr_assert_eq(f64.st, AM_STATUS_OK);
    /* STYLE.md's starting tolerances; atol for entries near 0 (measured: see below) */
    double w16 = expect_same(&f16, &f32, s.L, s.H, s.n, 2e-3, 2e-5, seed);
    double wbf = expect_same(&bf16, &f32, s.L, s.H, s.n, 1.6e-2, 1.6e-4, seed);
    expect_same(&f64, &f32, s.L, s.H, s.n, 0.0, 0.0, seed); /* F64 of floats: exact */
    cr_log_info("seed %llu: worst error / bound F16 %.3f, BF16 %.3f",
                (unsigned long long)seed, w16, wbf);
    sample_free(&s);
  }
}

Test(properties, unaligned_data_gives_the_same_results) {
  sample_t s;
  sample_make(&s, 41, 3, 2, 7, 3.0);
  am_pass_options_t opt = options(ALL_PASSES, AM_FUSION_MIN, 0.2);
  static const am_dtype dtypes[3] = {AM_DTYPE_F32, AM_DTYPE_F16, AM_DTYPE_F64};
  for (int k = 0; k < 3; k++) {
    result_t aligned, odd;
    run_stored(&s, dtypes[k], 0, 0, NULL, 2, &opt, &aligned);
    run_stored(&s, dtypes[k], 1, 0, NULL, 2, &opt, &odd);
    cr_assert_eq(odd.st, AM_STATUS_OK);
    expect_same(&odd, &aligned, s.L, s.H, s.n, 0.0, 0.0, 41);
  }
  sample_free(&s);
}

/* ---- bad input ----------------------------------------------------------------------- */

/* The sample padded on both sides (idx 1..n, T = n + 3), after `poke` changed it. */
typedef void (*poke_fn)(sample_t *s);

static void run_poked(poke_fn poke, am_dtype dtype, unsigned want, result_t *r) {
  sample_t s;
  sample_make(&s, 51, 3, 2, 5, 3.0);
  poke(&s);
  static const int32_t idx[5] = {1, 2, 3, 4, 5};
  am_pass_options_t opt = options(want, AM_FUSION_MEAN, 0.0);
  run_stored(&s, dtype, 0, 8, idx, 0, &opt, r);
  sample_free(&s);
}

/* element (l, h, i, j) of a sample's valid [L,H,n,n] arrays */
static float *at(sample_t *s, float *base, int l, int h, int i, int j) {
  return base + (((size_t)l * s->H + h) * s->n + i) * s->n + j;
}

static void poke_nan(sample_t *s) { *at(s, s->att, 1, 1, 2, 3) = NAN; }
static void poke_inf(sample_t *s) { *at(s, s->att, 0, 1, 4, 0) = INFINITY; }
static void poke_negative(sample_t *s) {
  float old = *at(s, s->att, 0, 0, 4, 1);
  *at(s, s->att, 0, 0, 4, 1) = -0.01f;
  *at(s, s->att, 0, 0, 4, 2) += old + 0.01f; /* the row still sums to 1 */
}
static void poke_sum(sample_t *s) {
  for (int j = 0; j < s->n; j++)
    *at(s, s->att, 2, 1, 0, j) *= 0.9f;
}
static void poke_grad(sample_t *s) { *at(s, s->grad, 1, 0, 3, 2) = NAN; }
static void poke_two(sample_t *s) {
  *at(s, s->att, 0, 0, 0, 0) = NAN;
  *at(s, s->att, 2, 1, 4, 4) = -1.0f;
}
static void poke_sum_by(sample_t *s, float excess) { *at(s, s->att, 1, 0, 1, 1) += excess; }
static void poke_f32_ok(sample_t *s) { poke_sum_by(s, 1e-3f); }
static void poke_f32_bad(sample_t *s) { poke_sum_by(s, 3e-3f); }
static void poke_f16_ok(sample_t *s) { poke_sum_by(s, 1e-3f); }
static void poke_f16_bad(sample_t *s) { poke_sum_by(s, 3e-3f); }

static void expect_fault(const result_t *r, am_fault_kind kind, int l, int h, int i) {
  cr_expect_eq(r->st, AM_STATUS_BAD_INPUT);
  cr_expect_eq(r->fault.kind, kind, "kind %d, expected %d", r->fault.kind, kind);
  cr_expect_eq(r->fault.layer, l, "layer %d, expected %d", r->fault.layer, l);
  cr_expect_eq(r->fault.head, h, "head %d, expected %d", r->fault.head, h);
  cr_expect_eq(r->fault.row, i, "row %d, expected %d", r->fault.row, i);
}

Test(properties, bad_values_are_found_and_located) {
  result_t r;
  run_poked(poke_nan, AM_DTYPE_F32, ALL_PASSES, &r);
  expect_fault(&r, AM_FAULT_ATT_NOT_FINITE, 1, 1, 2);
  cr_expect(isnan(r.fault.value));
  run_poked(poke_inf, AM_DTYPE_F16, ALL_PASSES, &r);
  expect_fault(&r, AM_FAULT_ATT_NOT_FINITE, 0, 1, 4);
  run_poked(poke_negative, AM_DTYPE_F32, ALL_PASSES, &r);
  expect_fault(&r, AM_FAULT_ATT_NEGATIVE, 0, 0, 4);
  cr_expect_float_eq(r.fault.value, -0.01, 1e-9);
  run_poked(poke_sum, AM_DTYPE_F32, ALL_PASSES, &r);
  expect_fault(&r, AM_FAULT_ATT_ROW_SUM, 2, 1, 0);
  cr_expect_float_eq(r.fault.value, 0.9, 1e-6);
  run_poked(poke_grad, AM_DTYPE_BF16, ALL_PASSES, &r);
  expect_fault(&r, AM_FAULT_GRAD_NOT_FINITE, 1, 0, 3);
  /* layers are read from the top: the fault of layer 2 is met before that of layer 0 */
  run_poked(poke_two, AM_DTYPE_F32, ALL_PASSES, &r);
  expect_fault(&r, AM_FAULT_ATT_NEGATIVE, 2, 1, 4);
  /* want == 0 still reads and checks every value */
  run_poked(poke_nan, AM_DTYPE_F32, 0, &r);
  expect_fault(&r, AM_FAULT_ATT_NOT_FINITE, 1, 1, 2);
}

Test(properties, row_sum_tolerance_follows_the_dtype) {
  result_t r;
  run_poked(poke_f32_ok, AM_DTYPE_F32, ALL_PASSES, &r);
  cr_expect_eq(r.st, AM_STATUS_OK);
  run_poked(poke_f32_bad, AM_DTYPE_F32, ALL_PASSES, &r);
  expect_fault(&r, AM_FAULT_ATT_ROW_SUM, 1, 0, 1);
  run_poked(poke_f16_ok, AM_DTYPE_F16, ALL_PASSES, &r);
  cr_expect_eq(r.st, AM_STATUS_OK, "fault %d value %.9g", r.fault.kind, r.fault.value);
  run_poked(poke_f16_bad, AM_DTYPE_F16, ALL_PASSES, &r);
  expect_fault(&r, AM_FAULT_ATT_ROW_SUM, 1, 0, 1);
}

/* ---- edge sizes -------------------------------------------------------------------- */

Test(properties, one_valid_token) {
  float att[2 * 2 * 3 * 3], grad[2 * 2 * 3 * 3];
  for (int k = 0; k < 2 * 2 * 3 * 3; k++)
    att[k] = grad[k] = NAN; /* padding: never read */
  for (int b = 0; b < 4; b++) {
    att[b * 9 + 4] = 1.0f; /* position 1 of T = 3 */
    grad[b * 9 + 4] = 0.5f * (float)b;
  }
  int32_t idx[1] = {1};
  input_t in = {2, 2, 3, 1, 0, AM_DTYPE_F32, att, grad, idx};
  am_pass_options_t opt = options(ALL_PASSES, AM_FUSION_MEAN, 0.5);
  opt.normalize = AM_NORMALIZE_NONE;
  result_t r;
  run(&in, &opt, NULL, &r);
  cr_assert_eq(r.st, AM_STATUS_OK);
  cr_expect_eq(r.last[0], 1.0f);
  cr_expect_eq(r.rollout[0], 1.0f);
  cr_expect_eq(r.rrows[0], 1.0f);
  /* layer 1: 1 + mean(0.5*2, 0.5*3) = 2.25; layer 0: 1 + mean(0, 0.5) = 1.25 */
  cr_expect_float_eq(r.grad[0], 2.25f * 1.25f, 1e-6f);
  cr_expect_float_eq(r.grows[0], 2.25f * 1.25f, 1e-6f);
  static const float expect[AM_STAT_COUNT] = {0, 0, 1, 1, 1, 1, 0, 0, 0};
  for (int st = 0; st < AM_STAT_COUNT; st++)
    for (int x = 0; x < 4; x++)
      cr_expect_eq(r.stats[st * 4 + x], expect[st], "%s = %g", am_stat_name(st),
                   r.stats[st * 4 + x]);
}

Test(properties, no_valid_token) {
  float att[2 * 2 * 4 * 4];
  for (int k = 0; k < 2 * 2 * 4 * 4; k++)
    att[k] = NAN;
  input_t in = {2, 2, 4, 0, AM_ROW_MEAN, AM_DTYPE_F32, att, att, NULL};
  am_pass_options_t opt = options(ALL_PASSES, AM_FUSION_MEAN, 0.0);
  result_t r;
  for (int k = 0; k < MAXN; k++)
    r.last[k] = r.rollout[k] = r.grad[k] = r.rrows[k] = r.grows[k] = 123.0f;
  run(&in, &opt, NULL, &r);
  cr_assert_eq(r.st, AM_STATUS_OK);
  for (int k = 0; k < MAXN; k++)
    cr_expect(r.last[k] == 123.0f && r.rollout[k] == 123.0f && r.grad[k] == 123.0f &&
                  r.rrows[k] == 123.0f && r.grows[k] == 123.0f,
              "maps are left untouched");
  for (int k = 0; k < AM_STAT_COUNT * 4; k++)
    cr_expect(isnan(r.stats[k]));
  for (int k = 0; k < 4; k++)
    cr_expect_eq(r.importance[k], 0.0f);
}

/* ---- row form and whole matrices ----------------------------------------------------- */

Test(properties, row_form_equals_the_row_of_the_whole_matrix) {
  static const double discards[2] = {0.0, 0.4};
  for (uint64_t seed = 61; seed <= 62; seed++) {
    sample_t s;
    sample_make(&s, seed, 4, 3, seed == 61 ? 8 : 45, 3.0);
    int n = s.n;
    for (int f = 0; f < 3; f++)
      for (int d = 0; d < 2; d++)
        for (int t = -1; t < n; t++) {
          s.in.target = t < 0 ? AM_ROW_MEAN : t;
          am_pass_options_t opt = options(ALL_PASSES, fusions[f], discards[d]);
          result_t r;
          run(&s.in, &opt, NULL, &r);
          cr_assert_eq(r.st, AM_STATUS_OK);
          float rrow[MAXN], grow[MAXN];
          for (int j = 0; j < n; j++) {
            double a = 0.0, g = 0.0;
            for (int i = 0; i < n; i++)
              if (t < 0 || i == t) {
                a += r.rrows[i * n + j];
                g += r.grows[i * n + j];
              }
            rrow[j] = (float)(t < 0 ? a / n : a);
            grow[j] = (float)(t < 0 ? g / n : g);
          }
          expect_near(r.rollout, rrow, n, 1e-5, 1e-7, "rollout vs rollout_rows", seed);
          expect_near(r.grad, grow, n, 1e-5, 1e-7, "grad_rollout vs grad_rollout_rows",
                      seed);
        }
    sample_free(&s);
  }
}

Test(properties, scratch_is_reused_and_grown) {
  sample_t big, small;
  sample_make(&big, 71, 3, 2, 30, 3.0);
  sample_make(&small, 72, 2, 3, 4, 3.0);
  am_pass_options_t opt = options(ALL_PASSES, AM_FUSION_MEAN, 0.1);
  am_cpu_scratch_t scratch = {0};
  result_t shared[3], fresh[3];
  const sample_t *order[3] = {&small, &big, &small};
  for (int k = 0; k < 3; k++) {
    run(&order[k]->in, &opt, &scratch, &shared[k]);
    run(&order[k]->in, &opt, NULL, &fresh[k]);
    cr_assert_eq(shared[k].st, AM_STATUS_OK);
    expect_same(&shared[k], &fresh[k], order[k]->L, order[k]->H, order[k]->n, 0.0, 0.0, 71);
  }
  am_cpu_scratch_free(&scratch);
  am_cpu_scratch_free(&scratch); /* twice: harmless */
  am_cpu_scratch_free(NULL);
  sample_free(&big);
  sample_free(&small);
}

Test(properties, invalid_arguments) {
  sample_t s;
  sample_make(&s, 81, 2, 2, 5, 3.0);
  am_pass_options_t opt = options(ALL_PASSES, AM_FUSION_MEAN, 0.0);
  result_t r;
  s.in.target = 5; /* out of [0, n) */
  run(&s.in, &opt, NULL, &r);
  cr_expect_eq(r.st, AM_STATUS_INVALID_ARGUMENT);
  s.in.target = 0;
  opt.discard = 1.0;
  run(&s.in, &opt, NULL, &r);
  cr_expect_eq(r.st, AM_STATUS_INVALID_ARGUMENT);
  opt.discard = 0.0;
  s.in.grad = NULL; /* gradient methods without gradients */
  run(&s.in, &opt, NULL, &r);
  cr_expect_eq(r.st, AM_STATUS_INVALID_ARGUMENT);
  opt.want = AM_PASS_ROLLOUT | AM_PASS_HEAD_STATS; /* no gradient wanted: fine */
  run(&s.in, &opt, NULL, &r);
  cr_expect_eq(r.st, AM_STATUS_OK);
  int32_t bad[5] = {0, 1, 1, 2, 3}; /* not increasing */
  s.in.idx = bad;
  run(&s.in, &opt, NULL, &r);
  cr_expect_eq(r.st, AM_STATUS_INVALID_ARGUMENT);
  sample_free(&s);
}
