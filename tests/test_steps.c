/* test_steps.c — several targets on the CPU (docs/generation.md, "Several targets"): every
 * row of ATTENTION_LAST_STEPS, ROLLOUT_STEPS and GRAD_ROLLOUT_STEPS equals, bit for bit,
 * the single-target output of a pass with target steps[s] that asks for the same outputs
 * (the single ones in place of the *_STEPS ones): F32/F16/BF16/F64, mean/max/min fusion,
 * discard, every --normalize, without gradients, with one gradient and with per-step
 * gradients, repeated and unordered steps, one-token examples, holes in the valid
 * positions, on the plain loops and on the x86 sweeps (rows, whole heads, whole layers and
 * their fall-backs). The example's own outputs are the same bits with and without steps;
 * argument errors are INVALID_ARGUMENT. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "cpu/example_pass.h"
#include "cpu/row_sweep.h"
#include "support/parity.h"

#define MAXL 3
#define STEP_BITS                                                                          \
  (AM_PASS_ATTENTION_LAST_STEPS | AM_PASS_ROLLOUT_STEPS | AM_PASS_GRAD_ROLLOUT_STEPS)
#define GRAD_BITS                                                                          \
  (AM_PASS_GRAD_ROLLOUT | AM_PASS_GRAD_ROLLOUT_ROWS | AM_PASS_HEAD_IMPORTANCE)

static uint64_t rng = 1;
static double uniform01(void) { return par_uniform(&rng); }

/* Element i of an array of dtype dt <- v. */
static void put(unsigned char *dst, am_dtype dt, size_t i, double v) {
  par_store_value(dst + i * am_dtype_size(dt), dt, (float)v);
}

typedef struct scase {
  int L, H, T, n, S;
  am_dtype dtype;
  int32_t idx[600], steps[8];
  unsigned char *att, *grad, *sgrad; /* [L,H,T,T], [L,H,T,T], [L,S,H,T,T]; 1 byte offset */
  size_t layer;                      /* bytes of one [H,T,T] block */
} scase_t;

/* n valid tokens of T, from `left` with a hole after every `gap` tokens (0: none). */
static void make_case(scase_t *c, int L, int H, int n, int left, int gap, am_dtype dt,
                      const int32_t *steps, int S) {
  *c = (scase_t){.L = L, .H = H, .n = n, .S = S, .dtype = dt};
  int pos = left;
  for (int j = 0; j < n; j++, pos++) {
    if (gap && j > 0 && j % gap == 0)
      pos++;
    c->idx[j] = pos;
  }
  c->T = pos + 1;
  memcpy(c->steps, steps, (size_t)S * sizeof *steps);
  c->layer = (size_t)H * c->T * c->T * am_dtype_size(dt);
  c->att = calloc((size_t)L * c->layer + 1, 1);
  c->grad = calloc((size_t)L * c->layer + 1, 1);
  c->sgrad = calloc((size_t)L * S * c->layer + 1, 1);
  size_t es = am_dtype_size(dt), hb = (size_t)c->T * c->T;
  for (int b = 0; b < L * H; b++)
    for (int i = 0; i < n; i++) {
      double e[600], sum = 0, sharp = b % 3 == 0 ? 12.0 : 3.0;
      for (int j = 0; j < n; j++)
        sum += e[j] = exp(sharp * uniform01());
      for (int j = 0; j < n; j++) {
        size_t at = ((size_t)b * c->T + c->idx[i]) * c->T + c->idx[j];
        put(c->att + 1, dt, at, e[j] / sum);
        put(c->grad + 1, dt, at, uniform01() - 0.5);
        for (int s = 0; s < S; s++) { /* layer l = b / H, head b % H, step s */
          size_t sat = (((size_t)(b / H) * S + s) * H + b % H) * hb +
                       (size_t)c->idx[i] * c->T + c->idx[j];
          put(c->sgrad + 1, dt, sat, uniform01() - 0.5);
        }
      }
    }
  (void)es;
}

static void free_case(scase_t *c) { free(c->att), free(c->grad), free(c->sgrad); }

typedef struct souts {
  float *last, *roll, *grad, *rrows, *grows, *stats, *imp, *lsteps, *rsteps, *gsteps;
} souts_t;

static void alloc_outs(souts_t *o, const scase_t *c) {
  size_t n = (size_t)c->n, S = (size_t)c->S, lh = (size_t)c->L * c->H;
  o->last = calloc(n, 4), o->roll = calloc(n, 4), o->grad = calloc(n, 4);
  o->rrows = calloc(n * n, 4), o->grows = calloc(n * n, 4);
  o->stats = calloc(AM_STAT_COUNT * lh, 4), o->imp = calloc(lh, 4);
  o->lsteps = calloc(S * n, 4), o->rsteps = calloc(S * n, 4), o->gsteps = calloc(S * n, 4);
}

