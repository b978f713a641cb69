/* test_cross.c — the decoder→encoder maps of an encoder-decoder model (host/cpu/cross.h)
 * and the dataset's cross tensors (host/dataset/cross.c).
 *
 * Golden values: tests/fixtures/cross_reference.h, written by
 * tests/fixtures/make_cross_reference.py, which re-creates the relevance rules of
 * hila-chefer/Transformer-MM-Explainability (DETR/modules/ExplanationGenerator.py:
 * avg_heads, apply_self_attention_rules, apply_mm_attention_rules with its transpose and
 * NaN clean-up, handle_residual) in float64 torch on the header's float32 inputs, with
 * attnmap's documented departures (R_ii = I un-normalised; a zero row of R_qq − I kept).
 * Cases: padding on both sides of the source and the decoder; decoder rows whose gradients
 * are 0 in every layer; a one-token decoder. Padded cells are set to NaN here: a result
 * that read one would not be finite. Tolerance: 1e-6 relative plus 1e-12 absolute (attnmap
 * works in double on the same float32 values; the results are rounded once to float,
 * 6e-8 relative). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnmap.h"
#include "cpu/cross.h"
#include "dataset/dataset.h"
#include "fixtures/cross_reference.h"
#include "support/dataset_builder.h"

#define RTOL 1e-6
#define ATOL 1e-12

typedef struct fx {
  const cross_case_t *c;
  float *att, *grad, *cross, *cgrad; /* padded copies, padding NaN */
  const void *pa[8], *pg[8], *pc[8], *pcg[8];
  am_cross_example_t ex;
} fx_t;

static float *copy_padded(const float *src, int L, int H, int T, int Tk, const int32_t *dv,
                          int n, const int32_t *kv, int nk) {
  size_t count = (size_t)L * H * T * Tk;
  float *dst = malloc(count * sizeof *dst);
  cr_assert(dst);
  for (size_t k = 0; k < count; k++)
    dst[k] = NAN;
  for (int l = 0; l < L; l++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < n; i++)
        for (int j = 0; j < nk; j++) {
          size_t at = (((size_t)l * H + h) * T + dv[i]) * Tk + kv[j];
          dst[at] = src[at];
        }
  return dst;
}

static void fx_make(fx_t *f, const cross_case_t *c) {
  memset(f, 0, sizeof *f);
  f->c = c;
  f->att = copy_padded(c->att, c->L, c->H, c->T, c->T, c->dec, c->n, c->dec, c->n);
  f->grad = copy_padded(c->grad, c->L, c->H, c->T, c->T, c->dec, c->n, c->dec, c->n);
  f->cross =
      copy_padded(c->cross, c->L, c->H, c->T, c->Tenc, c->dec, c->n, c->enc, c->n_enc);
  f->cgrad =
      copy_padded(c->cgrad, c->L, c->H, c->T, c->Tenc, c->dec, c->n, c->enc, c->n_enc);
  size_t self = (size_t)c->H * c->T * c->T, cr = (size_t)c->H * c->T * c->Tenc;
  for (int l = 0; l < c->L; l++) {
    f->pa[l] = f->att + l * self;
    f->pg[l] = f->grad + l * self;
    f->pc[l] = f->cross + l * cr;
    f->pcg[l] = f->cgrad + l * cr;
  }
  f->ex = (am_cross_example_t){.dec = {.L = c->L,
                                       .H = c->H,
                                       .T = c->T,
                                       .n = c->n,
                                       .dtype = AM_DTYPE_F32,
                                       .att = f->pa,
                                       .grad = f->pg,
                                       .idx = c->dec,
                                       .nsteps = c->nsteps,
                                       .steps = c->steps},
                               .Tenc = c->Tenc,
                               .n_enc = c->n_enc,
                               .enc_idx = c->enc,
                               .dtype = AM_DTYPE_F32,
                               .cross = f->pc,
                               .cross_grad = f->pcg};
}

static void fx_free(fx_t *f) {
  free(f->att);
  free(f->grad);
  free(f->cross);
  free(f->cgrad);
}

static void expect_close(const char *what, const char *name, const float *got,
                         const double *want, int count) {
  for (int k = 0; k < count; k++)
    cr_expect(isfinite(got[k]) && fabs(got[k] - want[k]) <= ATOL + RTOL * fabs(want[k]),
              "%s, %s[%d]: got %.9g, reference %.9g", name, what, k, (double)got[k],
              want[k]);
}

static am_pass_options_t options(am_fusion fusion, am_normalize normalize) {
  return (am_pass_options_t){.fusion = fusion, .normalize = normalize};
}

