/* test_parity_ops.c — every backend under test (support/backends.c) against the
 * reference, the CPU's plain loops, continued (STYLE.md, "Tests: parity"; the fused pass's
 * shapes are in test_parity.c): the first fault of bad input and its order (lowest
 * example, top layer, head, row, then keys, row sum, gradient keys), rows at the edge of
 * the row-sum tolerance, argument errors, agreement (ties, constants, zero vectors, NaN,
 * k = 0), saliency in mixed dtypes, and every F16 and BF16 bit pattern through a device's
 * widening. A backend that cannot run here, or lacks what a test needs, reports a skip
 * naming it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "cpu/agreement.h"
#include "cpu/example_pass.h"
#include "ops/backend.h"
#include "support/backends.h"
#include "support/parity.h"

#define ALL 0x7Fu

static am_ctx_t *ref;   /* the reference: the CPU's plain loops */
static am_ctx_t *dut;   /* the backend under test's context, destroyed by teardown */
static const char *who; /* its name */

static void setup(void) {
  ref = par_reference();
  cr_assert_not_null(ref);
}

static void teardown(void) {
  am_ctx_destroy(dut);
  am_ctx_destroy(ref);
  dut = ref = NULL;
}

/* be's context of variant v; the test skips without one. */
static am_ctx_t *open_dut(const par_backend_t *be, par_variant v) {
  who = be->name;
  am_ctx_destroy(dut);
  dut = NULL;
  return dut = par_backend_open(be, v);
}

TestSuite(parity_ops, .init = setup, .fini = teardown, .timeout = 900);

/* ---- bad input: the same first fault ---------------------------------------------------
 */

typedef struct injection {
  int grad, l, e, h, i, j; /* valid-token coordinates */
  float value;             /* stored there, unless scale */
  float scale;             /* > 0: the whole attention row multiplied by it instead */
} injection_t;

static void inject(par_data_t *d, const injection_t *x) {
  const am_example_t *ex = &d->ex[x->e];
  const int pi = ex->idx[x->i];
  if (x->scale <= 0.0f) {
    par_store(d, x->grad, x->l, x->e, x->h, pi, ex->idx[x->j], x->value);
    return;
  }
  for (int j = 0; j < ex->n; j++) {
    const float v =
        am_load_float(par_at(d, 0, x->l, x->e, x->h, pi, ex->idx[j]), d->c.dtype, 0);
    par_store(d, 0, x->l, x->e, x->h, pi, ex->idx[j], v * x->scale);
  }
}

static void expect_fault_on(am_ctx_t *ctx, const par_case_t *c, const injection_t *xs,
                            int nx, am_status want) {
  par_data_t *d = par_make(c);
  for (int k = 0; k < nx; k++)
    inject(d, &xs[k]);
  par_out_t *want_out = par_out_make(d), *got = par_out_make(d);
  am_fault_t fc, fg;
  int bc, bg;
  const am_status sc = par_pass(ref, d, want_out, &fc, &bc),
                  sg = par_pass(ctx, d, got, &fg, &bg);
  cr_expect_eq(sc, want, "%s: reference status %d", c->name, sc);
  cr_expect_eq(sg, sc, "%s: %s status %d, reference %d: %s", c->name, who, sg, sc,
               am_last_error(ctx));
  if (sc == AM_STATUS_BAD_INPUT) {
    cr_expect_eq(bg, bc, "%s: fault example %s %d reference %d", c->name, who, bg, bc);
    cr_expect(fg.kind == fc.kind && fg.layer == fc.layer && fg.head == fc.head &&
                  fg.row == fc.row &&
                  (fg.value == fc.value || (isnan(fg.value) && isnan(fc.value))),
              "%s: %s fault kind %d l%d h%d row %d value %.17g; reference kind %d l%d h%d "
              "row %d value %.17g",
              c->name, who, fg.kind, fg.layer, fg.head, fg.row, fg.value, fc.kind, fc.layer,
              fc.head, fc.row, fc.value);
  }
  par_out_free(want_out);
  par_out_free(got);
  par_free(d);
}