static void free_outs(souts_t *o) {
  free(o->last), free(o->roll), free(o->grad), free(o->rrows), free(o->grows);
  free(o->stats), free(o->imp), free(o->lsteps), free(o->rsteps), free(o->gsteps);
}

/* grads: 0 none, 1 ex->grad, 2 ex->grad and step_grad; step >= 0: the single-target pass
 * of that step (its own gradient when grads == 2). */
static am_status run(const scase_t *c, const am_pass_options_t *opt, int simd, int grads,
                     int target, int step, souts_t *o) {
  const void *att[MAXL], *grad[MAXL], *sgrad[MAXL];
  for (int l = 0; l < c->L; l++) {
    att[l] = c->att + 1 + l * c->layer;
    grad[l] = c->grad + 1 + l * c->layer;
    sgrad[l] = c->sgrad + 1 + (size_t)l * c->S * c->layer;
    if (step >= 0 && grads == 2)
      grad[l] = (const unsigned char *)sgrad[l] + (size_t)step * c->layer;
  }
  am_example_t ex = {.L = c->L,
                     .H = c->H,
                     .T = c->T,
                     .n = c->n,
                     .dtype = c->dtype,
                     .att = att,
                     .grad = grads ? grad : NULL,
                     .idx = c->idx,
                     .target = step >= 0 ? c->steps[step] : target,
                     .nsteps = step >= 0 ? 0 : c->S,
                     .steps = step >= 0 ? NULL : c->steps,
                     .step_grad = step < 0 && grads == 2 ? sgrad : NULL};
  am_pass_output_t out = {.attention_last = o->last,
                          .rollout = o->roll,
                          .grad_rollout = o->grad,
                          .rollout_rows = o->rrows,
                          .grad_rollout_rows = o->grows,
                          .head_stats = o->stats,
                          .head_importance = o->imp,
                          .attention_last_steps = o->lsteps,
                          .rollout_steps = o->rsteps,
                          .grad_rollout_steps = o->gsteps};
  am_cpu_scratch_t scratch = {.kernels = simd ? am_cpu_kernels_for_this_cpu()
                                              : am_cpu_kernels_plain()};
  am_fault_t fault;
  am_status st = am_cpu_example_pass(&ex, opt, &out, &scratch, &fault);
  am_cpu_scratch_free(&scratch);
  return st;
}

static int same_bits(const float *a, const float *b, int count, int *at) {
  for (int k = 0; k < count; k++)
    if (memcmp(&a[k], &b[k], sizeof *a) != 0) {
      *at = k;
      return 0;
    }
  return 1;
}

/* The steps pass (want: the step bits of opt->want plus its other bits) against one
 * single-target pass per step, and the other outputs against a pass without steps. */
