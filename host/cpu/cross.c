/* cross.c — decoder→encoder relevance of an encoder-decoder model, the CPU reference
 * (docs/analyses.md, "Encoder-decoder maps"). The rules are those of Chefer et al. 2021,
 * "Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
 * Transformers" (ICCV), as their Transformer-MM-Explainability code applies them to DETR's
 * decoder (DETR/modules/ExplanationGenerator.py, generate_ours without LRP): per decoder
 * layer, from the bottom,
 *   self-attention   Ā:  R^qq += Ā R^qq,  R^qs += Ā R^qs            (rules 6, 7)
 *   cross-attention  C̄:  R^qs += hr(R^qq)ᵀ C̄ hr(R^ss)                (rule 10, as coded)
 * with R^qq = I, R^qs = 0 at the start, hr the residual normalisation of eqs. 8-9
 * (hr(R) = rownorm(R − I) + I) and R^ss = I (no encoder self-attention in the dataset).
 * Departure: a row of R − I that sums to 0 stays 0 (hr keeps e_i), so hr(I) = I; the
 * authors' code divides 0 by 0 there and its NaN clean-up then drops the whole layer's
 * cross term. Whole matrices in double (CBLAS dgemm): n_dec and n_enc are seq2seq sizes. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cross.h"
#include "cpu/example_pass.h"

/* One variant's relevance and its work space: n decoder, m source tokens. */
typedef struct rules {
  double *rqq, *rqs; /* [n,n], [n,m] */
  double *tq, *ts;   /* [n,n], [n,m]: Ā R^qq and Ā R^qs before they are added */
  double *hr;        /* [n,n]: hr(R^qq) */
} rules_t;

/* hr(R) of eqs. 8-9: rows of R − I divided by their sums, then + I; a zero row stays 0. */
static void residual_normalise(const double *r, double *hr, int n) {
  for (int i = 0; i < n; i++) {
    const double *ri = r + (size_t)i * n;
    double *hi = hr + (size_t)i * n, sum = 0.0;
    for (int j = 0; j < n; j++)
      sum += ri[j] - (i == j);
    for (int j = 0; j < n; j++)
      hi[j] = sum > 0.0 ? (ri[j] - (i == j)) / sum : 0.0;
    hi[i] += 1.0;
  }
}

/* One decoder layer: the self-attention rules with abar [n,n], then the cross-attention
 * rule with cbar [n,m]. */
static void rules_layer(rules_t *r, const double *abar, const double *cbar, int n, int m) {
  /* tq = Ā R^qq, ts = Ā R^qs (both from the relevance before this layer) */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, abar, n, r->rqq, n,
              0.0, r->tq, n);
  if (m > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, n, 1.0, abar, n, r->rqs, m,
                0.0, r->ts, m);
  for (size_t k = 0; k < (size_t)n * n; k++)
    r->rqq[k] += r->tq[k];
  for (size_t k = 0; k < (size_t)n * m; k++)
    r->rqs[k] += r->ts[k];
  /* R^qs += hr(R^qq)ᵀ C̄ (hr(R^ss) = hr(I) = I) */
  residual_normalise(r->rqq, r->hr, n);
  if (m > 0)
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, m, n, 1.0, r->hr, n, cbar, m,
                1.0, r->rqs, m);
}

static int rules_alloc(rules_t *r, int n, int m) {
  size_t nn = (size_t)n * n, nm = (size_t)n * m;
  r->rqq = calloc(nn, sizeof *r->rqq);
  r->rqs = calloc(nm ? nm : 1, sizeof *r->rqs);
  r->tq = malloc(nn * sizeof *r->tq);
  r->ts = malloc((nm ? nm : 1) * sizeof *r->ts);
  r->hr = malloc(nn * sizeof *r->hr);
  if (!r->rqq || !r->rqs || !r->tq || !r->ts || !r->hr)
    return 0;
  for (int i = 0; i < n; i++)
    r->rqq[(size_t)i * n + i] = 1.0;
  return 1;
}

static void rules_free(rules_t *r) {
  free(r->rqq);
  free(r->rqs);
  free(r->tq);
  free(r->ts);
  free(r->hr);
}

