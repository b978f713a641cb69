/* pass_state.h — the state of one example's pass, shared by its driver (example_pass.c),
 * the plain loops (pass_plain.c) and the x86 sweep path (example_sweep.c); internal to
 * host/cpu. */
#ifndef AM_CPU_PASS_STATE_H
#define AM_CPU_PASS_STATE_H

#include "cpu/example_pass.h"
#include "cpu/head_stats.h"
#include "cpu/row_sweep.h"

typedef struct pass {
  const am_example_t *ex;
  const am_pass_options_t *opt;
  am_pass_output_t *out;
  am_fault_t *fault;
  unsigned want;
  int n, contiguous; /* contiguous: idx[j] == idx[0] + j */
  double tol;
  float *arow, *grow; /* [n] one query row over the valid keys */
  double *vr, *wr;    /* [n] rollout row and scratch, or NULL */
  double *vg, *ug;    /* [n] grad rollout row and this layer's v A-, or NULL */
  float *uf;          /* [n] the sweep's float part of ug, added into ug every 16 rows */
  double *last;       /* [n] attention_last accumulator, or NULL */
  float *fused;       /* [n,n] F(A_l), or NULL */
  float *abar;        /* [n,n] sum_h max(0, G (.) A), or NULL */
  float *pr, *tr;     /* [n,n] rollout product and temporary (ROLLOUT_ROWS) */
  float *pg, *tg;     /* [n,n] grad rollout product and temporary */
  am_grid_geom_t geo;
  am_row_sweep_fn sweep;       /* the tuned row sweep (row_sweep.h), or NULL: plain loops */
  am_head_sweep_fn head_sweep; /* the tuned sweep of whole heads, where it applies */
  am_layer_sweep_fn layer_sweep; /* the tuned sweep of whole layers, where it applies */
  float *trow;                   /* [block rows, n] the layer sweep's scratch rows */
  double *hacc;    /* [H][AM_STAT_COUNT + 1] its per-head sums, importance last */
  float *dist_mid; /* dist_mid[k] = |k| for k in (-n, n), for the sweeps */
  /* several targets (step_rows.c): S = ex->nsteps rows, each advanced as the single row
   * above is, or NULL */
  int S;
  double *svr, *swr;    /* [S,n] rollout rows and scratch (ROLLOUT_STEPS) */
  double *svg, *sug;    /* [S,n] grad rollout rows and their layer sums (shared gradient) */
  float *suf;           /* [S,n] the sweep's float part of sug */
  double *slast;        /* [n] one step's attention_last sum (ATTENTION_LAST_STEPS) */
  double *sgv, *sgu;    /* [n] per-step gradients: the per-step passes' vg and ug */
  const void **sgrad;   /* [L] the per-step passes' layer pointers */
  unsigned char *sredo; /* [S] 1: the step's sweep sums overflowed, a pass of its own */
  int no_whole; /* 1: never the whole-head or layer sweeps (a per-step pass keeps the
                   choice its example's pass made) */
} pass_t;

/* What a step of the pass answers; never leaves host/cpu (am_cpu_example_pass turns it
 * into an am_status). */
typedef enum pass_rc {
  PASS_OK = 0,
  PASS_BAD_INPUT,  /* a bad value: p->fault says where */
  PASS_REDO_PLAIN, /* a float product of the sweep overflowed (|g| near FLT_MAX): the
                      example again by the plain loops, which keep such values finite */
  PASS_REDO_HEADS, /* a row stopped the layer sweep: the example again head by head, where
                      such rows are checked exactly */
} pass_rc;

/* pass_plain.c: widen valid row i of head h of a [H,T,T] block over the valid keys;
 * check the row in p->arow (and p->grow): PASS_BAD_INPUT with p->fault filled; the plain
 * path of one row (widen, check, use). */
void am_pass_load_row(const pass_t *p, const void *block, int h, int i, float *dst);
pass_rc am_pass_check_row(pass_t *p, int l, int h, int i, int with_grad);
pass_rc am_pass_plain_row(pass_t *p, int l, int h, int i, const void *att, const void *grad,
                          double acc[AM_STAT_COUNT], double *importance);

/* example_sweep.c: one row, or every row of head h, of layer l through the sweep. */
pass_rc am_pass_sweep_row(pass_t *p, int l, int h, int i, const void *att, const void *grad,
                          double acc[AM_STAT_COUNT], double *importance);
pass_rc am_pass_sweep_head(pass_t *p, int l, int h, const void *att, const void *grad,
                           double acc[AM_STAT_COUNT], double *importance);
/* Every head of layer l through the layer sweep into p->hacc; PASS_REDO_HEADS when a row
 * stopped it. */
pass_rc am_pass_sweep_layer(pass_t *p, int l, const void *att, const void *grad);
/* Can the whole-head sweep do every head of this example? */
int am_pass_head_mode(const pass_t *p);
/* ug += uf, uf = 0 (and the step rows' sug += suf). */
void am_pass_flush_uf(pass_t *p);

/* example_pass.c: every layer, then the outputs, with the fallbacks to the head by head
 * sweep and to the plain loops. */
pass_rc am_pass_run(pass_t *p);

/* step_rows.c: the *_STEPS outputs (docs/generation.md, "Several targets"). */
#define AM_PASS_STEP_BITS                                                                  \
  (AM_PASS_ATTENTION_LAST_STEPS | AM_PASS_ROLLOUT_STEPS | AM_PASS_GRAD_ROLLOUT_STEPS)
/* Carves the step rows' scratch from s (S = 0 and NULLs when no step is wanted). */
am_status am_pass_steps_plan(pass_t *p, am_cpu_scratch_t *s);
/* Starts every step row (e_steps[s]) before the top layer. */
void am_pass_steps_start(pass_t *p);
/* Valid row i of the layer being read (p->arow, p->grow): the step rows' gradient-rollout
 * terms, by the plain loops or after the row sweep. */
void am_pass_steps_plain_row(pass_t *p, int i);
void am_pass_steps_sweep_row(pass_t *p, int i);
/* Marks the step rows whose layer sums are not finite (the sweep's float sums
 * overflowed, where a single-target pass goes to the plain loops) for a pass of their own.
 */
void am_pass_steps_overflow(pass_t *p);
/* Layer l, now read and checked: attention_last rows (top layer), rollout and gradient
 * rollout steps. */
void am_pass_steps_layer(pass_t *p, int l);
/* The rows into the outputs, normalised as the single rows are. */
void am_pass_steps_write(pass_t *p);
/* After the example's pass: the rows of GRAD_ROLLOUT_STEPS that need a pass of their own
 * over the attention and their gradient, as a single-target pass computes them: every
 * step with per-step gradients (ex->step_grad), else the marked ones (plain loops);
 * whole: what am_pass_head_mode said before the example's pass. */
pass_rc am_pass_steps_grads(pass_t *p, int whole, const am_cpu_kernels_t *kernels);

#endif
