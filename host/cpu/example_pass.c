/* example_pass.c — the CPU reference of the per-example analyses (docs/design.md §3): one
 * read
 * of each layer's attention (and gradient), from the top layer down, head by head and row
 * by row, feeds attention rollout (rollout.c), gradient-weighted rollout
 * (grad_rollout.c), the per-head statistics and head importance (head_stats.c) and the
 * last layer's attention row. Every value read is checked first.
 *
 * Row form: with v = e_t (or the mean row 1/n) the layers are applied as they are read,
 * v <- v A^_l from l = L-1 down to 0, which is e_t^T A^_{L-1} ... A^_0 in O(L H n^2);
 * the whole matrices (*_ROWS) are P <- P A^_l with CBLAS sgemm. Scratch holds O(n^2)
 * floats whatever L and H: the fused layer, its product and temporary, one row.
 *
 * Two paths, chosen per context (the kernels of am_cpu_scratch_t, row_sweep.h): on CPUs
 * with AVX2, FMA and F16C the rows go through the vectorised sweeps (example_sweep.c),
 * ~10x faster; elsewhere, and as the reference the sweeps are tested against, the plain
 * loops (pass_plain.c). This file drives both and calls neither's internals. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/example_pass.h"
#include "cpu/head_stats.h"
#include "cpu/pass_state.h"
#include "cpu/rollout.h"

void am_cpu_scratch_free(am_cpu_scratch_t *s) {
  if (!s)
    return;
  free(s->buf);
  free(s->steps);
  s->buf = NULL;
  s->steps = NULL;
  s->cap = s->steps_cap = 0;
}

#define WANT_FUSED (AM_PASS_ROLLOUT | AM_PASS_ROLLOUT_ROWS | AM_PASS_ROLLOUT_STEPS)

/* The next `count` elements at *cursor when `wanted`, else NULL. */
static double *take_d(double **cursor, size_t count, unsigned wanted) {
  if (!wanted)
    return NULL;
  double *at = *cursor;
  *cursor += count;
  return at;
}

static float *take_f(float **cursor, size_t count, unsigned wanted) {
  if (!wanted)
    return NULL;
  float *at = *cursor;
  *cursor += count;
  return at;
}

#define SKEW 24 /* floats: 96 bytes */

/* Carves the scratch: doubles first (malloc's alignment suits them), then floats. */
static am_status plan_scratch(pass_t *p, am_cpu_scratch_t *s) {
  size_t n = (size_t)p->n, nn = n * n;
  unsigned w = p->want;
  size_t ntab = w & AM_PASS_HEAD_STATS ? am_grid_table_size(&p->opt->grid, p->n) : 0;
  size_t nh = (size_t)p->ex->H * (AM_STAT_COUNT + 1); /* the layer sweep's head sums */
  size_t nd = (w & AM_PASS_ROLLOUT ? 2 * n : 0) + (w & AM_PASS_GRAD_ROLLOUT ? 2 * n : 0) +
              (w & AM_PASS_ATTENTION_LAST ? n : 0) + ntab + nh;
  size_t nmat = (w & WANT_FUSED ? 1 : 0) + (w & AM_PASS_ROLLOUT_ROWS ? 1 : 0) +
                (w & AM_PASS_GRAD_ROLLOUT_ROWS ? 2 : 0);
  /* floats; SKEW between the row buffers that the sweep stores to and loads from, so that
   * they do not sit a multiple of 4 KiB apart (a load then waits for an unrelated store:
   * "4K aliasing", measured 20% slower on BERT-base rows) */
  size_t ntrow = (size_t)am_layer_block_rows(p->n) * n + SKEW;
  size_t base = 2 * nd + 3 * (n + SKEW) + ntrow + 2 * n; /* floats */
  if (nn / n != n || (nmat && nn > (SIZE_MAX / sizeof(float) - base) / nmat))
    return AM_STATUS_OUT_OF_MEMORY;
  size_t need = base + nmat * nn;
  if (s->cap < need || !s->buf) {
    free(s->buf);
    s->buf = malloc(need * sizeof(float));
    s->cap = s->buf ? need : 0;
    if (!s->buf)
      return AM_STATUS_OUT_OF_MEMORY;
  }
  double *d = (double *)(void *)s->buf;
  float *f = s->buf + 2 * nd;
  p->vr = take_d(&d, n, w & AM_PASS_ROLLOUT);
  p->wr = take_d(&d, n, w & AM_PASS_ROLLOUT);
  p->vg = take_d(&d, n, w & AM_PASS_GRAD_ROLLOUT);
  p->ug = take_d(&d, n, w & AM_PASS_GRAD_ROLLOUT);
  p->last = take_d(&d, n, w & AM_PASS_ATTENTION_LAST);
  am_grid_geom_init(&p->geo, &p->opt->grid, p->n, d);
  p->hacc = take_d(&d, nh, 1);
  p->arow = take_f(&f, n + SKEW, 1);
  p->grow = take_f(&f, n + SKEW, 1);
  p->uf = take_f(&f, n + SKEW, 1);
  p->trow = take_f(&f, ntrow, 1);
  float *dist = take_f(&f, 2 * n, 1);
  for (size_t k = 0; k + 1 < 2 * n; k++)
    dist[k] = (float)(k > n - 1 ? k - (n - 1) : (n - 1) - k);
  p->dist_mid = dist + (n - 1);
  p->fused = take_f(&f, nn, w & WANT_FUSED);
  p->tr = take_f(&f, nn, w & AM_PASS_ROLLOUT_ROWS);
  p->abar = take_f(&f, nn, w & AM_PASS_GRAD_ROLLOUT_ROWS);
  p->tg = take_f(&f, nn, w & AM_PASS_GRAD_ROLLOUT_ROWS);
  p->pr = p->out->rollout_rows;
  p->pg = p->out->grad_rollout_rows;
  return am_pass_steps_plan(p, s);
}