/* out[s, :] <- src[steps[s], :] as float for s in [s0, s1), then the readout
 * normalisation when asked. */
static void write_steps(const am_example_t *d, const double *src, int m, float *out,
                        am_normalize normalize, int s0, int s1) {
  for (int s = s0; s < s1; s++) {
    const double *row = src + (size_t)d->steps[s] * m;
    float *o = out + (size_t)s * m;
    for (int j = 0; j < m; j++)
      o[j] = (float)row[j];
    am_cpu_normalize(o, m, normalize);
  }
}

static char fusion_code(am_fusion f) {
  return f == AM_FUSION_MAX ? 'x' : f == AM_FUSION_MIN ? 'n' : 'm';
}

/* The maps of want from the attentions and the gradients ex holds (dec.grad, cross_grad),
 * written to the rows s0..s1-1 of the steps. */
static am_status maps(const am_cross_example_t *ex, unsigned want,
                      const am_pass_options_t *opt, am_cross_output_t *out, int s0,
                      int s1) {
  const am_example_t *d = &ex->dec;
  int n = d->n, m = ex->n_enc, L = d->L;
  int roll = (want & AM_CROSS_ROLLOUT) != 0, grad = (want & AM_CROSS_GRAD_ROLLOUT) != 0;
  int gxa = (want & AM_CROSS_GRAD_X_ATTENTION) != 0;
  size_t nn = (size_t)n * n, nm = (size_t)n * m + 1;
  rules_t rr = {0}, rg = {0};
  double *abar = malloc(nn * sizeof *abar), *cbar = malloc(nm * sizeof *cbar);
  double *gsum = gxa ? calloc(nm, sizeof *gsum) : NULL;
  am_status st = AM_STATUS_OUT_OF_MEMORY;
  if (!abar || !cbar || (gxa && !gsum) || (roll && !rules_alloc(&rr, n, m)) ||
      (grad && !rules_alloc(&rg, n, m)))
    goto done;
  for (int l = 0; l < L; l++) {
    if (roll) {
      am_cross_fuse(ex, AM_CROSS_IN_ATTENTIONS, l, fusion_code(opt->fusion), abar);
      am_cross_fuse(ex, AM_CROSS_IN_CROSS_ATTENTIONS, l, fusion_code(opt->fusion), cbar);
      rules_layer(&rr, abar, cbar, n, m);
    }
    if (grad || gxa)
      am_cross_fuse(ex, AM_CROSS_IN_CROSS_ATTENTIONS, l, 'g', cbar);
    if (gxa)
      for (size_t k = 0; k < nm - 1; k++)
        gsum[k] += cbar[k];
    if (grad) {
      am_cross_fuse(ex, AM_CROSS_IN_ATTENTIONS, l, 'g', abar);
      rules_layer(&rg, abar, cbar, n, m);
    }
  }
  if (want & AM_CROSS_ATTENTION_LAST) { /* head mean, as attention_last, whatever fusion */
    am_cross_fuse(ex, AM_CROSS_IN_CROSS_ATTENTIONS, L - 1, 'm', cbar);
    write_steps(d, cbar, m, out->attention_last, AM_NORMALIZE_NONE, s0, s1);
  }
  if (gxa)
    write_steps(d, gsum, m, out->grad_x_attention, AM_NORMALIZE_NONE, s0, s1);
  if (roll)
    write_steps(d, rr.rqs, m, out->rollout, opt->normalize, s0, s1);
  if (grad)
    write_steps(d, rg.rqs, m, out->grad_rollout, opt->normalize, s0, s1);
  st = AM_STATUS_OK;
done:
  free(abar);
  free(cbar);
  free(gsum);
  rules_free(&rr);
  rules_free(&rg);
  return st;
}

/* ex with step s's own gradients as its shared ones (ptr: room for 2L pointers): the
 * step's blocks where per-step gradients are given, else the shared gradients. */
