/* cross.h — decoder→encoder maps of an encoder-decoder model, the CPU reference
 * (docs/generation.md "Encoder-decoder models", docs/analyses.md "Encoder-decoder maps"):
 * the checks of the inputs (cross_load.c) and the relevance rules (cross.c). */
#ifndef AM_CPU_CROSS_H
#define AM_CPU_CROSS_H

#include "ops/cross_example.h"

/* The maps `want` asks for (AM_CROSS_* bits) of one example, each [nsteps, n_enc]. Every
 * valid value of the inputs the wanted maps read is checked first (cross_load.c); on a
 * bad value AM_STATUS_BAD_INPUT with *fault filled and the outputs unspecified.
 * AM_STATUS_OUT_OF_MEMORY when its matrices cannot be had. nsteps == 0 or n == 0: nothing
 * is read or written. With per-step gradients (dec.step_grad, step_cross_grad) the gradient
 * maps run the rules once per step on that step's gradients (S times the work) and take
 * its row; those gradients are checked after the other inputs, step by step
 * (fault->step). */
am_status am_cpu_cross(const am_cross_example_t *ex, unsigned want,
                       const am_pass_options_t *opt, am_cross_output_t *out,
                       am_cross_fault_t *fault);

/* am_cpu_cross over nex examples, OpenMP threads across them; on bad input the fault of
 * the lowest failing example (*fault_example), whatever the thread timing. */
am_status am_cpu_cross_batch(const am_cross_example_t *ex, int nex, unsigned want,
                             const am_pass_options_t *opt, am_cross_output_t *out,
                             am_cross_fault_t *fault, int *fault_example, int threads);

/* ---- cross_load.c ---- */

/* Which inputs the maps of want read (1u << am_cross_input bits). */
unsigned am_cross_inputs_read(unsigned want);

/* Checks every valid value of the inputs in `inputs` (am_cross_inputs_read), layer by
 * layer from the top, then input (attentions, attention_grads, cross_attentions,
 * cross_attention_grads), head, row, key: attentions finite, >= 0 and each valid row
 * summing to 1 over the valid keys within the dtype's tolerance (opt->row_tolerance when
 * > 0); gradients finite. Returns 0, or 1 with *fault filled. */
int am_cross_check_values(const am_cross_example_t *ex, unsigned inputs,
                          const am_pass_options_t *opt, am_cross_fault_t *fault);

/* dst [n_rows, n_keys] (double) <- fuse over heads of layer l of `input`, cropped to the
 * valid rows and keys: how = 'm' head mean, 'x' max, 'n' min, 'g' mean_h max(0, G ⊙ A)
 * (input: the attentions, its gradient read beside it). */
void am_cross_fuse(const am_cross_example_t *ex, am_cross_input input, int l, char how,
                   double *dst);

#endif
