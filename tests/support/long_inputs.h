/* long_inputs.h — long-context inputs for the tests, made in C: random Q, K, V and dO of
 * one example (seeded), stored in F32/F16/BF16, and the matrix form of the same attention,
 * A = softmax_rows(mask(softcap(scale Q K^T))) and G = dO V^T, computed in double from the
 * stored (widened) values and rounded to F32: what a model run with eager attention would
 * have returned. The matrix form is what the long-context form is checked against. */
#ifndef TESTS_SUPPORT_LONG_INPUTS_H
#define TESTS_SUPPORT_LONG_INPUTS_H

#include <stdint.h>

#include "ops/example.h"
#include "ops/long_example.h"

typedef struct lc_case {
  int L, H, Hkv, T, d;
  int pad_left, pad_right; /* padding positions at each end */
  int hole_every;          /* > 0: every k-th position inside is padding too */
  am_attention_spec_t attn;
  am_dtype dtype;
  double sharp; /* the queries' spread (score scale); 1 if 0 */
  uint64_t seed;
} lc_case_t;

typedef struct lc_data {
  lc_case_t c;
  int n;
  int32_t *idx;                      /* [n] */
  void *q, *k, *v, *dout;            /* [L, H|Hkv, T, d] in c.dtype */
  const void **qp, **kp, **vp, **dp; /* [L] layer blocks */
  float *att, *grad;                 /* [L, H, T, T] matrix form */
  const void **ap, **gp;             /* [L] */
} lc_data_t;

/* Makes the inputs of c and their matrix form; 0 on success. */
int lc_data_make(lc_data_t *x, const lc_case_t *c);
void lc_data_free(lc_data_t *x);

/* The example as each form sees it (pointers into x). */
void lc_data_example(const lc_data_t *x, int target, am_lc_example_t *ex);
void lc_data_matrix_example(const lc_data_t *x, int target, am_example_t *ex);

/* One layer's scores s_ij of head h over the valid rows (double, -inf where masked, the
 * softcap applied): the formula of docs/design.md §3a, for the tests' own references. */
void lc_data_scores(const lc_data_t *x, int l, int h, double *s /* [n,n] */);

#endif
