/* example_pass.h — the CPU reference for one example: one read of each layer's attention
 * (and gradient) feeds rollout, gradient-weighted rollout, the per-head statistics, head
 * importance and the last-layer attention row (docs/design.md §3). */
#ifndef AM_CPU_EXAMPLE_PASS_H
#define AM_CPU_EXAMPLE_PASS_H

#include <stddef.h>
#include <stdint.h>

#include "attnmap.h"
#include "ops/example.h"

/* Per-thread workspace of a pass: scratch grown on demand, and the kernels the pass runs
 * with (row_sweep.h; NULL: the fastest for this CPU, set on first use). Zero-initialise,
 * free with am_cpu_scratch_free. */
typedef struct am_cpu_scratch {
  float *buf;
  size_t cap;       /* floats */
  double *steps;    /* several targets' rows (step_rows.c) */
  size_t steps_cap; /* doubles */
  const struct am_cpu_kernels *kernels;
} am_cpu_scratch_t;
void am_cpu_scratch_free(am_cpu_scratch_t *s);

/* Runs every wanted analysis on one example, reading each layer's attention (and
 * gradient) once, from the top layer down. Every input value read is checked: on a bad
 * value it returns AM_STATUS_BAD_INPUT with *fault filled and outputs unspecified.
 * n == 0: maps are left untouched, head_stats are NaN, head_importance 0.
 * AM_STATUS_OUT_OF_MEMORY when scratch cannot grow. */
am_status am_cpu_example_pass(const am_example_t *ex, const am_pass_options_t *opt,
                              am_pass_output_t *out, am_cpu_scratch_t *scratch,
                              am_fault_t *fault);

/* Readout normalisation of a row of n values, in place (docs/design.md §3). */
void am_cpu_normalize(float *v, int n, am_normalize how);

/* Token saliency from embeddings and their gradients of one example:
 * emb, grad: [T,D] in dtypes (F32/F16/BF16/F64), rows idx[0..n). out3: three [n] arrays
 * grad_l2 = ||g||_2, grad_x_input = sum_d g*x, abs_grad_x_input = |sum_d g*x|. */
void am_cpu_saliency(const void *emb, am_dtype emb_dtype, const void *grad,
                     am_dtype grad_dtype, int D, const int32_t *idx, int n, float *grad_l2,
                     float *grad_x_input, float *abs_grad_x_input);

#endif
