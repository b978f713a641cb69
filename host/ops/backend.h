/* backend.h — the table of ops every backend implements (docs/design.md §5). The CPU
 * backend
 * (host/cpu/backend_cpu.c) is the reference; the CUDA backend (cuda/) implements the same
 * set. Handles are opaque; a backend's state is made by create and freed by destroy.
 * Backends include this and ops/; never each other (docs/architecture.md). */
#ifndef AM_OPS_BACKEND_H
#define AM_OPS_BACKEND_H

#include "attnmap.h"
#include "ops/cross_example.h"
#include "ops/example.h"
#include "ops/lists.h"
#include "ops/long_example.h"

typedef struct am_backend {
  const char *name;
  /* spec: what the user asked for ("cpu", "cuda", "cuda:1", "cuda:all"). Fills
   * ctx->device_name. AM_STATUS_NO_DEVICE when the backend has no device here. */
  am_status (*create)(am_ctx_t *ctx, const char *spec, void **state);
  void (*destroy)(void *state);

  /* The fused pass over a batch of examples: out[e] receives example e's outputs.
   * On bad input: AM_STATUS_BAD_INPUT, *fault and *fault_example say where (the lowest
   * failing example index, so that the report does not depend on thread timing). */
  am_status (*example_pass)(void *state, const am_example_t *ex, int nex,
                            const am_pass_options_t *opt, am_pass_output_t *out,
                            am_fault_t *fault, int *fault_example);

  /* Attention flow of a batch: out[e] receives example e's [n] flow map (as cpu/flow.h). */
  am_status (*flow)(void *state, const am_example_t *ex, int nex,
                    const am_pass_options_t *opt, float *const *out);

  /* Agreement of npairs vector pairs: pair p compares x[p] and y[p] of length m[p];
   * out: [npairs, AM_METRIC_COUNT]. */
  am_status (*agreement)(void *state, const float *const *x, const float *const *y,
                         const int *m, int npairs, int k, double *out);

  /* ---- optional (NULL: the pipeline does without) ---- */

  /* example_pass in two halves, so that a device works on one chunk while the host
   * writes the previous one: submit starts the pass and returns; ex, opt, out and what
   * they point to stay untouched by the caller until the matching wait, which returns
   * what example_pass would have. Batches are waited for in the order submitted; a
   * failed submit leaves nothing to wait for. */
  am_status (*pass_submit)(void *state, const am_example_t *ex, int nex,
                           const am_pass_options_t *opt, am_pass_output_t *out);
  am_status (*pass_wait)(void *state, am_fault_t *fault, int *fault_example);

  /* Examples per pipeline chunk for examples of bytes_per_example input bytes; 0: no
   * opinion (the pipeline's memory budget decides). */
  int (*chunk_examples)(void *state, uint64_t bytes_per_example);

  /* Token saliency of nex examples (every backend has it) as am_cpu_saliency: emb[e],
   * grad[e] [T,D] in their dtypes, rows idx[e][0..n[e]); out[3e+0..2]: grad_l2,
   * grad_x_input, abs_grad_x_input. */
  am_status (*saliency)(void *state, int nex, int D, const void *const *emb,
                        am_dtype emb_dtype, const void *const *grad, am_dtype grad_dtype,
                        const int32_t *const *idx, const int *n, float *const *out);

  /* ---- for the parity suites: device memory (NULL on a backend without any) ---- */

  /* F32/F16/BF16 elements widened to float on the backend's first device. */
  am_status (*widen)(void *state, am_dtype dtype, const void *src, size_t count,
                     float *dst);
  /* A device copy of bytes of host memory (NULL on failure), for the device-pointer path
   * (opt->device_pointers); device_free frees it. */
  void *(*device_copy)(void *state, const void *src, size_t bytes);
  void (*device_free)(void *state, void *p);

  /* ---- optional: the long-context form (docs/long-context.md; NULL: the pipeline says
   * the backend does not compute that form yet) ---- */

  /* example_pass for examples given as Q, K, V and dO: out[e] as there, no *_ROWS.
   * Faults as there, with the long_example.h kinds. */
  am_status (*long_pass)(void *state, const am_lc_example_t *ex, int nex,
                         const am_pass_options_t *opt, am_pass_output_t *out,
                         am_fault_t *fault, int *fault_example);

  /* ---- optional: the decoder→encoder maps of an encoder-decoder model (cross_example.h,
   * docs/generation.md; NULL: the pipeline runs them on the CPU reference beside the
   * device, ctx->reference) ---- */

  /* out[e] receives example e's maps of want (AM_CROSS_* bits). Faults as example_pass,
   * with the input they are in. */
  am_status (*cross)(void *state, const am_cross_example_t *ex, int nex, unsigned want,
                     const am_pass_options_t *opt, am_cross_output_t *out,
                     am_cross_fault_t *fault, int *fault_example);
} am_backend_t;

/* A backend built as a module of its own (libattnmap-<name>.so, loaded with dlopen by
 * backend/module.c only when it is asked for) exports one function of this name: it
 * returns its table, or NULL when the caller was built against another version of this
 * table or of the context (abi, the sizes). */
#define AM_BACKEND_ABI 2 /* 2: am_example_t's steps (several targets) */
#define AM_BACKEND_ENTRY "attnmap_backend_entry"
typedef const am_backend_t *(*am_backend_entry_fn)(int abi, size_t table_size,
                                                   size_t ctx_size);

#endif
