/* long_pass.c — the CPU backend's long-context pass (long_pass.h): for each layer from the
 * top down, the (example, head) pairs run as OpenMP tasks (long_head.c: each widens and
 * checks its head's valid rows of Q, K, V, dO and sweeps the tiles), then each example
 * sums its heads in head order and applies the layer to its row vectors, as the matrix
 * form does (example_pass.c, rollout.c, grad_rollout.c):
 *   rollout        v <- v rownorm(mean_h A_h + I); the rows of mean_h A_h + I sum to 2
 * (each A_h's rows sum to 1), so with w = v / 2: v_j <- w_j + sum_h (w A_h)_j / H; grad
 * rollout   v <- v + sum_h (v max(0, G_h (.) A_h)) / H; attention_last row target (or the
 * mean of the rows) of mean_h A_{L-1}. Memory: per example 4n + 3Hn doubles (row vectors,
 * each head's column products); per thread 4nd floats of widened rows and the tiles.
 * Nothing is n x n. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "cpu/example_pass.h"
#include "cpu/head_stats.h"
#include "cpu/long_head.h"
#include "cpu/long_kernels.h"
#include "cpu/long_pass.h"

typedef struct lc_state {              /* one example's */
  double *vr, *wr, *vg, *last, *wlast; /* [n] */
  double *ur, *ug, *ul;                /* [H,n] each head's column products */
  double *table;                       /* the grid's distance table */
  am_grid_geom_t geo;
  int bad;
  am_fault_t fault;
} lc_state_t;

typedef struct lc_scratch { /* one thread's */
  float *q, *k, *v, *dout, *work;
  const am_lc_kernels_t *kern;
} lc_scratch_t;

static am_status state_alloc(lc_state_t *st, const am_lc_example_t *ex,
                             const am_pass_options_t *opt) {
  size_t n = (size_t)ex->n, H = (size_t)ex->H;
  size_t ntab = am_grid_table_size(&opt->grid, ex->n);
  double *d = calloc(5 * n + 3 * H * n + ntab + 1, sizeof *d);
  if (!d)
    return AM_STATUS_OUT_OF_MEMORY;
  st->vr = d;
  st->wr = d + n;
  st->vg = d + 2 * n;
  st->last = d + 3 * n;
  st->wlast = d + 4 * n;
  st->ur = d + 5 * n;
  st->ug = st->ur + H * n;
  st->ul = st->ug + H * n;
  st->table = st->ul + H * n;
  am_grid_geom_init(&st->geo, &opt->grid, ex->n, st->table);
  for (size_t j = 0; j < n; j++) {
    double start = ex->target == AM_ROW_MEAN ? 1.0 / (double)n : (int)j == ex->target;
    st->vr[j] = st->vg[j] = start;
    st->wr[j] = start / 2.0;
    st->wlast[j] = ex->target == AM_ROW_MEAN ? 1.0 : (int)j == ex->target;
  }
  return AM_STATUS_OK;
}

/* dst[i,:] <- head h of a [heads,T,d] block at valid row i, checked finite: the first row
 * holding a value that is not, or -1. */
static int widen_rows(const am_lc_example_t *ex, const void *block, int h, float *dst,
                      float *bad_value) {
  int d = ex->d;
  for (int i = 0; i < ex->n; i++) {
    float *row = dst + (size_t)i * d;
    am_widen(row, block, ex->dtype, ((int64_t)h * ex->T + ex->idx[i]) * d, d);
    for (int c = 0; c < d; c++)
      if (!isfinite(row[c])) {
        *bad_value = row[c];
        return i;
      }
  }
  return -1;
}

static void set_fault(am_fault_t *f, int kind, int l, int h, int row, double value) {
  f->kind = (am_fault_kind)kind;
  f->layer = l;
  f->head = h;
  f->row = row;
  f->value = value;
}

/* Widens the four inputs of (layer l, head h); 0, or 1 with *f filled. */
static int load_head(const am_lc_example_t *ex, int l, int h, int grads, lc_scratch_t *s,
                     am_fault_t *f) {
  int kv = h / (ex->H / ex->Hkv);
  const void *src[4] = {ex->q[l], ex->k[l], ex->v[l], grads ? ex->dout[l] : NULL};
  float *dst[4] = {s->q, s->k, s->v, s->dout};
  const int kinds[4] = {AM_FAULT_Q_NOT_FINITE, AM_FAULT_K_NOT_FINITE, AM_FAULT_V_NOT_FINITE,
                        AM_FAULT_DOUT_NOT_FINITE};
  for (int t = 0; t < 4; t++) {
    if (!src[t])
      continue;
    int head = t == 1 || t == 2 ? kv : h;
    float value = 0.0f;
    int row = widen_rows(ex, src[t], head, dst[t], &value);
    if (row >= 0) {
      set_fault(f, kinds[t], l, head, row, value);
      return 1;
    }
  }
  return 0;
}