/* Reads layer l (every head, every valid row) once, checking and using each row. */
static pass_rc read_layer(pass_t *p, int l) {
  const am_example_t *ex = p->ex;
  int L = ex->L, H = ex->H, n = p->n;
  const void *att = ex->att[l], *grad = ex->grad ? ex->grad[l] : NULL;
  if (p->abar)
    memset(p->abar, 0, (size_t)n * n * sizeof *p->abar);
  if (p->sweep && p->fused) /* the sweep adds every head into the fused rows */
    memset(p->fused, 0, (size_t)n * n * sizeof *p->fused);
  if (p->sweep && p->uf)
    memset(p->uf, 0, (size_t)n * sizeof *p->uf);
  int whole = am_pass_head_mode(p);
  if (whole && p->layer_sweep && n <= AM_LAYER_MAX_N) {
    pass_rc rc = am_pass_sweep_layer(p, l, att, grad);
    if (rc != PASS_OK)
      return rc;
    for (int h = 0; h < H && (p->want & AM_PASS_HEAD_STATS); h++)
      am_head_stats_store(p->hacc + (size_t)h * AM_STAT_COUNT, n, &p->geo,
                          p->out->head_stats, L, H, l, h);
    for (int h = 0; h < H && (p->want & AM_PASS_HEAD_IMPORTANCE); h++)
      p->out->head_importance[(size_t)l * H + h] =
          (float)p->hacc[(size_t)H * AM_STAT_COUNT + (size_t)h];
    H = 0; /* every head is done: none left for the loop below */
  }
  for (int h = 0; h < H; h++) {
    double acc[AM_STAT_COUNT] = {0}, importance = 0.0;
    if (whole) {
      pass_rc rc = am_pass_sweep_head(p, l, h, att, grad, acc, &importance);
      if (rc != PASS_OK)
        return rc;
    }
    for (int i = 0; i < n && !whole; i++) {
      pass_rc rc = p->sweep ? am_pass_sweep_row(p, l, h, i, att, grad, acc, &importance)
                            : am_pass_plain_row(p, l, h, i, att, grad, acc, &importance);
      if (rc != PASS_OK)
        return rc;
      if (p->sweep && (p->ug || p->sug) && ((i & 15) == 15 || i == n - 1))
        am_pass_flush_uf(p);
    }
    if (p->want & AM_PASS_HEAD_STATS)
      am_head_stats_store(acc, n, &p->geo, p->out->head_stats, L, H, l, h);
    if (p->want & AM_PASS_HEAD_IMPORTANCE)
      p->out->head_importance[(size_t)l * H + h] = (float)importance;
  }
  /* the sweep's float products v_i max(0, a g) overflow only for |g| near FLT_MAX, where
   * the plain loops' doubles do not: then the plain loops do the example */
  for (int j = 0; p->sweep && p->ug && j < n; j++)
    if (!isfinite(p->ug[j]))
      return PASS_REDO_PLAIN;
  if (p->sweep)
    am_pass_steps_overflow(p);
  return PASS_OK;
}

/* Applies layer l, now fully read, to the rollout rows and products. */
static void finish_layer(pass_t *p, int l) {
  int n = p->n, H = p->ex->H, first = l == p->ex->L - 1;
  if (p->fused) {
    am_rollout_fuse_finish(p->fused, n, H, p->opt->fusion);
    am_rollout_discard(p->fused, n, p->opt->discard);
    if (p->vr)
      am_rollout_step(p->fused, n, p->vr, p->wr);
  }
  am_pass_steps_layer(p, l); /* before the fused matrix becomes A^ in place */
  if (p->tr) {
    am_rollout_hat(p->fused, n);
    am_rows_mul(&p->pr, &p->tr, p->fused, n, first);
  }
  if (p->vg)
    am_grad_rollout_step(p->vg, p->ug, n, H);
  if (p->abar) {
    am_grad_rollout_hat(p->abar, n, H);
    am_rows_mul(&p->pg, &p->tg, p->abar, n, first);
  }
}