static am_cross_example_t step_example(const am_cross_example_t *ex, int s,
                                       const void **ptr) {
  const am_example_t *d = &ex->dec;
  size_t self = (size_t)d->H * d->T * d->T * am_dtype_size(d->dtype);
  size_t cross = (size_t)d->H * d->T * ex->Tenc * am_dtype_size(ex->dtype);
  for (int l = 0; l < d->L; l++) {
    ptr[l] = d->step_grad ? (const char *)d->step_grad[l] + (size_t)s * self
                          : (d->grad ? d->grad[l] : NULL);
    ptr[d->L + l] = ex->step_cross_grad
                        ? (const char *)ex->step_cross_grad[l] + (size_t)s * cross
                        : (ex->cross_grad ? ex->cross_grad[l] : NULL);
  }
  am_cross_example_t e = *ex;
  e.dec.grad = ptr[0] ? ptr : NULL;
  e.cross_grad = ptr[d->L] ? ptr + d->L : NULL;
  return e;
}

am_status am_cpu_cross(const am_cross_example_t *ex, unsigned want,
                       const am_pass_options_t *opt, am_cross_output_t *out,
                       am_cross_fault_t *fault) {
  am_status st = am_cross_check_example(ex, want, opt, out);
  const am_example_t *d = &ex->dec;
  if (st != AM_STATUS_OK || d->n == 0 || d->nsteps == 0 || want == 0)
    return st;
  int per_step = (want & AM_CROSS_GRAD_MAPS) && (d->step_grad || ex->step_cross_grad);
  unsigned shared = per_step ? want & ~AM_CROSS_GRAD_MAPS : want;
  /* inputs read: those in per-step gradients are checked step by step, after the rest */
  unsigned read = am_cross_inputs_read(want), stepwise = 0;
  if (per_step && d->step_grad)
    stepwise |= read & 1u << AM_CROSS_IN_ATTENTION_GRADS;
  if (per_step && ex->step_cross_grad)
    stepwise |= read & 1u << AM_CROSS_IN_CROSS_ATTENTION_GRADS;
  fault->step = -1;
  if (am_cross_check_values(ex, read & ~stepwise, opt, fault))
    return AM_STATUS_BAD_INPUT;
  if (!per_step)
    return maps(ex, want, opt, out, 0, d->nsteps);
  const void **ptr = malloc(2 * (size_t)d->L * sizeof *ptr);
  if (!ptr)
    return AM_STATUS_OUT_OF_MEMORY;
  for (int s = 0; s < d->nsteps && st == AM_STATUS_OK; s++) {
    am_cross_example_t e = step_example(ex, s, ptr);
    if (am_cross_check_values(&e, stepwise, opt, fault)) {
      fault->step = s;
      st = AM_STATUS_BAD_INPUT;
    }
  }
  if (st == AM_STATUS_OK && shared)
    st = maps(ex, shared, opt, out, 0, d->nsteps);
  for (int s = 0; s < d->nsteps && st == AM_STATUS_OK; s++) {
    am_cross_example_t e = step_example(ex, s, ptr);
    st = maps(&e, want & AM_CROSS_GRAD_MAPS, opt, out, s, s + 1);
  }
  free(ptr);
  return st;
}

am_status am_cpu_cross_batch(const am_cross_example_t *ex, int nex, unsigned want,
                             const am_pass_options_t *opt, am_cross_output_t *out,
                             am_cross_fault_t *fault, int *fault_example, int threads) {
  am_status *st = malloc((size_t)(nex > 0 ? nex : 1) * sizeof *st);
  am_cross_fault_t *faults = calloc((size_t)(nex > 0 ? nex : 1), sizeof *faults);
  if (!st || !faults) {
    free(st);
    free(faults);
    return AM_STATUS_OUT_OF_MEMORY;
  }
  /* each example its own status and fault; the lowest failing one is reported */
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads > 0 ? threads : 1)
  for (int e = 0; e < nex; e++)
    st[e] = am_cpu_cross(&ex[e], want, opt, &out[e], &faults[e]);
  am_status result = AM_STATUS_OK;
  for (int e = 0; e < nex && result == AM_STATUS_OK; e++)
    if ((result = st[e]) != AM_STATUS_OK) {
      *fault = faults[e];
      *fault_example = e;
    }
  free(st);
  free(faults);
  return result;
}
