/* long_example.h — one example in the long-context form (docs/design.md §2, §3a;
 * docs/long-context.md) as the backends see it: per layer the query, key, value and
 * attention-output-gradient states, from which every analysis but attention flow is
 * computed tile by tile without a T x T matrix. Independent of any backend. */
#ifndef AM_OPS_LONG_EXAMPLE_H
#define AM_OPS_LONG_EXAMPLE_H

#include <stdint.h>

#include "attnmap.h"
#include "ops/example.h"

/* How the model's attention turned Q and K into scores (metadata `attnmap.attention`):
 * S = scale Q K^T, then c tanh(S / c) when softcap c > 0 (Gemma 2's order), then the mask:
 * padding keys; with causal, keys after the query; with a sliding window w > 0, keys w or
 * more positions before the query (and, without causal, w or more after it). Positions
 * are the padded ones (idx), as the model's own mask saw them. */
typedef struct am_attention_spec {
  double scale;       /* > 0, finite */
  int causal;         /* 0 or 1 */
  int sliding_window; /* 0: none */
  double softcap;     /* 0: none */
} am_attention_spec_t;

typedef struct am_lc_example {
  int L, H, Hkv, T, d;  /* H a multiple of Hkv: query head h reads KV head h / (H / Hkv) */
  int n;                /* valid tokens */
  am_dtype dtype;       /* F32, F16 or BF16 */
  const void *const *q; /* [L]: this example's [H,T,d] block of layer l (maybe unaligned) */
  const void *const *k; /* [L]: [Hkv,T,d] */
  const void *const *v; /* [L]: [Hkv,T,d] */
  const void *const *dout; /* [L]: [H,T,d] d(target)/d(head output), or NULL */
  const int32_t *idx;      /* [n] valid positions, increasing, each < T */
  int target;              /* valid-token index in [0,n), or AM_ROW_MEAN */
  am_attention_spec_t attn;
} am_lc_example_t;

/* Fault kinds of the long-context form's input check (am_fault_t.kind; row is the
 * valid-token index of the offending position, head the query or KV head). */
enum {
  AM_FAULT_Q_NOT_FINITE = 100,
  AM_FAULT_K_NOT_FINITE,
  AM_FAULT_V_NOT_FINITE,
  AM_FAULT_DOUT_NOT_FINITE,
  AM_FAULT_SCORE_NOT_FINITE, /* a finite q, k whose scaled product overflowed */
};

/* Why options cannot be computed in the long-context form (a sentence for the user), or
 * NULL when they can: head fusion max/min and the discard ratio select among the weights of
 * a whole fused layer, and *_ROWS outputs are T x T themselves. */
const char *am_lc_refusal(const am_pass_options_t *opt);

/* The argument checks of a long-context pass (long_check.c), as am_ops_check_example:
 * AM_STATUS_INVALID_ARGUMENT on the first that fails (am_lc_refusal included). */
am_status am_lc_check_example(const am_lc_example_t *ex, const am_pass_options_t *opt,
                              const am_pass_output_t *out);

#endif
