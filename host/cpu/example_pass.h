/* example_pass.h — the CPU reference for one example: one read of each layer's attention
 * (and gradient) feeds rollout, gradient-weighted rollout, the per-head statistics, head
 * importance and the last-layer attention row (DESIGN §3). */
#ifndef AM_CPU_EXAMPLE_PASS_H
#define AM_CPU_EXAMPLE_PASS_H

#include <stddef.h>
#include <stdint.h>

#include "attnmap.h"

/* Per-head statistics, in the order of the [AM_STAT_COUNT,L,H] output. */
#define AM_STAT_LIST(X)                                                                    \
  X(ENTROPY, "entropy")                                                                    \
  X(ENTROPY_NORM, "entropy_norm")                                                          \
  X(CONFIDENCE, "confidence")                                                              \
  X(TO_FIRST, "to_first")                                                                  \
  X(TO_LAST, "to_last")                                                                    \
  X(TO_SELF, "to_self")                                                                    \
  X(TO_PREV, "to_prev")                                                                    \
  X(TO_NEXT, "to_next")                                                                    \
  X(DISTANCE, "distance")

typedef enum am_stat {
#define AM_STAT_ENUM_(name, text) AM_STAT_##name,
  AM_STAT_LIST(AM_STAT_ENUM_)
#undef AM_STAT_ENUM_
      AM_STAT_COUNT
} am_stat;

const char *am_stat_name(am_stat stat); /* "entropy" */

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
} am_example_t;

/* A ViT-style patch grid: `prefix` tokens (CLS, ...) then rows x cols patches. */
typedef struct am_grid {
  int rows, cols, prefix; /* rows == 0: no grid */
} am_grid_t;

enum {
  AM_PASS_ATTENTION_LAST = 1u << 0,
  AM_PASS_ROLLOUT = 1u << 1,
  AM_PASS_GRAD_ROLLOUT = 1u << 2,
  AM_PASS_ROLLOUT_ROWS = 1u << 3,
  AM_PASS_GRAD_ROLLOUT_ROWS = 1u << 4,
  AM_PASS_HEAD_STATS = 1u << 5,
  AM_PASS_HEAD_IMPORTANCE = 1u << 6,
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

/* Tolerance on |row sum - 1| for attentions stored in dtype. */
double am_row_sum_tolerance(am_dtype dtype);

/* Per-thread scratch, grown on demand; zero-initialise, free with am_cpu_scratch_free. */
typedef struct am_cpu_scratch {
  float *buf;
  size_t cap; /* floats */
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

/* Readout normalisation of a row of n values, in place (DESIGN §3). */
void am_cpu_normalize(float *v, int n, am_normalize how);

/* Token saliency from embeddings and their gradients of one example:
 * emb, grad: [T,D] in dtypes (F32/F16/BF16/F64), rows idx[0..n). out3: three [n] arrays
 * grad_l2 = ||g||_2, grad_x_input = sum_d g*x, abs_grad_x_input = |sum_d g*x|. */
void am_cpu_saliency(const void *emb, am_dtype emb_dtype, const void *grad,
                     am_dtype grad_dtype, int D, const int32_t *idx, int n, float *grad_l2,
                     float *grad_x_input, float *abs_grad_x_input);

#endif