static void check_case(const scase_t *c, const am_pass_options_t *opt, int grads,
                       const char *what) {
  unsigned steps = opt->want & STEP_BITS, others = opt->want & ~STEP_BITS;
  if (!grads)
    steps &= ~AM_PASS_GRAD_ROLLOUT_STEPS, others &= ~GRAD_BITS;
  unsigned singles = (steps & AM_PASS_ATTENTION_LAST_STEPS ? AM_PASS_ATTENTION_LAST : 0) |
                     (steps & AM_PASS_ROLLOUT_STEPS ? AM_PASS_ROLLOUT : 0) |
                     (steps & AM_PASS_GRAD_ROLLOUT_STEPS ? AM_PASS_GRAD_ROLLOUT : 0);
  int n = c->n, lh = c->L * c->H;
  for (int simd = 0; simd < 1 + am_cpu_simd_supported(); simd++) {
    souts_t a, b, d;
    alloc_outs(&a, c), alloc_outs(&b, c), alloc_outs(&d, c);
    am_pass_options_t oa = *opt, ob = *opt;
    oa.want = steps | others;
    am_status st = run(c, &oa, simd, grads, AM_ROW_MEAN, -1, &a);
    cr_assert_eq(st, AM_STATUS_OK, "%s simd %d: steps pass status %d", what, simd, st);
    /* the example's own outputs (the mean target, not a step) are unchanged */
    ob.want = others;
    st = run(c, &ob, simd, grads, AM_ROW_MEAN, -1, &d);
    cr_assert_eq(st, AM_STATUS_OK);
    int at = 0;
    cr_expect(same_bits(a.last, d.last, n, &at) && same_bits(a.roll, d.roll, n, &at) &&
                  same_bits(a.grad, d.grad, n, &at) &&
                  same_bits(a.stats, d.stats, AM_STAT_COUNT * lh, &at) &&
                  same_bits(a.imp, d.imp, lh, &at) &&
                  (!(others & AM_PASS_GRAD_ROLLOUT_ROWS) ||
                   same_bits(a.grows, d.grows, n * n, &at)),
              "%s simd %d: outputs other than the steps changed (at %d)", what, simd, at);
    ob.want = singles | others;
    for (int s = 0; s < c->S; s++) {
      st = run(c, &ob, simd, grads, 0, s, &b);
      cr_assert_eq(st, AM_STATUS_OK, "%s simd %d: single pass of step %d: %d", what, simd,
                   s, st);
      size_t r = (size_t)s * n;
      if (steps & AM_PASS_ATTENTION_LAST_STEPS)
        cr_expect(same_bits(a.lsteps + r, b.last, n, &at),
                  "%s simd %d step %d (token %d): attention_last[%d] %.9g vs %.9g", what,
                  simd, s, c->steps[s], at, a.lsteps[r + at], b.last[at]);
      if (steps & AM_PASS_ROLLOUT_STEPS)
        cr_expect(same_bits(a.rsteps + r, b.roll, n, &at),
                  "%s simd %d step %d (token %d): rollout[%d] %.9g vs %.9g", what, simd, s,
                  c->steps[s], at, a.rsteps[r + at], b.roll[at]);
      if (steps & AM_PASS_GRAD_ROLLOUT_STEPS)
        cr_expect(same_bits(a.gsteps + r, b.grad, n, &at),
                  "%s simd %d step %d (token %d): grad_rollout[%d] %.9g vs %.9g", what,
                  simd, s, c->steps[s], at, a.gsteps[r + at], b.grad[at]);
    }
    free_outs(&a), free_outs(&b), free_outs(&d);
  }
}

static const int32_t some_steps[5] = {4, 0, 4, 8, 1}; /* unordered, repeated */

Test(steps, rows_equal_single_target_passes_bit_for_bit) {
  static const am_dtype dts[4] = {AM_DTYPE_F32, AM_DTYPE_F16, AM_DTYPE_BF16, AM_DTYPE_F64};
  static const am_normalize norms[4] = {AM_NORMALIZE_NONE, AM_NORMALIZE_MAX,
                                        AM_NORMALIZE_SUM, AM_NORMALIZE_MINMAX};
  static const am_fusion fusions[3] = {AM_FUSION_MEAN, AM_FUSION_MAX, AM_FUSION_MIN};
  /* {n, left padding, hole every}: short, layer-sweep sized, a tail of 7, holes */
  static const int shapes[4][3] = {{9, 2, 0}, {64, 0, 0}, {71, 5, 0}, {23, 1, 5}};
  rng = 18;
  for (int d = 0; d < 4; d++)
    for (int k = 0; k < 4; k++) {
      scase_t c;
      int32_t st[5];
      for (int s = 0; s < 5; s++)
        st[s] = some_steps[s] % shapes[k][0];
      make_case(&c, 3, 4, shapes[k][0], shapes[k][1], shapes[k][2], dts[d], st, 5);
      for (int grads = 0; grads < 3; grads++)
        for (int f = 0; f < 3; f++) {
          char what[96];
          int v = (d * 4 + k) * 3 + grads + f;
          am_pass_options_t opt = {.want = STEP_BITS | AM_PASS_ATTENTION_LAST |
                                           AM_PASS_ROLLOUT | AM_PASS_GRAD_ROLLOUT |
                                           AM_PASS_HEAD_STATS | AM_PASS_HEAD_IMPORTANCE,
                                   .fusion = fusions[f],
                                   .discard = v % 2 ? 0.3 : 0.0,
                                   .normalize = norms[v % 4]};
          snprintf(what, sizeof what, "dtype %d n %d grads %d fusion %d norm %d", dts[d],
                   c.n, grads, opt.fusion, opt.normalize);
          check_case(&c, &opt, grads, what);
          opt.want = STEP_BITS; /* the steps alone: the paths of a pass with singles only */
          check_case(&c, &opt, grads, what);
        }
      free_case(&c);
    }
}

