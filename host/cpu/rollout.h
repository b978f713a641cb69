/* rollout.h — the steps of attention rollout and gradient-weighted rollout for one layer,
 * in row form (a vector times the layer matrix) and as whole matrices (CBLAS); internal
 * to the CPU reference (example_pass.c). */
#ifndef AM_CPU_ROLLOUT_H
#define AM_CPU_ROLLOUT_H

#include "attnmap.h"

/* ---- attention rollout (rollout.c) ---- */

/* Head fusion of one query row: dst = a for the first head, then dst = dst + a (mean),
 * max(dst, a) or min(dst, a). */
void am_rollout_fuse_row(float *dst, const float *a, int n, int head, am_fusion fusion);
/* fused: [n,n] after every head was fused in; the mean divides by H. */
void am_rollout_fuse_finish(float *fused, int n, int H, am_fusion fusion);
/* Sets the floor(n^2 * ratio) smallest entries of fused [n,n] to 0 (ties: lower flat
 * index first), flat index 0 excepted and not replaced. */
void am_rollout_discard(float *fused, int n, double ratio);
/* v <- v * rownorm(fused + I); v, w: [n] (w is scratch). */
void am_rollout_step(const float *fused, int n, double *v, double *w);
/* am_rollout_step for the S rows of v [S,n] at once (w: [S,n] scratch), each row's
 * arithmetic exactly that of am_rollout_step: a block of rows per read of a fused row. */
void am_rollout_step_rows(const float *fused, int n, int S, double *v, double *w);
/* fused <- rownorm(fused + I), in place. */
void am_rollout_hat(float *fused, int n);

/* ---- gradient-weighted rollout (grad_rollout.c) ---- */

/* One query row i of one head: t_j = max(0, g_j a_j); u += vi * t (u may be NULL),
 * abar_row += t (abar_row may be NULL). */
void am_grad_rollout_row(const float *a, const float *g, int n, double vi, double *u,
                         float *abar_row);
/* v <- v + u / H (that is v * (I + mean_h max(0, G (.) A))); then u <- 0. */
void am_grad_rollout_step(double *v, double *u, int n, int H);
/* abar <- abar / H + I, in place. */
void am_grad_rollout_hat(float *abar, int n, int H);

/* ---- both: products of whole matrices ---- */

/* *p <- *p * m ([n,n] row-major, CBLAS sgemm through *tmp, the pointers swapped), or
 * *p <- m when first. */
void am_rows_mul(float **p, float **tmp, const float *m, int n, int first);

/* ---- one layer's whole matrix, straight from an example (attention flow) ---- */

struct am_example;
/* hat [n,n] <- Â of layer l of ex (valid tokens; ex->n of them): head fusion, discard,
 * + I, row normalisation, exactly the steps of rollout. row: [n] scratch. */
void am_rollout_layer_hat(const struct am_example *ex, int l, am_fusion fusion,
                          double discard, float *hat, float *row);

#endif