/* Starts a row vector at e_t, or at the mean row (1/n each). */
static void start_row(double *v, int n, int target) {
  for (int j = 0; j < n; j++)
    v[j] = target == AM_ROW_MEAN ? 1.0 / n : (j == target);
}

static void write_outputs(pass_t *p) {
  am_pass_output_t *out = p->out;
  int n = p->n;
  size_t bytes = (size_t)n * n * sizeof(float);
  if (p->last) {
    double div = (double)p->ex->H * (p->ex->target == AM_ROW_MEAN ? n : 1);
    for (int j = 0; j < n; j++)
      out->attention_last[j] = (float)(p->last[j] / div);
  }
  if (p->vr) {
    for (int j = 0; j < n; j++)
      out->rollout[j] = (float)p->vr[j];
    am_cpu_normalize(out->rollout, n, p->opt->normalize);
  }
  if (p->vg) {
    for (int j = 0; j < n; j++)
      out->grad_rollout[j] = (float)p->vg[j];
    am_cpu_normalize(out->grad_rollout, n, p->opt->normalize);
  }
  if (p->tr && p->pr != out->rollout_rows)
    memcpy(out->rollout_rows, p->pr, bytes);
  if (p->tg && p->pg != out->grad_rollout_rows)
    memcpy(out->grad_rollout_rows, p->pg, bytes);
}

/* n == 0: no map to write; statistics of no rows are undefined, importance sums to 0. */
static void write_empty(const am_example_t *ex, unsigned want, am_pass_output_t *out) {
  size_t lh = (size_t)ex->L * ex->H;
  if (want & AM_PASS_HEAD_STATS)
    for (size_t k = 0; k < AM_STAT_COUNT * lh; k++)
      out->head_stats[k] = NAN;
  if (want & AM_PASS_HEAD_IMPORTANCE)
    for (size_t k = 0; k < lh; k++)
      out->head_importance[k] = 0.0f;
}

/* Every layer from the top down, then the outputs. */
static pass_rc run_layers(pass_t *p) {
  const am_example_t *ex = p->ex;
  if (p->vr)
    start_row(p->vr, p->n, ex->target);
  if (p->vg) {
    start_row(p->vg, p->n, ex->target);
    memset(p->ug, 0, (size_t)p->n * sizeof *p->ug);
  }
  if (p->last)
    memset(p->last, 0, (size_t)p->n * sizeof *p->last);
  am_pass_steps_start(p);
  for (int l = ex->L - 1; l >= 0; l--) {
    pass_rc rc = read_layer(p, l);
    if (rc != PASS_OK)
      return rc;
    finish_layer(p, l);
  }
  write_outputs(p);
  am_pass_steps_write(p);
  return PASS_OK;
}

pass_rc am_pass_run(pass_t *p) {
  pass_rc rc = run_layers(p);
  if (rc == PASS_REDO_HEADS) { /* a row near a limit: head by head, checked exactly */
    p->layer_sweep = NULL;
    rc = run_layers(p);
  }
  if (rc == PASS_REDO_PLAIN) {
    p->sweep = NULL;
    p->head_sweep = NULL;
    p->layer_sweep = NULL;
    rc = run_layers(p);
  }
  return rc;
}

am_status am_cpu_example_pass(const am_example_t *ex, const am_pass_options_t *opt,
                              am_pass_output_t *out, am_cpu_scratch_t *scratch,
                              am_fault_t *fault) {
  am_fault_t unused;
  if (!fault)
    fault = &unused;
  memset(fault, 0, sizeof *fault);
  am_status st = am_ops_check_example(ex, opt, out);
  if (st != AM_STATUS_OK || !scratch)
    return st != AM_STATUS_OK ? st : AM_STATUS_INVALID_ARGUMENT;
  if (ex->n == 0) {
    write_empty(ex, opt->want, out);
    return AM_STATUS_OK;
  }
  pass_t p = {.ex = ex,
              .opt = opt,
              .out = out,
              .fault = fault,
              .want = opt->want,
              .n = ex->n,
              .tol = opt->row_tolerance > 0 ? opt->row_tolerance
                                            : am_row_sum_tolerance(ex->dtype)};
  p.contiguous = ex->idx[ex->n - 1] - ex->idx[0] == ex->n - 1;
  if (!scratch->kernels)
    scratch->kernels = am_cpu_kernels_for_this_cpu();
  p.sweep = scratch->kernels->row;
  p.head_sweep = scratch->kernels->head;
  p.layer_sweep = scratch->kernels->layer;
  st = plan_scratch(&p, scratch);
  if (st != AM_STATUS_OK)
    return st;
  int whole = am_pass_head_mode(&p); /* before any fallback: per-step passes keep it */
  pass_rc rc = am_pass_run(&p);
  if (rc == PASS_OK)
    rc = am_pass_steps_grads(&p, whole, scratch->kernels);
  return rc == PASS_OK ? AM_STATUS_OK : AM_STATUS_BAD_INPUT;
}
