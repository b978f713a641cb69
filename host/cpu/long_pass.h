/* long_pass.h — the CPU backend's pass over a batch of long-context examples
 * (docs/long-context.md): rollout, gradient-weighted rollout, the last layer's attention,
 * the per-head statistics and head importance, every one equal to the matrix form's
 * (example_pass.h) on the attention that Q and K define. */
#ifndef AM_CPU_LONG_PASS_H
#define AM_CPU_LONG_PASS_H

#include "ops/example.h"
#include "ops/long_example.h"

/* Runs every wanted analysis on nex examples, with `threads` OpenMP threads over the
 * (example, head) pairs of each layer, layers from the top down. out[e] as for the matrix
 * form (no *_ROWS). The results do not depend on threads or on how examples are batched.
 * Errors: AM_STATUS_INVALID_ARGUMENT (am_lc_check_example), AM_STATUS_OUT_OF_MEMORY,
 * AM_STATUS_BAD_INPUT with *fault and *fault_example (the lowest failing example; in it the
 * highest layer, then the lowest head and row): a value of Q, K, V or dO not finite, or a
 * score that overflowed. */
am_status am_cpu_lc_pass(const am_lc_example_t *ex, int nex, const am_pass_options_t *opt,
                         am_pass_output_t *out, int threads, am_fault_t *fault,
                         int *fault_example);

/* The same with the per-tile loops that go with the given matrix-form kernels
 * (long_kernels.h: the AVX2 set with the AVX2 sweeps, else the plain set);
 * am_cpu_lc_pass uses this CPU's fastest. Different sets differ in the last bits. */
struct am_cpu_kernels;
am_status am_cpu_lc_pass_with(const struct am_cpu_kernels *kernels,
                              const am_lc_example_t *ex, int nex,
                              const am_pass_options_t *opt, am_pass_output_t *out,
                              int threads, am_fault_t *fault, int *fault_example);

#endif
