/* example.h — one example as the backends see it, what a pass is asked for (options, wanted
 * outputs) and what it answers (outputs, fault): the types every backend implements
 * (backend.h), independent of any backend (docs/design.md §5). */
#ifndef AM_OPS_EXAMPLE_H
#define AM_OPS_EXAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "attnmap.h"
#include "ops/lists.h"

/* Target of the row form: a valid-token index, or AM_ROW_MEAN for the mean of all rows. */
#define AM_ROW_MEAN (-1)

/* One example as stored: its layers in the file's dtype, padded to T, valid positions idx.
 */
typedef struct am_example {
  int L, H, T;
  int n;          /* valid tokens */
  am_dtype dtype; /* F32, F16, BF16 or F64 */
  const void *const
      *att; /* [L]: this example's [H,T,T] block of layer l (maybe unaligned) */
  const void *const *grad; /* [L] like att, or NULL when there are no gradients */
  const int32_t *idx;      /* [n] valid positions, increasing, each < T */
  int target;              /* valid-token index in [0,n), or AM_ROW_MEAN */
  /* Several targets (docs/generation.md): the *_STEPS outputs give one row per step,
   * row s equal to the single-target output for target steps[s]. */
  int nsteps; /* steps (0: none; the *_STEPS outputs need >= 1) */
  const int32_t
      *steps; /* [nsteps] valid-token indices in [0,n) (any order, repeats allowed) */
  const void *const *step_grad; /* [L]: layer l's [nsteps,H,T,T] block of per-step gradients
                                   (step s's own score; dtype as att), or NULL: every step
                                   uses grad */
} am_example_t;

/* A ViT-style patch grid: `prefix` tokens (CLS, ...) then rows x cols patches. */
typedef struct am_grid {
  int rows, cols, prefix; /* rows == 0: no grid */
} am_grid_t;

/* What an output of the pass needs besides its pointer (check.c). */
#define AM_NEEDS_TARGET 1u /* ex->target in range (or AM_ROW_MEAN) */
#define AM_NEEDS_GRAD 2u   /* ex->grad */
#define AM_NEEDS_FUSED 4u  /* the head fusion: discard in [0,1) */
#define AM_NEEDS_STEPS 8u  /* ex->nsteps >= 1 and ex->steps[] in [0,n) */

/* Every output of the pass, once, in bit order: its name (AM_PASS_<NAME> = 1u << its
 * place), its am_pass_output_t field, what it needs. check.c and am_pass_output_slot
 * read this list; a new output is a line here and a field below. */
#define AM_PASS_OUTPUT_LIST(X)                                                             \
  X(ATTENTION_LAST, attention_last, AM_NEEDS_TARGET)                                       \
  X(ROLLOUT, rollout, AM_NEEDS_TARGET | AM_NEEDS_FUSED)                                    \
  X(GRAD_ROLLOUT, grad_rollout, AM_NEEDS_TARGET | AM_NEEDS_GRAD)                           \
  X(ROLLOUT_ROWS, rollout_rows, AM_NEEDS_FUSED)                                            \
  X(GRAD_ROLLOUT_ROWS, grad_rollout_rows, AM_NEEDS_GRAD)                                   \
  X(HEAD_STATS, head_stats, 0u)                                                            \
  X(HEAD_IMPORTANCE, head_importance, AM_NEEDS_GRAD)                                       \
  X(ATTENTION_LAST_STEPS, attention_last_steps, AM_NEEDS_STEPS)                            \
  X(ROLLOUT_STEPS, rollout_steps, AM_NEEDS_STEPS | AM_NEEDS_FUSED)                         \
  X(GRAD_ROLLOUT_STEPS, grad_rollout_steps, AM_NEEDS_STEPS | AM_NEEDS_GRAD)

enum {
#define AM_PASS_PLACE_(name, field, needs) AM_PASS_PLACE_##name,
  AM_PASS_OUTPUT_LIST(AM_PASS_PLACE_)
#undef AM_PASS_PLACE_
      AM_PASS_OUTPUT_COUNT
};
enum {
#define AM_PASS_BIT_(name, field, needs) AM_PASS_##name = 1u << AM_PASS_PLACE_##name,
  AM_PASS_OUTPUT_LIST(AM_PASS_BIT_)
#undef AM_PASS_BIT_
};

