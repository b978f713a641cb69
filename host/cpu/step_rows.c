/* step_rows.c — several targets in one pass (docs/generation.md, "Several targets"): the
 * outputs ATTENTION_LAST_STEPS, ROLLOUT_STEPS and GRAD_ROLLOUT_STEPS, row s equal bit for
 * bit to the single-target output for target steps[s] of a pass that asks for the same
 * outputs (the single ones in place of the *_STEPS ones).
 *
 * Why the bits agree: every step row goes through the arithmetic its single-target row
 * would, on the same matrices, in the same order.
 *  - rollout: the S rows are advanced on the layer's one fused matrix together
 *    (am_rollout_step_rows: a matrix of S rows instead of a vector);
 *  - gradient rollout with one gradient (ex->grad): each attention row's terms
 *    max(0, g a) feed the S row vectors as they feed the single one, on whichever path the
 *    example takes (plain loops in double; the row and head sweeps' float multiply-adds
 *    added into double every 16 rows; the layer sweep's head sums, added per block): one
 *    read of each layer for all S rows;
 *  - gradient rollout with per-step gradients (ex->step_grad): the terms differ per step,
 *    so each step is a pass of its own over the attention and its gradient (the same
 *    path choice as the example's pass): S reads of the attention, each gradient read
 *    once;
 *  - attention_last: row steps[s] of each head of the top layer, added in head order in
 *    double, once that layer is read and checked.
 * Internal to host/cpu (pass_state.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "cpu/pass_state.h"
#include "cpu/rollout.h"

static double *take(double **cursor, size_t count, int wanted) {
  if (!wanted)
    return NULL;
  double *at = *cursor;
  *cursor += count;
  return at;
}

am_status am_pass_steps_plan(pass_t *p, am_cpu_scratch_t *s) {
  unsigned w = p->want & AM_PASS_STEP_BITS;
  p->S = w ? p->ex->nsteps : 0;
  p->svr = p->swr = p->svg = p->sug = p->slast = p->sgv = p->sgu = NULL;
  p->suf = NULL;
  p->sgrad = NULL;
  p->sredo = NULL;
  if (!w)
    return AM_STATUS_OK;
  size_t S = (size_t)p->S, n = (size_t)p->n;
  int roll = (w & AM_PASS_ROLLOUT_STEPS) != 0, grad = (w & AM_PASS_GRAD_ROLLOUT_STEPS) != 0;
  int shared = grad && !p->ex->step_grad; /* per-step gradients: one row at a time */
  if (S > SIZE_MAX / sizeof(double) / 8 / n)
    return AM_STATUS_OUT_OF_MEMORY;
  size_t sn = S * n, nd = sizeof(double);
  /* the per-step passes' layer pointers and the steps to redo, in doubles */
  size_t nptr = grad ? ((size_t)p->ex->L * sizeof(void *) + nd - 1) / nd : 0;
  size_t nredo = grad ? (S + nd - 1) / nd : 0;
  size_t need = (roll ? 2 * sn : 0) + (grad ? 2 * n : 0) +
                (shared ? 2 * sn + (sn + 1) / 2 : 0) +
                ((w & AM_PASS_ATTENTION_LAST_STEPS) ? n : 0) + nptr + nredo;
  if (s->steps_cap < need || !s->steps) {
    free(s->steps);
    s->steps = malloc(need * sizeof *s->steps);
    s->steps_cap = s->steps ? need : 0;
    if (!s->steps)
      return AM_STATUS_OUT_OF_MEMORY;
  }
  double *d = s->steps;
  p->svr = take(&d, sn, roll);
  p->swr = take(&d, sn, roll);
  p->svg = take(&d, sn, shared);
  p->sug = take(&d, sn, shared);
  p->sgv = take(&d, n, grad);
  p->sgu = take(&d, n, grad);
  p->slast = take(&d, n, w & AM_PASS_ATTENTION_LAST_STEPS);
  p->sgrad = (const void **)(void *)take(&d, nptr, grad);
  p->sredo = (unsigned char *)(void *)take(&d, nredo, grad);
  p->suf = shared ? (float *)(void *)d : NULL;
  return AM_STATUS_OK;
}

static void start_rows(double *v, int S, int n, const int32_t *steps) {
  memset(v, 0, (size_t)S * n * sizeof *v);
  for (int s = 0; s < S; s++)
    v[(size_t)s * n + steps[s]] = 1.0;
}

void am_pass_steps_start(pass_t *p) {
  size_t sn = (size_t)p->S * p->n;
  if (p->svr)
    start_rows(p->svr, p->S, p->n, p->ex->steps);
  if (p->sredo)
    memset(p->sredo, 0, (size_t)p->S);
  if (p->svg) {
    start_rows(p->svg, p->S, p->n, p->ex->steps);
    memset(p->sug, 0, sn * sizeof *p->sug);
    memset(p->suf, 0, sn * sizeof *p->suf);
  }
}

void am_pass_steps_plain_row(pass_t *p, int i) {
  size_t n = (size_t)p->n;
  for (int s = 0; p->svg && s < p->S; s++)
    am_grad_rollout_row(p->arow, p->grow, p->n, p->svg[s * n + i], p->sug + s * n, NULL);
}