PAR_TEST(parity_ops, first_fault_of_bad_input) {
  am_ctx_t *ctx = open_dut(be, PAR_PLAIN);
  /* masks cycle full, right, left, both, holes, (full), single */
  par_case_t c = {.name = "faults",
                  .L = 3,
                  .H = 3,
                  .T = 40,
                  .nex = 9,
                  .dtype = AM_DTYPE_F16,
                  .grads = 1,
                  .no_empty = 1,
                  .want = ALL,
                  .seed = 17};
  const injection_t nan_att[] = {{0, 1, 4, 2, 3, 5, NAN, 0}};
  const injection_t negative[] = {{0, 0, 2, 1, 0, 7, -0.25f, 0}};
  const injection_t infinite[] = {{0, 2, 3, 0, 9, 1, INFINITY, 0}};
  const injection_t row_sum[] = {{0, 1, 5, 2, 4, 0, 0, 1.5f}};
  const injection_t grad[] = {{1, 0, 5, 1, 2, 3, NAN, 0}, {1, 0, 5, 1, 2, 1, INFINITY, 0}};
  /* the lowest example wins; inside it the top layer, then the head, the row, and in the
   * row the attention keys before the row sum before the gradient keys */
  const injection_t order[] = {{0, 0, 7, 0, 0, 0, NAN, 0}, {0, 0, 3, 2, 5, 2, -1.0f, 0},
                               {0, 2, 3, 2, 5, 8, NAN, 0}, {0, 2, 3, 1, 9, 3, NAN, 0},
                               {1, 2, 3, 1, 4, 3, NAN, 0}, {0, 2, 3, 1, 4, 6, -0.5f, 0}};
  expect_fault_on(ctx, &c, nan_att, 1, AM_STATUS_BAD_INPUT);
  expect_fault_on(ctx, &c, negative, 1, AM_STATUS_BAD_INPUT);
  expect_fault_on(ctx, &c, infinite, 1, AM_STATUS_BAD_INPUT);
  expect_fault_on(ctx, &c, row_sum, 1, AM_STATUS_BAD_INPUT);
  expect_fault_on(ctx, &c, grad, 2, AM_STATUS_BAD_INPUT);
  expect_fault_on(ctx, &c, order, 6, AM_STATUS_BAD_INPUT);
  /* a negative weight too small to move the row sum */
  const injection_t tiny[] = {{0, 1, 0, 2, 6, 11, -1e-7f, 0}};
  expect_fault_on(ctx, &c, tiny, 1, AM_STATUS_BAD_INPUT);
  /* F32 rows just past and just inside the tolerance 4 * 2^-11 + 1e-5 = 1.963e-3: the
   * device's float screen must send both to the exact check */
  c.dtype = AM_DTYPE_F32;
  c.name = "row sum at the tolerance";
  const injection_t past[] = {{0, 2, 1, 0, 3, 0, 0, 1.00198f}};
  const injection_t inside[] = {{0, 2, 1, 0, 3, 0, 0, 1.00195f}};
  expect_fault_on(ctx, &c, past, 1, AM_STATUS_BAD_INPUT);
  expect_fault_on(ctx, &c, inside, 1, AM_STATUS_OK);
}

PAR_TEST(parity_ops, faults_across_slabs_and_devices) {
  /* slabs of a few examples on every device: a later slab may finish first, and the
   * lowest bad example must still be the one reported */
  par_case_t c = {.name = "faults, many slabs",
                  .L = 2,
                  .H = 3,
                  .T = 48,
                  .nex = 40,
                  .dtype = AM_DTYPE_F32,
                  .grads = 1,
                  .no_empty = 1,
                  .want = ALL,
                  .seed = 25};
  const injection_t two[] = {{0, 1, 33, 1, 2, 3, NAN, 0}, {1, 0, 9, 2, 0, 1, INFINITY, 0}};
  const injection_t late[] = {{0, 0, 38, 0, 0, 0, -1.0f, 0}};
  am_ctx_t *all = open_dut(be, PAR_ALL_DEVICES);
  expect_fault_on(all, &c, two, 2, AM_STATUS_BAD_INPUT);
  expect_fault_on(all, &c, late, 1, AM_STATUS_BAD_INPUT);
}