typedef struct am_pass_options {
  unsigned want; /* AM_PASS_* bits; GRAD_* and HEAD_IMPORTANCE need ex->grad */
  am_fusion fusion;
  double discard;         /* [0,1) */
  am_normalize normalize; /* applied to the rollout and grad_rollout rows (not *_ROWS) */
  am_grid_t grid;         /* for the distance statistic */
  double row_tolerance;   /* |row sum - 1| allowed; 0 = am_row_sum_tolerance(dtype) */
  int device_pointers;    /* 1: ex->att / ex->grad are CUDA device pointers (from
                             am_analyze_arrays); only the cuda backend is given them */
} am_pass_options_t;

/* Outputs in valid-token order; a pointer is used only when its bit is wanted. */
typedef struct am_pass_output {
  float *attention_last; /* [n] row `target` of mean_h A_L (mean of rows for AM_ROW_MEAN) */
  float *rollout;        /* [n] */
  float *grad_rollout;   /* [n] */
  float *rollout_rows;   /* [n,n] */
  float *grad_rollout_rows; /* [n,n] */
  float *head_stats;        /* [AM_STAT_COUNT,L,H] */
  float *head_importance;   /* [L,H]: sum_i |sum_j a_ij g_ij| */
  /* [nsteps, n]: row s as attention_last / rollout / grad_rollout with target steps[s]
   * (normalised per row; grad_rollout_steps row s from step_grad's step s when given) */
  float *attention_last_steps;
  float *rollout_steps;
  float *grad_rollout_steps;
} am_pass_output_t;

/* Where the input was found wrong. */
typedef enum am_fault_kind {
  AM_FAULT_NONE = 0,
  AM_FAULT_ATT_NOT_FINITE,  /* NaN or infinity in attentions */
  AM_FAULT_ATT_NEGATIVE,    /* a negative attention weight */
  AM_FAULT_ATT_ROW_SUM,     /* a valid row does not sum to 1 over the valid keys */
  AM_FAULT_GRAD_NOT_FINITE, /* NaN or infinity in attention_grads */
} am_fault_kind;

typedef struct am_fault {
  am_fault_kind kind;
  int layer, head, row; /* row: valid-token index of the query */
  double value;         /* the offending value or row sum */
} am_fault_t;

/* The AM_PASS_* bits of the outputs that need any of what (AM_NEEDS_* bits). */
unsigned am_pass_needing(unsigned what);
/* The field of out that receives the output of bit (one AM_PASS_* bit), or NULL. */
float **am_pass_output_slot(am_pass_output_t *out, unsigned bit);

/* 1 for the float dtypes attentions may be stored in: F32, F16, BF16, F64 (check.c). */
int am_ops_float_dtype(am_dtype d);
/* What a fault kind of the matrix form means, in words (static string; check.c). */
const char *am_fault_text(am_fault_kind k);

/* Tolerance on |row sum - 1| for attentions stored in dtype. */
double am_row_sum_tolerance(am_dtype dtype);

/* 1 when every output that want asks for has its pointer (check.c). */
int am_ops_outputs_present(unsigned want, const am_pass_output_t *out);
/* 1 when the n valid positions idx[] increase strictly within [0, T) and, where want
 * needs a target, target is AM_ROW_MEAN or a valid index (< n): the check the matrix and
 * the long-context form share (check.c, long_check.c). */
int am_ops_positions_ok(const int32_t *idx, int n, int T, int target, unsigned want);

/* The argument checks every backend's example pass makes before reading anything
 * (check.c): shapes, dtype, the wanted outputs present, layer pointers, increasing valid
 * positions below T, the target, the discard ratio and the fusion.
 * AM_STATUS_INVALID_ARGUMENT on the first that fails, else AM_STATUS_OK. */
am_status am_ops_check_example(const am_example_t *ex, const am_pass_options_t *opt,
                               const am_pass_output_t *out);

#endif