static const unsigned ALL = AM_CROSS_ATTENTION_LAST | AM_CROSS_GRAD_X_ATTENTION |
                            AM_CROSS_ROLLOUT | AM_CROSS_GRAD_ROLLOUT;

typedef struct outs {
  float *v[4];
  am_cross_output_t o;
} outs_t;

static void outs_make(outs_t *o, int count) {
  for (int k = 0; k < 4; k++) {
    o->v[k] = calloc((size_t)count + 1, sizeof(float));
    cr_assert(o->v[k]);
  }
  o->o = (am_cross_output_t){o->v[0], o->v[1], o->v[2], o->v[3]};
}

static void outs_free(outs_t *o) {
  for (int k = 0; k < 4; k++)
    free(o->v[k]);
}

Test(cross, authors_rules_on_the_fixtures) {
  int ncases = (int)(sizeof cross_cases / sizeof cross_cases[0]);
  for (int k = 0; k < ncases; k++) {
    const cross_case_t *c = &cross_cases[k];
    fx_t f;
    fx_make(&f, c);
    int count = c->nsteps * c->n_enc;
    outs_t o, om;
    outs_make(&o, count);
    outs_make(&om, count);
    am_pass_options_t opt = options(AM_FUSION_MEAN, AM_NORMALIZE_NONE);
    am_cross_fault_t fault = {0};
    cr_assert_eq(am_cpu_cross(&f.ex, ALL, &opt, &o.o, &fault), AM_STATUS_OK, "%s", c->name);
    expect_close("attention_last", c->name, o.o.attention_last, c->attention_last, count);
    expect_close("grad_x_attention", c->name, o.o.grad_x_attention, c->grad_x_attention,
                 count);
    expect_close("rollout", c->name, o.o.rollout, c->rollout, count);
    expect_close("grad_rollout", c->name, o.o.grad_rollout, c->grad_rollout, count);
    opt.fusion =
        AM_FUSION_MAX; /* rollout follows --fusion; attention_last stays the mean */
    cr_assert_eq(am_cpu_cross(&f.ex, AM_CROSS_ROLLOUT | AM_CROSS_ATTENTION_LAST, &opt,
                              &om.o, &fault),
                 AM_STATUS_OK);
    expect_close("rollout (max)", c->name, om.o.rollout, c->rollout_max, count);
    expect_close("attention_last (max)", c->name, om.o.attention_last, c->attention_last,
                 count);
    outs_free(&o);
    outs_free(&om);
    fx_free(&f);
  }
}

/* The zero_grad_rows case: steps on decoder rows whose gradients are 0 in every layer get
 * an all-zero grad_rollout row (the authors' code: NaN, then 0 for the whole layer). */
Test(cross, zero_gradient_row_is_zero) {
  const cross_case_t *c = &cross_cases[1];
  cr_assert_eq(c->steps[1], 3);
  for (int j = 0; j < c->n_enc; j++) {
    cr_expect_eq(c->grad_rollout[c->n_enc + j], 0.0);
    cr_expect_eq(c->grad_x_attention[c->n_enc + j], 0.0);
  }
  int nonzero = 0;
  for (int j = 0; j < c->n_enc; j++)
    nonzero += c->grad_rollout[j] != 0.0;
  cr_expect_eq(nonzero, c->n_enc, "step 1 keeps its cross term");
}

Test(cross, batch_threads_and_normalize) {
  fx_t f[3];
  outs_t o[3], on[3];
  am_cross_example_t ex[3];
  am_cross_output_t out[3], outn[3];
  for (int k = 0; k < 3; k++) {
    fx_make(&f[k], &cross_cases[k]);
    ex[k] = f[k].ex;
    outs_make(&o[k], cross_cases[k].nsteps * cross_cases[k].n_enc);
    outs_make(&on[k], cross_cases[k].nsteps * cross_cases[k].n_enc);
    out[k] = o[k].o;
    outn[k] = on[k].o;
  }
  am_pass_options_t opt = options(AM_FUSION_MEAN, AM_NORMALIZE_NONE);
  am_cross_fault_t fault;
  int bad = -1;
  cr_assert_eq(am_cpu_cross_batch(ex, 3, ALL, &opt, out, &fault, &bad, 3), AM_STATUS_OK);
  opt.normalize = AM_NORMALIZE_MAX;
  cr_assert_eq(am_cpu_cross_batch(ex, 3, ALL, &opt, outn, &fault, &bad, 2), AM_STATUS_OK);
  for (int k = 0; k < 3; k++) {
    const cross_case_t *c = &cross_cases[k];
    int m = c->n_enc;
    expect_close("grad_rollout (batch)", c->name, out[k].grad_rollout, c->grad_rollout,
                 c->nsteps * m);
    for (int s = 0; s < c->nsteps; s++) {
      double hi = 0.0;
      for (int j = 0; j < m; j++)
        hi = fmax(hi, c->rollout[s * m + j]);
      for (int j = 0; j < m; j++) /* --normalize applies to the rollouts, not the others */
        cr_expect(fabs(outn[k].rollout[s * m + j] - c->rollout[s * m + j] / hi) < 1e-6);
      cr_expect_eq(outn[k].attention_last[s * m], out[k].attention_last[s * m]);
    }
    outs_free(&o[k]);
    outs_free(&on[k]);
    fx_free(&f[k]);
  }
}