Test(steps, every_path_of_the_sweeps) {
  /* the whole-matrix products and a patch grid keep the row sweep; F16, one gradient and
   * per-step gradients */
  rng = 19;
  scase_t c;
  make_case(&c, 2, 3, 37, 1, 0, AM_DTYPE_F16, some_steps, 5);
  for (int grads = 1; grads < 3; grads++) {
    am_pass_options_t rows = {.want = STEP_BITS | AM_PASS_GRAD_ROLLOUT_ROWS |
                                      AM_PASS_ROLLOUT_ROWS,
                              .fusion = AM_FUSION_MEAN};
    am_pass_options_t grid = {.want = STEP_BITS | AM_PASS_HEAD_STATS,
                              .fusion = AM_FUSION_MEAN,
                              .grid = {.rows = 4, .cols = 9, .prefix = 1}};
    check_case(&c, &rows, grads, "whole-matrix products");
    check_case(&c, &grid, grads, "patch grid");
  }
  free_case(&c);
  /* more than AM_LAYER_MAX_N tokens: head by head */
  make_case(&c, 1, 2, AM_LAYER_MAX_N + 9, 0, 0, AM_DTYPE_BF16, some_steps, 3);
  am_pass_options_t heads = {.want = STEP_BITS | AM_PASS_HEAD_STATS,
                             .fusion = AM_FUSION_MEAN,
                             .normalize = AM_NORMALIZE_SUM};
  check_case(&c, &heads, 1, "head by head");
  check_case(&c, &heads, 2, "head by head, per-step gradients");
  free_case(&c);
}

Test(steps, rows_near_a_limit_and_overflowing_gradients) {
  rng = 20;
  scase_t c;
  make_case(&c, 2, 2, 40, 0, 0, AM_DTYPE_F32, some_steps, 5);
  /* row 7 of layer 1, head 1 sums to within 1e-6 of the tolerance: it stops the layer
   * sweep (head by head then) and passes the exact check */
  size_t row = ((size_t)(1 * 2 + 1) * c.T + 7) * c.T;
  float *a = (float *)(void *)(c.att + 1);
  double tol = am_row_sum_tolerance(AM_DTYPE_F32), scale = 1.0 + tol - 5e-7, sum = 0;
  for (int j = 0; j < c.n; j++) {
    float x;
    memcpy(&x, &a[row + j], 4);
    x = (float)(x * scale);
    sum += x;
    memcpy(&a[row + j], &x, 4);
  }
  cr_assert(fabs(sum - 1.0) < tol && fabs(sum - 1.0) > tol - 1e-6, "sum %.9g", sum);
  am_pass_options_t opt = {.want = STEP_BITS | AM_PASS_HEAD_STATS,
                           .fusion = AM_FUSION_MEAN};
  check_case(&c, &opt, 1, "a row near the limit");
  check_case(&c, &opt, 2, "a row near the limit, per-step gradients");
  free_case(&c);
  /* one-hot rows and gradients of FLT_MAX: the sweeps' float sums overflow, every pass
   * (the steps' and each single one) is done by the plain loops */
  int32_t st[3] = {5, 0, 11};
  make_case(&c, 2, 2, 12, 0, 0, AM_DTYPE_F32, st, 3);
  for (int b = 0; b < 2 * 2; b++)
    for (int i = 0; i < c.n; i++)
      for (int j = 0; j < c.n; j++) {
        size_t at = ((size_t)b * c.T + c.idx[i]) * c.T + c.idx[j];
        put(c.att + 1, AM_DTYPE_F32, at, i == j ? 1.0 : 0.0);
        put(c.grad + 1, AM_DTYPE_F32, at, FLT_MAX);
      }
  check_case(&c, &opt, 1, "overflowing gradients");
  /* FLT_MAX only at token 5's own weight: step 5's sums overflow below the top layer (a
   * pass of its own, by the plain loops, as its single-target pass), steps 0 and 11 stay
   * on the sweeps */
  for (int b = 0; b < 2 * 2; b++)
    for (int i = 0; i < c.n; i++)
      for (int j = 0; j < c.n; j++)
        put(c.grad + 1, AM_DTYPE_F32, ((size_t)b * c.T + c.idx[i]) * c.T + c.idx[j],
            i == 5 && j == 5 ? FLT_MAX : uniform01() - 0.5);
  check_case(&c, &opt, 1, "one step's sums overflow");
  free_case(&c);
}