/* One (example, layer, head) task. Returns 0, or 1 with *f filled. */
static int run_head(const am_lc_example_t *ex, const am_pass_options_t *opt, int l, int h,
                    lc_state_t *st, am_pass_output_t *out, lc_scratch_t *s, am_fault_t *f) {
  unsigned w = opt->want;
  int n = ex->n, L = ex->L, H = ex->H;
  int grads = ex->dout && (w & (AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_IMPORTANCE));
  if (load_head(ex, l, h, grads, s, f))
    return 1;
  size_t at = (size_t)h * n;
  am_lc_head_job_t job = {
      .q = s->q,
      .k = s->k,
      .v = s->v,
      .dout = grads ? s->dout : NULL,
      .n = n,
      .d = ex->d,
      .pos = ex->idx,
      .attn = &ex->attn,
      .w_att = w & AM_PASS_ROLLOUT ? st->wr : NULL,
      .w_last = w & AM_PASS_ATTENTION_LAST && l == L - 1 ? st->wlast : NULL,
      .w_grad = w & AM_PASS_GRAD_ROLLOUT ? st->vg : NULL,
      .u_att = st->ur + at,
      .u_last = st->ul + at,
      .u_grad = st->ug + at,
      .stats = (w & AM_PASS_HEAD_STATS) != 0,
      .geo = &st->geo,
      .importance = (w & AM_PASS_HEAD_IMPORTANCE) != 0,
      .work = s->work,
      .kern = s->kern,
  };
  am_lc_head_run(&job);
  if (job.bad_row >= 0) {
    set_fault(f, AM_FAULT_SCORE_NOT_FINITE, l, h, job.bad_row, NAN);
    return 1;
  }
  if (job.stats)
    am_head_stats_store(job.acc, n, &st->geo, out->head_stats, L, H, l, h);
  if (job.importance)
    out->head_importance[(size_t)l * H + h] = (float)job.importance_sum;
  return 0;
}

/* Applies layer l, every head done, to example e's row vectors (heads summed in order). */
static void apply_layer(const am_lc_example_t *ex, const am_pass_options_t *opt, int l,
                        lc_state_t *st) {
  int n = ex->n, H = ex->H;
  unsigned w = opt->want;
  for (int j = 0; j < n; j++) {
    double r = 0.0, g = 0.0, a = 0.0;
    for (int h = 0; h < H; h++) {
      size_t at = (size_t)h * n + j;
      r += w & AM_PASS_ROLLOUT ? st->ur[at] : 0.0;
      g += w & AM_PASS_GRAD_ROLLOUT ? st->ug[at] : 0.0;
      a += w & AM_PASS_ATTENTION_LAST && l == ex->L - 1 ? st->ul[at] : 0.0;
    }
    st->vr[j] = st->wr[j] + r / H;
    st->vg[j] += g / H;
    st->last[j] += a;
  }
  for (int j = 0; j < n; j++) /* the next layer's rollout weights */
    st->wr[j] = st->vr[j] / 2.0;
}

static void write_outputs(const am_lc_example_t *ex, const am_pass_options_t *opt,
                          const lc_state_t *st, am_pass_output_t *out) {
  int n = ex->n;
  unsigned w = opt->want;
  double div = (double)ex->H * (ex->target == AM_ROW_MEAN ? n : 1);
  for (int j = 0; j < n; j++) {
    if (w & AM_PASS_ATTENTION_LAST)
      out->attention_last[j] = (float)(st->last[j] / div);
    if (w & AM_PASS_ROLLOUT)
      out->rollout[j] = (float)st->vr[j];
    if (w & AM_PASS_GRAD_ROLLOUT)
      out->grad_rollout[j] = (float)st->vg[j];
  }
  if (w & AM_PASS_ROLLOUT)
    am_cpu_normalize(out->rollout, n, opt->normalize);
  if (w & AM_PASS_GRAD_ROLLOUT)
    am_cpu_normalize(out->grad_rollout, n, opt->normalize);
}

/* n == 0: no map to write; statistics of no rows are undefined, importance sums to 0. */
static void write_empty(const am_lc_example_t *ex, unsigned want, am_pass_output_t *out) {
  size_t lh = (size_t)ex->L * ex->H;
  for (size_t k = 0; k < lh; k++) {
    if (want & AM_PASS_HEAD_STATS)
      for (int s = 0; s < AM_STAT_COUNT; s++)
        out->head_stats[(size_t)s * lh + k] = NAN;
    if (want & AM_PASS_HEAD_IMPORTANCE)
      out->head_importance[k] = 0.0f;
  }
}