/* A bad value: the fault names the input, layer, head, row and key; layers from the top. */
Test(cross, faults) {
  const cross_case_t *c = &cross_cases[0];
  fx_t f;
  fx_make(&f, c);
  outs_t o;
  outs_make(&o, c->nsteps * c->n_enc);
  am_pass_options_t opt = options(AM_FUSION_MEAN, AM_NORMALIZE_NONE);
  am_cross_fault_t fault;
  size_t T = (size_t)c->T, Te = (size_t)c->Tenc, H = (size_t)c->H;
  /* layer 0, head 1, decoder row 2, source key 3: NaN; layer 1, head 0, row 4: row sum */
  size_t bad0 = ((0 * H + 1) * T + (size_t)c->dec[2]) * Te + (size_t)c->enc[3];
  size_t bad1 = ((1 * H + 0) * T + (size_t)c->dec[4]) * Te + (size_t)c->enc[0];
  float keep0 = f.cross[bad0], keep1 = f.cross[bad1];
  f.cross[bad0] = NAN;
  cr_assert_eq(am_cpu_cross(&f.ex, AM_CROSS_ATTENTION_LAST, &opt, &o.o, &fault),
               AM_STATUS_BAD_INPUT);
  cr_expect_eq(fault.input, AM_CROSS_IN_CROSS_ATTENTIONS);
  cr_expect_eq(fault.f.kind, AM_FAULT_ATT_NOT_FINITE);
  cr_expect(fault.f.layer == 0 && fault.f.head == 1 && fault.f.row == 2 && fault.key == 3);
  f.cross[bad1] += 0.01f;
  cr_assert_eq(am_cpu_cross(&f.ex, AM_CROSS_ATTENTION_LAST, &opt, &o.o, &fault),
               AM_STATUS_BAD_INPUT);
  cr_expect(fault.f.kind == AM_FAULT_ATT_ROW_SUM && fault.f.layer == 1 && fault.f.row == 4,
            "the top layer is checked first: kind %d layer %d", fault.f.kind,
            fault.f.layer);
  f.cross[bad0] = keep0;
  f.cross[bad1] = -keep1;
  cr_assert_eq(am_cpu_cross(&f.ex, AM_CROSS_ATTENTION_LAST, &opt, &o.o, &fault),
               AM_STATUS_BAD_INPUT);
  cr_expect_eq(fault.f.kind, AM_FAULT_ATT_NEGATIVE);
  f.cross[bad1] = keep1;
  f.cgrad[bad0] = INFINITY; /* read only by the maps with gradients */
  cr_expect_eq(am_cpu_cross(&f.ex, AM_CROSS_ROLLOUT, &opt, &o.o, &fault), AM_STATUS_OK);
  cr_assert_eq(am_cpu_cross(&f.ex, AM_CROSS_GRAD_X_ATTENTION, &opt, &o.o, &fault),
               AM_STATUS_BAD_INPUT);
  cr_expect(fault.input == AM_CROSS_IN_CROSS_ATTENTION_GRADS &&
            fault.f.kind == AM_FAULT_GRAD_NOT_FINITE);
  f.cgrad[bad0] = 0.0f;
  size_t self = ((1 * H + 1) * T + (size_t)c->dec[3]) * T + (size_t)c->dec[1];
  f.att[self] = -0.5f;
  cr_assert_eq(am_cpu_cross(&f.ex, AM_CROSS_GRAD_ROLLOUT, &opt, &o.o, &fault),
               AM_STATUS_BAD_INPUT);
  cr_expect(fault.input == AM_CROSS_IN_ATTENTIONS &&
            fault.f.kind == AM_FAULT_ATT_NEGATIVE && fault.f.row == 3 && fault.key == 1);
  /* arguments: a step out of range, a missing gradient */
  f.att[self] = c->att[self];
  int32_t step = c->n;
  am_cross_example_t ex = f.ex;
  ex.dec.steps = &step;
  ex.dec.nsteps = 1;
  cr_expect_eq(am_cpu_cross(&ex, AM_CROSS_ROLLOUT, &opt, &o.o, &fault),
               AM_STATUS_INVALID_ARGUMENT);
  ex = f.ex;
  ex.cross_grad = NULL;
  cr_expect_eq(am_cpu_cross(&ex, AM_CROSS_GRAD_ROLLOUT, &opt, &o.o, &fault),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(am_cpu_cross(&ex, AM_CROSS_ROLLOUT, &opt, &o.o, &fault), AM_STATUS_OK);
  outs_free(&o);
  fx_free(&f);
}

/* Per-step gradients: step s's own blocks. Every step given the shared gradient gives the
 * shared maps; a step given zero gradients gets zero gradient rows; a bad value in a
 * step's block is reported with its step. */
Test(cross, per_step_gradients) {
  const cross_case_t *c = &cross_cases[0];
  fx_t f;
  fx_make(&f, c);
  int S = c->nsteps, count = S * c->n_enc;
  size_t self = (size_t)c->H * c->T * c->T, cr = (size_t)c->H * c->T * c->Tenc;
  float *sg = malloc(sizeof(float) * c->L * S * self);
  float *scg = malloc(sizeof(float) * c->L * S * cr);
  cr_assert(sg && scg);
  const void *psg[8], *pscg[8];
  for (int l = 0; l < c->L; l++) {
    for (int s = 0; s < S; s++) {
      memcpy(sg + ((size_t)l * S + s) * self, f.grad + l * self, self * sizeof(float));
      memcpy(scg + ((size_t)l * S + s) * cr, f.cgrad + l * cr, cr * sizeof(float));
    }
    psg[l] = sg + (size_t)l * S * self;
    pscg[l] = scg + (size_t)l * S * cr;
  }
  am_cross_example_t ex = f.ex;
  ex.dec.step_grad = psg;
  ex.step_cross_grad = pscg;
  ex.dec.grad = NULL; /* not needed when every side has per-step gradients */
  ex.cross_grad = NULL;
  outs_t o;
  outs_make(&o, count);
  am_pass_options_t opt = options(AM_FUSION_MEAN, AM_NORMALIZE_NONE);
  am_cross_fault_t fault;
  cr_assert_eq(am_cpu_cross(&ex, ALL, &opt, &o.o, &fault), AM_STATUS_OK);
  expect_close("grad_rollout (steps)", c->name, o.o.grad_rollout, c->grad_rollout, count);
  expect_close("grad_x_attention (steps)", c->name, o.o.grad_x_attention,
               c->grad_x_attention, count);
  expect_close("rollout (steps)", c->name, o.o.rollout, c->rollout, count);
  for (int l = 0; l < c->L; l++) { /* step 1: zero gradients */
    memset(sg + ((size_t)l * S + 1) * self, 0, self * sizeof(float));
    memset(scg + ((size_t)l * S + 1) * cr, 0, cr * sizeof(float));
  }
  cr_assert_eq(am_cpu_cross(&ex, ALL, &opt, &o.o, &fault), AM_STATUS_OK);
  int m = c->n_enc;
  for (int j = 0; j < m; j++) {
    cr_expect_eq(o.o.grad_rollout[m + j], 0.0f);
    cr_expect_eq(o.o.grad_x_attention[m + j], 0.0f);
  }
  expect_close("grad_rollout step 2", c->name, o.o.grad_rollout + 2 * m,
               c->grad_rollout + 2 * m, m);
  scg[((size_t)1 * S + 2) * cr + (size_t)c->dec[0] * c->Tenc + (size_t)c->enc[1]] = NAN;
  cr_assert_eq(am_cpu_cross(&ex, AM_CROSS_GRAD_X_ATTENTION, &opt, &o.o, &fault),
               AM_STATUS_BAD_INPUT);
  cr_expect(fault.step == 2 && fault.input == AM_CROSS_IN_CROSS_ATTENTION_GRADS &&
                fault.f.layer == 1 && fault.f.row == 0 && fault.key == 1,
            "step %d input %d layer %d", fault.step, fault.input, fault.f.layer);
  cr_expect_eq(am_cpu_cross(&ex, AM_CROSS_ROLLOUT, &opt, &o.o, &fault), AM_STATUS_OK);
  outs_free(&o);
  free(sg);
  free(scg);
  fx_free(&f);
}
