/* cross_example.h — one example of an encoder-decoder model as the cross-attention op sees
 * it (docs/generation.md, "Encoder-decoder models"): the decoder's self-attention (an
 * am_example_t whose steps are the decoder positions asked about), the decoder→encoder
 * attention of every decoder layer and its gradient, and the maps the op answers. The CPU
 * reference computes them (host/cpu/cross.c); a device backend leaves them to it. */
#ifndef AM_OPS_CROSS_EXAMPLE_H
#define AM_OPS_CROSS_EXAMPLE_H

#include <stdint.h>

#include "ops/example.h"

typedef struct am_cross_example {
  /* the decoder: L, H, T = Tdec, n = valid decoder tokens, att/grad [L] x [H,Tdec,Tdec],
   * idx, nsteps and steps[] (valid decoder-token indices), step_grad (below); target is
   * not read */
  am_example_t dec;
  int Tenc;                      /* padded source length */
  int n_enc;                     /* valid source tokens (0 is allowed: nothing to write) */
  const int32_t *enc_idx;        /* [n_enc] valid source positions, increasing, < Tenc */
  am_dtype dtype;                /* of cross and cross_grad: F32, F16, BF16 or F64 */
  const void *const *cross;      /* [L]: this example's [H,Tdec,Tenc] block of layer l */
  const void *const *cross_grad; /* [L] like cross, or NULL when there are no gradients */
  /* Per-step gradients (docs/generation.md, "Gradients per step"): [L]: layer l's
   * [nsteps,H,Tdec,Tenc] block, step s's own gradient in row s, or NULL. With them (or with
   * dec.step_grad, [L] x [nsteps,H,Tdec,Tdec]) the gradient maps' row s is computed from
   * step s's own gradients, each side falling back to the shared one when it has none. */
  const void *const *step_cross_grad;
} am_cross_example_t;

/* What a cross output needs besides the attentions. */
#define AM_CROSS_NEEDS_GRAD 1u       /* dec.grad or dec.step_grad (self-attention) */
#define AM_CROSS_NEEDS_CROSS_GRAD 2u /* cross_grad or step_cross_grad */

/* Every output, once, in bit order: name (AM_CROSS_<NAME>), field, needs. Each output is
 * [nsteps, n_enc], row s for decoder position steps[s], in valid source-token order. */
#define AM_CROSS_OUTPUT_LIST(X)                                                            \
  X(ATTENTION_LAST, attention_last, 0u)                                                    \
  X(GRAD_X_ATTENTION, grad_x_attention, AM_CROSS_NEEDS_CROSS_GRAD)                         \
  X(ROLLOUT, rollout, 0u)                                                                  \
  X(GRAD_ROLLOUT, grad_rollout, AM_CROSS_NEEDS_GRAD | AM_CROSS_NEEDS_CROSS_GRAD)

enum {
#define AM_CROSS_PLACE_(name, field, needs) AM_CROSS_PLACE_##name,
  AM_CROSS_OUTPUT_LIST(AM_CROSS_PLACE_)
#undef AM_CROSS_PLACE_
      AM_CROSS_OUTPUT_COUNT
};
enum {
#define AM_CROSS_BIT_(name, field, needs) AM_CROSS_##name = 1u << AM_CROSS_PLACE_##name,
  AM_CROSS_OUTPUT_LIST(AM_CROSS_BIT_)
#undef AM_CROSS_BIT_
};

typedef struct am_cross_output {
  float *attention_last;   /* row of mean_h C_{L-1} */
  float *grad_x_attention; /* row of sum_l mean_h max(0, Gc_l ⊙ C_l) */
  float *rollout;          /* R^qs of the head-fused attentions (opt->fusion) */
  float *grad_rollout;     /* R^qs of mean_h max(0, G ⊙ A) (Chefer et al. 2021) */
} am_cross_output_t;

/* Which input a fault is in (the am_fault_t kinds say what is wrong with it). */
typedef enum am_cross_input {
  AM_CROSS_IN_ATTENTIONS = 0,       /* attentions.{l}: the decoder's self-attention */
  AM_CROSS_IN_ATTENTION_GRADS,      /* attention_grads.{l} */
  AM_CROSS_IN_CROSS_ATTENTIONS,     /* cross_attentions.{l} */
  AM_CROSS_IN_CROSS_ATTENTION_GRADS /* cross_attention_grads.{l} */
} am_cross_input;

typedef struct am_cross_fault {
  am_fault_t f;         /* kind, layer, head, row (valid decoder index), value */
  am_cross_input input; /* where */
  int key;  /* valid key index (decoder or source token) of a bad value, or -1 */
  int step; /* >= 0: the value is in that step's own gradient (step_*_grads), else -1 */
} am_cross_fault_t;

/* The outputs computed from gradients. */
#define AM_CROSS_GRAD_MAPS (AM_CROSS_GRAD_X_ATTENTION | AM_CROSS_GRAD_ROLLOUT)

/* The field of out for one AM_CROSS_* bit, or NULL (cross_check.c). */
float **am_cross_output_slot(am_cross_output_t *out, unsigned bit);

/* The argument check of the op (cross_check.c): the decoder part as am_ops_positions_ok
 * with steps in [0,n), Tenc >= 1, enc_idx increasing below Tenc, dtypes, layer pointers,
 * what the wanted outputs need, their pointers, the fusion. AM_STATUS_INVALID_ARGUMENT on
 * the first that fails. */
am_status am_cross_check_example(const am_cross_example_t *ex, unsigned want,
                                 const am_pass_options_t *opt,
                                 const am_cross_output_t *out);

#endif