/* The fault of (layer l, head h, row) comes before f's in the matrix form's order: the
 * highest layer, then the lowest head, then the lowest row. */
static int earlier(const am_fault_t *a, const am_fault_t *f) {
  if (a->layer != f->layer)
    return a->layer > f->layer;
  return a->head != f->head ? a->head < f->head : a->row < f->row;
}

/* Every layer of every example, top down; the tasks of one layer are (example, head). */
static void run_layers(const am_lc_example_t *ex, int nex, const am_pass_options_t *opt,
                       am_pass_output_t *out, lc_state_t *st, int threads, int maxL,
                       int maxH, size_t rows_floats, size_t work_floats,
                       const am_lc_kernels_t *kern, int *oom) {
#pragma omp parallel num_threads(threads)
  {
    lc_scratch_t s = {0};
    float *buf = malloc((4 * rows_floats + work_floats) * sizeof *buf);
    if (!buf) {
#pragma omp atomic write
      *oom = 1;
    } else {
      s = (lc_scratch_t){buf,
                         buf + rows_floats,
                         buf + 2 * rows_floats,
                         buf + 3 * rows_floats,
                         buf + 4 * rows_floats,
                         kern};
    }
    for (int depth = 0; depth < maxL; depth++) {
#pragma omp for schedule(dynamic, 1)
      for (int task = 0; task < nex * maxH; task++) {
        int e = task / maxH, h = task % maxH, l = ex[e].L - 1 - depth;
        am_fault_t f = {0};
        if (!buf || l < 0 || h >= ex[e].H || ex[e].n == 0 || st[e].bad)
          continue;
        if (run_head(&ex[e], opt, l, h, &st[e], &out[e], &s, &f)) {
#pragma omp critical(am_lc_fault)
          if (!st[e].fault.kind || earlier(&f, &st[e].fault))
            st[e].fault = f;
        }
      } /* the implied barrier: every head of this depth is done */
#pragma omp for schedule(static)
      for (int e = 0; e < nex; e++) {
        int l = ex[e].L - 1 - depth;
        if (st[e].fault.kind)
          st[e].bad = 1;
        else if (l >= 0 && ex[e].n > 0)
          apply_layer(&ex[e], opt, l, &st[e]);
      }
    }
    free(buf);
  }
}

am_status am_cpu_lc_pass(const am_lc_example_t *ex, int nex, const am_pass_options_t *opt,
                         am_pass_output_t *out, int threads, am_fault_t *fault,
                         int *fault_example) {
  return am_cpu_lc_pass_with(NULL, ex, nex, opt, out, threads, fault, fault_example);
}

am_status am_cpu_lc_pass_with(const am_cpu_kernels_t *kernels, const am_lc_example_t *ex,
                              int nex, const am_pass_options_t *opt, am_pass_output_t *out,
                              int threads, am_fault_t *fault, int *fault_example) {
  int maxL = 0, maxH = 0, maxn = 0, maxd = 0;
  for (int e = 0; e < nex; e++) {
    am_status c = am_lc_check_example(&ex[e], opt, &out[e]);
    if (c != AM_STATUS_OK)
      return c;
    maxL = ex[e].L > maxL ? ex[e].L : maxL;
    maxH = ex[e].H > maxH ? ex[e].H : maxH;
    maxn = ex[e].n > maxn ? ex[e].n : maxn;
    maxd = ex[e].d > maxd ? ex[e].d : maxd;
  }
  lc_state_t *st = calloc((size_t)(nex > 0 ? nex : 1), sizeof *st);
  am_status rc = st ? AM_STATUS_OK : AM_STATUS_OUT_OF_MEMORY;
  for (int e = 0; e < nex && rc == AM_STATUS_OK; e++)
    if (ex[e].n > 0)
      rc = state_alloc(&st[e], &ex[e], opt);
  int oom = 0;
  if (rc == AM_STATUS_OK && nex > 0)
    run_layers(ex, nex, opt, out, st, threads > 0 ? threads : 1, maxL, maxH,
               (size_t)maxn * (size_t)maxd, am_lc_head_work_floats(maxn, maxd),
               am_lc_kernels_for(kernels), &oom);
  if (rc == AM_STATUS_OK && oom)
    rc = AM_STATUS_OUT_OF_MEMORY;
  for (int e = 0; e < nex && rc == AM_STATUS_OK; e++) {
    if (st[e].bad) {
      *fault = st[e].fault;
      *fault_example = e;
      rc = AM_STATUS_BAD_INPUT;
    } else if (ex[e].n == 0) {
      write_empty(&ex[e], opt->want, &out[e]);
    } else {
      write_outputs(&ex[e], opt, &st[e], &out[e]);
    }
  }
  for (int e = 0; st && e < nex; e++)
    free(st[e].vr);
  free(st);
  return rc;
}