void am_pass_steps_sweep_row(pass_t *p, int i) {
  if (p->svg)
    am_steps_update_avx2(p->arow, p->grow, p->n, p->svg, i, p->S, p->suf);
}

void am_pass_steps_overflow(pass_t *p) {
  size_t n = (size_t)p->n;
  for (int s = 0; p->sug && s < p->S; s++)
    for (size_t j = 0; j < n; j++)
      if (!isfinite(p->sug[s * n + j])) { /* the row is redone; keep its sums quiet */
        p->sredo[s] = 1;
        memset(p->svg + s * n, 0, n * sizeof *p->svg);
        memset(p->sug + s * n, 0, n * sizeof *p->sug);
        break;
      }
}

/* The top layer's row steps[s] of every head, added in head order as the single-target
 * path adds its target row (use_row, the sweeps' add_row), into row s of the output. */
static void attention_last_rows(pass_t *p) {
  const am_example_t *ex = p->ex;
  int n = p->n;
  for (int s = 0; s < p->S; s++) {
    memset(p->slast, 0, (size_t)n * sizeof *p->slast);
    for (int h = 0; h < ex->H; h++) {
      am_pass_load_row(p, ex->att[ex->L - 1], h, ex->steps[s], p->arow);
      for (int j = 0; j < n; j++)
        p->slast[j] += p->arow[j];
    }
    float *row = p->out->attention_last_steps + (size_t)s * n;
    for (int j = 0; j < n; j++)
      row[j] = (float)(p->slast[j] / (double)ex->H);
  }
}

void am_pass_steps_layer(pass_t *p, int l) {
  size_t n = (size_t)p->n;
  if (p->slast && l == p->ex->L - 1)
    attention_last_rows(p);
  if (p->svr)
    am_rollout_step_rows(p->fused, p->n, p->S, p->svr, p->swr);
  for (int s = 0; p->svg && s < p->S; s++)
    am_grad_rollout_step(p->svg + s * n, p->sug + s * n, p->n, p->ex->H);
}

/* Rows of v [S,n] into out as floats, each normalised as the single row is. */
static void write_rows(float *out, const double *v, int S, int n, am_normalize how) {
  for (size_t k = 0; k < (size_t)S * n; k++)
    out[k] = (float)v[k];
  for (int s = 0; s < S; s++)
    am_cpu_normalize(out + (size_t)s * n, n, how);
}

void am_pass_steps_write(pass_t *p) {
  if (p->svr)
    write_rows(p->out->rollout_steps, p->svr, p->S, p->n, p->opt->normalize);
  if (p->svg)
    write_rows(p->out->grad_rollout_steps, p->svg, p->S, p->n, p->opt->normalize);
}

/* Step s's pass: the example with step s's gradient (ex->grad without per-step ones) and
 * target steps[s], asked for gradient rollout only, on the scratch the example's pass has
 * finished with. */
static pass_rc step_pass(const pass_t *p, int s, int whole,
                         const am_cpu_kernels_t *kernels) {
  const am_example_t *ex = p->ex;
  const void **grad = p->sgrad;
  size_t block = (size_t)ex->H * ex->T * ex->T * am_dtype_size(ex->dtype);
  for (int l = 0; l < ex->L; l++)
    grad[l] = ex->step_grad ? (const unsigned char *)ex->step_grad[l] + (size_t)s * block
                            : ex->grad[l];
  am_example_t one = *ex;
  one.grad = grad;
  one.target = ex->steps[s];
  one.nsteps = 0;
  one.steps = NULL;
  one.step_grad = NULL;
  am_pass_output_t out = {.grad_rollout =
                              p->out->grad_rollout_steps + (size_t)s * (size_t)p->n};
  pass_t q = *p;
  q.ex = &one;
  q.out = &out;
  q.want = AM_PASS_GRAD_ROLLOUT;
  q.vr = q.wr = q.last = NULL;
  q.fused = q.abar = q.tr = q.tg = NULL;
  q.vg = p->sgv;
  q.ug = p->sgu;
  q.S = 0;
  q.svr = q.swr = q.svg = q.sug = q.slast = NULL;
  q.suf = NULL;
  q.no_whole = !whole;
  q.sweep = kernels->row;
  q.head_sweep = kernels->head;
  q.layer_sweep = kernels->layer;
  return am_pass_run(&q);
}

pass_rc am_pass_steps_grads(pass_t *p, int whole, const am_cpu_kernels_t *kernels) {
  pass_rc rc = PASS_OK;
  if (!(p->want & AM_PASS_GRAD_ROLLOUT_STEPS))
    return rc;
  for (int s = 0; rc == PASS_OK && s < p->S; s++)
    if (p->ex->step_grad) /* per-step gradients: every step */
      rc = step_pass(p, s, whole, kernels);
    else if (p->sredo[s]) /* its sweep overflowed: by the plain loops, as its own pass */
      rc = step_pass(p, s, whole, am_cpu_kernels_plain());
  return rc;
}