/* The batch of the argument tests. */
static const par_case_t args_case = {.name = "arguments",
                                     .L = 2,
                                     .H = 2,
                                     .T = 12,
                                     .nex = 6,
                                     .dtype = AM_DTYPE_F32,
                                     .grads = 1,
                                     .no_empty = 1,
                                     .want = ALL,
                                     .seed = 18};

PAR_TEST(parity_ops, argument_errors) {
  am_ctx_t *ctx = open_dut(be, PAR_PLAIN);
  par_data_t *d = par_make(&args_case);
  d->ex[4].target = d->ex[4].n; /* out of range */
  par_out_t *want = par_out_make(d), *got = par_out_make(d);
  am_fault_t f;
  int bc, bg;
  const am_status sc = par_pass(ref, d, want, &f, &bc), sg = par_pass(ctx, d, got, &f, &bg);
  cr_expect_eq(sc, AM_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(sg, sc);
  cr_expect_eq(bg, bc);
  /* a fault before the bad argument is the one reported */
  par_store(d, 0, 1, 1, 0, d->ex[1].idx[0], d->ex[1].idx[0], NAN);
  const am_status sc2 = par_pass(ref, d, want, &f, &bc),
                  sg2 = par_pass(ctx, d, got, &f, &bg);
  cr_expect_eq(sc2, AM_STATUS_BAD_INPUT);
  cr_expect_eq(sg2, sc2);
  cr_expect_eq(bg, 1);
  cr_expect_eq(bc, 1);
  par_out_free(want);
  par_out_free(got);
  par_free(d);
}

/* Several targets: a step out of range (or none) is the same argument error at the same
 * example on every backend; per-step gradients are computed (the CPU) or refused with
 * AM_STATUS_UNSUPPORTED (cuda: the pipeline then runs a pass per step). */
PAR_TEST(parity_ops, step_argument_errors) {
  am_ctx_t *ctx = open_dut(be, PAR_PLAIN);
  par_case_t c = args_case;
  c.want = AM_PASS_ROLLOUT_STEPS | AM_PASS_GRAD_ROLLOUT_STEPS;
  c.steps = 3;
  par_data_t *d = par_make(&c);
  par_out_t *want = par_out_make(d), *got = par_out_make(d);
  am_fault_t f;
  int bc, bg;
  for (int k = 0; k < 3; k++) {
    int32_t *st = d->steps + 3 * c.steps; /* example 3's */
    const int32_t keep = st[1];
    if (k < 2)
      st[1] = k == 0 ? d->ex[3].n : -1;
    else
      d->ex[3].nsteps = 0;
    const am_status sc = par_pass(ref, d, want, &f, &bc),
                    sg = par_pass(ctx, d, got, &f, &bg);
    cr_expect_eq(sc, AM_STATUS_INVALID_ARGUMENT, "case %d", k);
    cr_expect_eq(sg, sc, "case %d: %s", k, who);
    cr_expect_eq(bg, 3, "case %d: %s", k, who);
    cr_expect_eq(bc, 3, "case %d", k);
    st[1] = keep;
    d->ex[3].nsteps = c.steps;
  }
  /* every step's gradient the example's own: the rows of the shared gradient */
  const void **sg_ptrs = calloc((size_t)c.nex * c.L, sizeof *sg_ptrs);
  size_t block = (size_t)c.H * c.T * c.T * am_dtype_size(c.dtype);
  unsigned char *copies = malloc((size_t)c.nex * c.L * c.steps * block);
  for (int e = 0; e < c.nex; e++) {
    for (int l = 0; l < c.L; l++) {
      unsigned char *at = copies + ((size_t)e * c.L + l) * c.steps * block;
      for (int s = 0; s < c.steps; s++)
        memcpy(at + s * block, d->ex[e].grad[l], block);
      sg_ptrs[(size_t)e * c.L + l] = at;
    }
    d->ex[e].step_grad = sg_ptrs + (size_t)e * c.L;
  }
  cr_assert_eq(par_pass(ref, d, want, &f, &bc), AM_STATUS_OK);
  const am_status sg = par_pass(ctx, d, got, &f, &bg);
  cr_expect(sg == AM_STATUS_OK || sg == AM_STATUS_UNSUPPORTED, "%s: %d", who, sg);
  if (sg == AM_STATUS_OK)
    cr_expect_eq(par_compare(d, got, want, 1e-5, 1e-4), 0, "%s: per-step gradients", who);
  par_out_free(want);
  par_out_free(got);
  par_free(d);
  free(sg_ptrs);
  free(copies);
}

/* ---- agreement, saliency, widening ----------------------------------------------------
 */

PAR_TEST(parity_ops, agreement_metrics) {
  am_ctx_t *ctx = open_dut(be, PAR_PLAIN);
  enum { NP = 160 };
  static const int lens[] = {0, 1, 2, 3, 5, 17, 64, 129, 700, 3000};
  float *x[NP], *y[NP];
  int m[NP];
  uint64_t rng = 22;
  for (int p = 0; p < NP; p++) {
    m[p] = lens[p % 10];
    x[p] = malloc(((size_t)m[p] + 1) * sizeof(float));
    y[p] = malloc(((size_t)m[p] + 1) * sizeof(float));
    const int style = (p / 10) % 8;
    for (int i = 0; i < m[p]; i++) {
      float a = (float)par_uniform(&rng), b = (float)(0.5 * a + 0.5 * par_uniform(&rng));
      if (style == 1) /* many ties */
        a = floorf(a * 4) / 4, b = floorf(b * 3) / 3;
      if (style == 2) /* constant x */
        a = 0.25f;
      if (style == 3) /* zero y */
        b = 0.0f;
      if (style == 4 && i == m[p] / 2) /* a NaN */
        b = NAN;
      if (style == 5) /* signs, -0 and +0 */
        a = i % 3 == 0 ? -0.0f : a - 0.5f, b = i % 4 == 0 ? 0.0f : b - 0.5f;
      if (style == 6) /* identical */
        b = a;
      x[p][i] = a;
      y[p][i] = b;
    }
  }
  for (int k = 0; k <= 7; k += 7) { /* k = 0: top-k undefined; 7 */
    double *want = malloc((size_t)NP * AM_METRIC_COUNT * sizeof *want);
    double *got = malloc((size_t)NP * AM_METRIC_COUNT * sizeof *got);
    cr_assert_eq(ref->backend->agreement(ref->backend_state, (const float *const *)x,
                                         (const float *const *)y, m, NP, k, want),
                 AM_STATUS_OK);
    cr_assert_eq(ctx->backend->agreement(ctx->backend_state, (const float *const *)x,
                                         (const float *const *)y, m, NP, k, got),
                 AM_STATUS_OK, "%s: %s", who, am_last_error(ctx));
    for (int p = 0; p < NP; p++)
      for (int t = 0; t < AM_METRIC_COUNT; t++) {
        const double r = want[p * AM_METRIC_COUNT + t], g = got[p * AM_METRIC_COUNT + t];
        /* counts give exact values; sums in another order agree to ~1e-15 */
        const int exact = t == AM_METRIC_KENDALL || t == AM_METRIC_JACCARD ||
                          t == AM_METRIC_FEATURE_AGREEMENT || t == AM_METRIC_RANK_AGREEMENT;
        const int ok = (isnan(r) && isnan(g)) ||
                       (exact ? g == r : fabs(g - r) <= 1e-12 + 1e-9 * fabs(r));
        cr_expect(ok, "pair %d (m %d, style %d) k %d %s: %s %.17g reference %.17g", p, m[p],
                  (p / 10) % 8, k, am_metric_name((am_metric)t), who, g, r);
      }
    free(want);
    free(got);
  }
  for (int p = 0; p < NP; p++) {
    free(x[p]);
    free(y[p]);
  }
}

PAR_TEST(parity_ops, saliency_reductions) {
  am_ctx_t *ctx = open_dut(be, PAR_PLAIN);
  const am_backend_t *b = ctx->backend;
  cr_assert_not_null(b->saliency, "%s: no saliency op", who);
  enum { NEX = 5, T = 9, D = 67 };
  static const am_dtype types[][2] = {{AM_DTYPE_F32, AM_DTYPE_F32},
                                      {AM_DTYPE_F16, AM_DTYPE_BF16},
                                      {AM_DTYPE_F64, AM_DTYPE_F16}};
  uint64_t rng = 23;
  for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
    const am_dtype de = types[t][0], dg = types[t][1];
    unsigned char *emb = malloc((size_t)NEX * T * D * 8 + 3);
    unsigned char *grad = malloc((size_t)NEX * T * D * 8 + 3);
    const void *ep[NEX], *gp[NEX];
    int32_t idx[NEX][T];
    const int32_t *ip[NEX];
    int n[NEX];
    float want[NEX][3][T], got[NEX][3][T];
    float *outs[3 * NEX];
    for (int e = 0; e < NEX; e++) {
      ep[e] = emb + 1 + (size_t)e * T * D * am_dtype_size(de);
      gp[e] = grad + 3 + (size_t)e * T * D * am_dtype_size(dg);
      n[e] = e == 2 ? 0 : T - e;
      for (int i = 0; i < n[e]; i++) /* example 4: left padding */
        idx[e][i] = e == 4 ? i + (T - n[e]) : i;
      ip[e] = idx[e];
      for (int q = 0; q < T * D; q++) {
        const float a = (float)(2 * par_uniform(&rng) - 1);
        const float b = (float)(par_uniform(&rng) - 0.5);
        unsigned char *pe = (unsigned char *)ep[e] + (size_t)q * am_dtype_size(de);
        unsigned char *pg = (unsigned char *)gp[e] + (size_t)q * am_dtype_size(dg);
        if (de == AM_DTYPE_F64) {
          double v = a;
          memcpy(pe, &v, 8);
        } else if (de == AM_DTYPE_F16) {
          uint16_t h = am_f32_to_f16(a);
          memcpy(pe, &h, 2);
        } else {
          memcpy(pe, &a, 4);
        }
        if (dg == AM_DTYPE_BF16) {
          uint16_t h = am_f32_to_bf16(b);
          memcpy(pg, &h, 2);
        } else if (dg == AM_DTYPE_F16) {
          uint16_t h = am_f32_to_f16(b);
          memcpy(pg, &h, 2);
        } else {
          memcpy(pg, &b, 4);
        }
      }
      /* the reference: the CPU's saliency loop */
      am_cpu_saliency(ep[e], de, gp[e], dg, D, idx[e], n[e], want[e][0], want[e][1],
                      want[e][2]);
      for (int k = 0; k < 3; k++)
        outs[3 * e + k] = got[e][k];
    }
    cr_assert_eq(b->saliency(ctx->backend_state, NEX, D, ep, de, gp, dg, ip, n, outs),
                 AM_STATUS_OK, "%s: %s", who, am_last_error(ctx));
    for (int e = 0; e < NEX; e++)
      for (int k = 0; k < 3; k++)
        cr_expect_eq(par_compare_floats("saliency", got[e][k], want[e][k], (size_t)n[e],
                                        1e-6, "saliency", 23),
                     0, "%s: types %zu example %d output %d", who, t, e, k);
    free(emb);
    free(grad);
  }
}

PAR_TEST(parity_ops, widening_every_half_pattern) {
  am_ctx_t *ctx = open_dut(be, PAR_PLAIN);
  if (!ctx->backend->widen)
    cr_skip_test("%s: no device widening (widen)", who);
  static uint16_t bits[65536];
  static float got[65536];
  for (int i = 0; i < 65536; i++)
    bits[i] = (uint16_t)i;
  const am_dtype types[2] = {AM_DTYPE_F16, AM_DTYPE_BF16};
  for (int t = 0; t < 2; t++) {
    cr_assert_eq(ctx->backend->widen(ctx->backend_state, types[t], bits, 65536, got),
                 AM_STATUS_OK);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
      const float host = t == 0 ? am_f16_to_f32(bits[i]) : am_bf16_to_f32(bits[i]);
      const int same = isnan(host) ? isnan(got[i]) : memcmp(&host, &got[i], 4) == 0;
      if (!same && bad++ < 3)
        cr_expect(same, "%s 0x%04x: %s %a host %a", am_dtype_name(types[t]), i, who, got[i],
                  host);
    }
    cr_expect_eq(bad, 0);
  }
}
