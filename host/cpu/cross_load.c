/* cross_load.c — reading the inputs of the cross-attention maps (cpu/cross.h): the checks
 * of every valid value, and one layer's heads fused into a dense matrix of the valid
 * decoder rows by the valid keys (decoder tokens for the self-attention, source tokens for
 * the cross-attention). Values are read as float (F64 narrowed, F16/BF16 widened, as the
 * fused pass reads them); sums and fused values are double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "cpu/cross.h"

/* One input of one layer: its [H, T, Tk] block and the valid keys. */
typedef struct view {
  const void *data;
  am_dtype dtype;
  int Tk, nk;
  const int32_t *kidx;
} view_t;

static view_t view_of(const am_cross_example_t *ex, am_cross_input input, int l) {
  const am_example_t *d = &ex->dec;
  switch (input) {
  case AM_CROSS_IN_ATTENTIONS:
    return (view_t){d->att[l], d->dtype, d->T, d->n, d->idx};
  case AM_CROSS_IN_ATTENTION_GRADS:
    return (view_t){d->grad[l], d->dtype, d->T, d->n, d->idx};
  case AM_CROSS_IN_CROSS_ATTENTIONS:
    return (view_t){ex->cross[l], ex->dtype, ex->Tenc, ex->n_enc, ex->enc_idx};
  default:
    return (view_t){ex->cross_grad[l], ex->dtype, ex->Tenc, ex->n_enc, ex->enc_idx};
  }
}

/* Element (h, valid row i, valid key j) of v; T: the padded query length. */
static inline float at(const view_t *v, const am_cross_example_t *ex, int h, int i, int j) {
  int64_t q = (int64_t)h * ex->dec.T + ex->dec.idx[i];
  return am_load_float(v->data, v->dtype, q * v->Tk + v->kidx[j]);
}

unsigned am_cross_inputs_read(unsigned want) {
  unsigned in = 0;
  if (want)
    in |= 1u << AM_CROSS_IN_CROSS_ATTENTIONS;
  if (want & (AM_CROSS_ROLLOUT | AM_CROSS_GRAD_ROLLOUT))
    in |= 1u << AM_CROSS_IN_ATTENTIONS;
  if (want & AM_CROSS_GRAD_ROLLOUT)
    in |= 1u << AM_CROSS_IN_ATTENTION_GRADS;
  if (want & (AM_CROSS_GRAD_X_ATTENTION | AM_CROSS_GRAD_ROLLOUT))
    in |= 1u << AM_CROSS_IN_CROSS_ATTENTION_GRADS;
  return in;
}

static int fail(am_cross_fault_t *fault, am_cross_input input, am_fault_kind kind, int l,
                int h, int i, int j, double value) {
  fault->f = (am_fault_t){.kind = kind, .layer = l, .head = h, .row = i, .value = value};
  fault->input = input;
  fault->key = j;
  return 1;
}

/* One input of layer l; probabilities: the attention checks, else the gradient's. */
static int check_one(const am_cross_example_t *ex, am_cross_input input, int l, double tol,
                     am_cross_fault_t *fault) {
  view_t v = view_of(ex, input, l);
  int prob = input == AM_CROSS_IN_ATTENTIONS || input == AM_CROSS_IN_CROSS_ATTENTIONS;
  for (int h = 0; h < ex->dec.H; h++)
    for (int i = 0; i < ex->dec.n; i++) {
      double sum = 0.0;
      for (int j = 0; j < v.nk; j++) {
        float x = at(&v, ex, h, i, j);
        if (!isfinite(x))
          return fail(fault, input,
                      prob ? AM_FAULT_ATT_NOT_FINITE : AM_FAULT_GRAD_NOT_FINITE, l, h, i, j,
                      x);
        if (prob && x < 0.0f)
          return fail(fault, input, AM_FAULT_ATT_NEGATIVE, l, h, i, j, x);
        sum += x;
      }
      if (prob && !(fabs(sum - 1.0) <= tol))
        return fail(fault, input, AM_FAULT_ATT_ROW_SUM, l, h, i, -1, sum);
    }
  return 0;
}

int am_cross_check_values(const am_cross_example_t *ex, unsigned inputs,
                          const am_pass_options_t *opt, am_cross_fault_t *fault) {
  for (int l = ex->dec.L - 1; l >= 0; l--)
    for (int in = AM_CROSS_IN_ATTENTIONS; in <= AM_CROSS_IN_CROSS_ATTENTION_GRADS; in++) {
      if (!(inputs & (1u << in)))
        continue;
      am_dtype dt = in <= AM_CROSS_IN_ATTENTION_GRADS ? ex->dec.dtype : ex->dtype;
      double tol = opt->row_tolerance > 0.0 ? opt->row_tolerance : am_row_sum_tolerance(dt);
      if (check_one(ex, (am_cross_input)in, l, tol, fault))
        return 1;
    }
  return 0;
}

void am_cross_fuse(const am_cross_example_t *ex, am_cross_input input, int l, char how,
                   double *dst) {
  view_t v = view_of(ex, input, l);
  view_t g = how == 'g' ? view_of(ex, (am_cross_input)(input + 1), l) : v;
  int n = ex->dec.n, H = ex->dec.H;
  for (int h = 0; h < H; h++)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < v.nk; j++) {
        double a = at(&v, ex, h, i, j), x = a;
        if (how == 'g') { /* Chefer's rule 5: clamp per head, then mean */
          x = a * (double)at(&g, ex, h, i, j);
          x = x > 0.0 ? x : 0.0;
        }
        double *d = &dst[(size_t)i * v.nk + j];
        if (h == 0)
          *d = x;
        else if (how == 'x')
          *d = x > *d ? x : *d;
        else if (how == 'n')
          *d = x < *d ? x : *d;
        else
          *d += x;
      }
  if (how == 'm' || how == 'g')
    for (size_t k = 0; k < (size_t)n * v.nk; k++)
      dst[k] /= H;
}