Test(steps, one_token_examples) {
  rng = 21;
  int32_t zero[2] = {0, 0};
  scase_t c;
  make_case(&c, 2, 3, 1, 3, 0, AM_DTYPE_F16, zero, 2);
  am_pass_options_t opt = {.want = STEP_BITS | AM_PASS_ROLLOUT,
                           .fusion = AM_FUSION_MAX,
                           .normalize = AM_NORMALIZE_MINMAX};
  check_case(&c, &opt, 2, "one token");
  opt.normalize = AM_NORMALIZE_NONE;
  check_case(&c, &opt, 1, "one token");
  free_case(&c);
}

/* Two layers, two heads, 6 tokens, steps {1, 2}, F32, and outputs for them. */
static void make_small(scase_t *c, souts_t *o, uint64_t seed) {
  static const int32_t st[2] = {1, 2};
  rng = seed;
  make_case(c, 2, 2, 6, 0, 0, AM_DTYPE_F32, st, 2);
  alloc_outs(o, c);
}

Test(steps, argument_errors) {
  scase_t c;
  souts_t o;
  make_small(&c, &o, 22);
  am_pass_options_t opt = {.want = STEP_BITS, .fusion = AM_FUSION_MEAN};
  cr_expect_eq(run(&c, &opt, 0, 1, 0, -1, &o), AM_STATUS_OK);
  static const int32_t bad[3] = {-1, 6, 100}; /* out of range: n = 6 */
  for (int k = 0; k < 3; k++) {
    c.steps[1] = bad[k];
    for (unsigned b = AM_PASS_ATTENTION_LAST_STEPS; b <= AM_PASS_GRAD_ROLLOUT_STEPS;
         b <<= 1) {
      opt.want = b;
      cr_expect_eq(run(&c, &opt, 1, 1, 0, -1, &o), AM_STATUS_INVALID_ARGUMENT,
                   "step %d, want 0x%x", bad[k], b);
    }
  }
  c.steps[1] = 2;
  c.S = 0; /* nsteps 0 with a *_STEPS bit */
  for (unsigned b = AM_PASS_ATTENTION_LAST_STEPS; b <= AM_PASS_GRAD_ROLLOUT_STEPS;
       b <<= 1) {
    opt.want = b;
    cr_expect_eq(run(&c, &opt, 1, 1, 0, -1, &o), AM_STATUS_INVALID_ARGUMENT, "nsteps 0");
  }
  c.S = 2;
  opt.want = AM_PASS_GRAD_ROLLOUT_STEPS;
  cr_expect_eq(run(&c, &opt, 1, 0, 0, -1, &o), AM_STATUS_INVALID_ARGUMENT, "no gradient");
  /* step_grad with a NULL layer */
  const void *att[2] = {c.att + 1, c.att + 1 + c.layer},
             *grad[2] = {c.grad + 1, c.grad + 1};
  const void *sgrad[2] = {c.sgrad + 1, NULL};
  am_example_t ex = {.L = 2,
                     .H = 2,
                     .T = c.T,
                     .n = c.n,
                     .dtype = c.dtype,
                     .att = att,
                     .grad = grad,
                     .idx = c.idx,
                     .nsteps = 2,
                     .steps = c.steps,
                     .step_grad = sgrad};
  am_pass_output_t out = {.grad_rollout_steps = o.gsteps, .rollout_steps = o.rsteps};
  am_cpu_scratch_t scratch = {0};
  cr_expect_eq(am_cpu_example_pass(&ex, &opt, &out, &scratch, NULL),
               AM_STATUS_INVALID_ARGUMENT, "step_grad with a NULL layer");
  opt.want = AM_PASS_ROLLOUT_STEPS; /* the output pointer missing */
  out.rollout_steps = NULL;
  cr_expect_eq(am_cpu_example_pass(&ex, &opt, &out, &scratch, NULL),
               AM_STATUS_INVALID_ARGUMENT, "no output");
  am_cpu_scratch_free(&scratch);
  free_outs(&o);
  free_case(&c);
}

Test(steps, a_bad_step_gradient_is_a_fault) {
  scase_t c;
  souts_t o;
  make_small(&c, &o, 23);
  /* layer 0, step 1, head 1, row 3, key 2 */
  size_t at = (((size_t)(0 * 2 + 1) * 2 + 1) * c.T + 3) * c.T + 2;
  put(c.sgrad + 1, AM_DTYPE_F32, at, NAN);
  am_pass_options_t opt = {.want = AM_PASS_GRAD_ROLLOUT_STEPS, .fusion = AM_FUSION_MEAN};
  for (int simd = 0; simd < 2; simd++)
    cr_expect_eq(run(&c, &opt, simd, 2, 0, -1, &o), AM_STATUS_BAD_INPUT);
  free_outs(&o);
  free_case(&c);
}
