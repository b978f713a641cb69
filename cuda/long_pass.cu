/* long_pass.cu — the CUDA backend's long_pass op (ops/backend.h; docs/long-context.md,
 * docs/cuda.md): examples given as Q, K, V and dO, every analysis but attention flow
 * computed tile by tile on the device, never a T x T matrix.
 *
 * Examples are dealt to the context's devices in turn (example e to device e mod D, each
 * device with its own thread, stream and buffers); on each, one example after another,
 * layers from the top down. An example's numbers do not depend on its device, so
 * `cuda:all` gives the bits of one GPU, and the first fault is the lowest failing example
 * whatever the device count (each device stops at its own first). Per layer the host stages
 * the valid rows compact into one of two pinned buffers (zero padded to the tile;
 * long.cuh), checking every value finite in the CPU's order (head by head: Q, then its K
 * and V, then dO), while the device works on the previous layer; one copy sends them;
 * long_rows.cu finds each row's log-sum-exp and the row terms of the statistics and
 * importance, long_cols.cu the column products, then the heads are added into the example's
 * row vectors. Faults are answered as the CPU does: the highest layer, then the lowest head
 * (an input value before its scores), then the row.
 *
 * Device memory per example: the staged layer ((2H + 2Hkv) np dp e bytes), and
 * 8 (H n (1 + AM_LR_N + 3) + 5 n + L H (AM_LR_N + 1)) bytes of row terms, column products,
 * row vectors, head sums and fault keys. Pinned: twice the staged layer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"
#include "cuda/long.cuh"

extern "C" {
#include "core/half.h"
#include "ops/grid.h"
}

namespace {

enum { ST_DOUBLES = 5 }; /* long_cols.cu's row vectors */

typedef struct lc_plan {
  int n, np, dp, es, grads;
  size_t head;                          /* bytes of one staged head: np dp es */
  size_t off_k, off_v, off_d, in_bytes; /* the staged layer (device and pinned) */
  size_t off_pos, off_lse, off_rows, off_u, off_st;
  size_t off_acc, off_fault, off_out, dev_bytes; /* [off_acc, dev_bytes): read back */
  size_t pin_bytes;                              /* 2 staged layers, pos, what comes back */
} lc_plan_t;

size_t up(size_t x) { return am_cu_align(x); }

void plan_example(const am_lc_example_t *ex, int grads, lc_plan_t *p) {
  const size_t n = (size_t)ex->n, H = (size_t)ex->H, LH = (size_t)ex->L * H;
  p->n = ex->n;
  p->np = (ex->n + AM_LC_TQ - 1) / AM_LC_TQ * AM_LC_TQ;
  p->dp = (ex->d + 15) / 16 * 16;
  p->es = ex->dtype == AM_DTYPE_F32 ? 4 : 2;
  p->grads = grads;
  p->head = (size_t)p->np * p->dp * p->es;
  p->off_k = up(H * p->head);
  p->off_v = p->off_k + up((size_t)ex->Hkv * p->head);
  p->off_d = p->off_v + up((size_t)ex->Hkv * p->head);
  p->in_bytes = p->off_d + (grads ? up(H * p->head) : 0);
  p->off_pos = p->in_bytes;
  p->off_lse = p->off_pos + up(n * 4);
  p->off_rows = p->off_lse + up(H * n * 8);
  p->off_u = p->off_rows + up(H * n * AM_LR_N * 8);
  p->off_st = p->off_u + up(3 * H * n * 8);
  p->off_acc = p->off_st + up(ST_DOUBLES * n * 8);
  p->off_fault = p->off_acc + up(LH * AM_LR_N * 8);
  p->off_out = p->off_fault + up(LH * 8);
  p->dev_bytes = p->off_out + up(3 * n * 4);
  p->pin_bytes = 2 * p->in_bytes + up(n * 4) + (p->dev_bytes - p->off_acc);
}

/* Head h's valid rows of a [heads,T,d] block into dst [np][dp] (padding stays zero). */
void stage_head(const am_lc_example_t *ex, const void *block, int h, const lc_plan_t *p,
                unsigned char *dst) {
  const size_t row = (size_t)ex->d * p->es;
  const unsigned char *src = (const unsigned char *)block + (size_t)h * ex->T * row;
  for (int i = 0; i < ex->n; i++)
    memcpy(dst + (size_t)i * p->dp * p->es, src + (size_t)ex->idx[i] * row, row);
}

/* The first valid row of head h of a [heads,T,d] block with a value not finite, or -1. */
int bad_row(const am_lc_example_t *ex, const void *block, int h, float *value) {
  for (int i = 0; i < ex->n; i++) {
    const int64_t at = ((int64_t)h * ex->T + ex->idx[i]) * ex->d;
    for (int c = 0; c < ex->d; c++) {
      const float v = am_load_float(block, ex->dtype, at + c);
      if (!isfinite(v)) {
        *value = v;
        return i;
      }
    }
  }
  return -1;
}

/* Stages layer l into pin and checks it as host/cpu/long_pass.c loads each query head h:
 * Q, then its K and V, then dO; inf[h] receives the first fault (kind 0: none). 1 when
 * some head has one. */
int stage_layer(const am_lc_example_t *ex, int l, const lc_plan_t *p, unsigned char *pin,
                am_fault_t *inf) {
  const int group = ex->H / ex->Hkv;
  int any = 0;
  for (int kv = 0; kv < ex->Hkv; kv++) {
    stage_head(ex, ex->k[l], kv, p, pin + p->off_k + kv * p->head);
    stage_head(ex, ex->v[l], kv, p, pin + p->off_v + kv * p->head);
  }
  for (int h = 0; h < ex->H; h++) {
    stage_head(ex, ex->q[l], h, p, pin + h * p->head);
    if (p->grads)
      stage_head(ex, ex->dout[l], h, p, pin + p->off_d + h * p->head);
    const void *src[4] = {ex->q[l], ex->k[l], ex->v[l], p->grads ? ex->dout[l] : NULL};
    const int kinds[4] = {AM_FAULT_Q_NOT_FINITE, AM_FAULT_K_NOT_FINITE,
                          AM_FAULT_V_NOT_FINITE, AM_FAULT_DOUT_NOT_FINITE};
    inf[h] = am_fault_t{};
    for (int t = 0; t < 4 && !inf[h].kind; t++) {
      const int head = t == 1 || t == 2 ? h / group : h;
      float value = 0.0f;
      const int row = src[t] ? bad_row(ex, src[t], head, &value) : -1;
      if (row >= 0) {
        inf[h].kind = (am_fault_kind)kinds[t];
        inf[h].layer = l;
        inf[h].head = head;
        inf[h].row = row;
        inf[h].value = value;
        any = 1;
      }
    }
  }
  return any;
}

/* The statistics [AM_STAT_COUNT,L,H] and importance [L,H] from the per-head row sums, as
 * host/cpu/head_stats.c's am_head_stats_store. */
void store_heads(const am_lc_example_t *ex, const am_grid_geom_t *geo, const double *acc,
                 unsigned want, am_pass_output_t *out) {
  const int n = ex->n;
  const size_t LH = (size_t)ex->L * ex->H;
  for (size_t p = 0; p < LH; p++) {
    const double *a = acc + p * AM_LR_N;
    if (want & AM_PASS_HEAD_IMPORTANCE)
      out->head_importance[p] = (float)a[AM_LR_DOT];
    if (!(want & AM_PASS_HEAD_STATS))
      continue;
    float *o = out->head_stats + p;
    o[AM_STAT_ENTROPY * LH] = (float)(a[AM_LR_ENT] / n);
    o[AM_STAT_ENTROPY_NORM * LH] =
        n > 1 ? (float)(a[AM_LR_ENT] / n / log((double)n)) : 0.0f;
    o[AM_STAT_CONFIDENCE * LH] = (float)(a[AM_LR_CONF] / n);
    o[AM_STAT_TO_FIRST * LH] = (float)(a[AM_LR_FIRST] / n);
    o[AM_STAT_TO_LAST * LH] = (float)(a[AM_LR_LAST] / n);
    o[AM_STAT_TO_SELF * LH] = (float)(a[AM_LR_SELF] / n);
    o[AM_STAT_TO_PREV * LH] = (float)(a[AM_LR_PREV] / n);
    o[AM_STAT_TO_NEXT * LH] = (float)(a[AM_LR_NEXT] / n);
    o[AM_STAT_DISTANCE * LH] =
        geo->active ? (float)(a[AM_LR_DIST] / ((double)geo->rows * geo->cols))
                    : (float)(a[AM_LR_DIST] / n);
  }
}

/* The fault the CPU would report: layers from the top down to stop (where an input value
 * was bad; -1: none); in a layer each query head's fault (its input fault in stop, else
 * its first bad score) and of those the least (head, row), as long_pass.c's `earlier`.
 * 1 when there is one. */
int pick_fault(const am_lc_example_t *ex, const unsigned long long *keys, int stop,
               const am_fault_t *inf, am_fault_t *f) {
  const unsigned long long nk =
      (unsigned long long)(ex->n + AM_LC_CPU_BK - 1) / AM_LC_CPU_BK;
  for (int l = ex->L - 1; l >= (stop >= 0 ? stop : 0); l--) {
    int found = 0;
    for (int h = 0; h < ex->H; h++) {
      am_fault_t c = {};
      const unsigned long long key = keys[(size_t)l * ex->H + h];
      if (l == stop && inf[h].kind) {
        c = inf[h];
      } else if (key != AM_CU_FAULT_NONE) {
        c.kind = (am_fault_kind)AM_FAULT_SCORE_NOT_FINITE;
        c.layer = l;
        c.head = h;
        c.row = (int)(key / AM_LC_TQ / nk * AM_LC_TQ + key % AM_LC_TQ);
        c.value = NAN;
      } else {
        continue;
      }
      if (!found || c.head < f->head || (c.head == f->head && c.row < f->row))
        *f = c;
      found = 1;
    }
    if (found)
      return 1;
  }
  return 0;
}

/* One example (n >= 1) on x's device. AM_STATUS_BAD_INPUT with *f on a fault. */
am_status run_example(am_cu_aux_t *x, cudaEvent_t ev[2], const am_lc_example_t *ex,
                      const am_pass_options_t *opt, am_pass_output_t *out, am_fault_t *f) {
  am_status st = AM_STATUS_OK;
  const unsigned w = opt->want;
  const int grads = ex->dout && (w & (AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_IMPORTANCE));
  const int dt = am_cu_dt(ex->dtype), L = ex->L, H = ex->H;
  lc_plan_t p;
  int stop = -1;
  am_fault_t *inf = (am_fault_t *)calloc((size_t)H, sizeof *inf);
  double *table = (double *)malloc((am_grid_table_size(&opt->grid, ex->n) + 1) * 8);
  am_grid_geom_t geo;
  unsigned char *pin_back, *d;
  double *dst;
  am_cu_lc_args_t a;
  if (!table || !inf) {
    st = am_cuda_fail(AM_STATUS_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  am_grid_geom_init(&geo, &opt->grid, ex->n, table);
  plan_example(ex, grads, &p);
  if ((st = am_cu_aux_reserve(x, p.dev_bytes, p.pin_bytes)) != AM_STATUS_OK)
    goto done;
  d = x->d;
  dst = (double *)(d + p.off_st);
  pin_back = x->h + 2 * p.in_bytes + up((size_t)ex->n * 4);
  memset(x->h, 0, 2 * p.in_bytes); /* the padding of both staging buffers */
  memcpy(x->h + 2 * p.in_bytes, ex->idx, (size_t)ex->n * 4);
  AM_CHECK(cudaMemcpyAsync(d + p.off_pos, x->h + 2 * p.in_bytes, (size_t)ex->n * 4,
                           cudaMemcpyHostToDevice, x->s));
  AM_CHECK(cudaMemsetAsync(d + p.off_fault, 0xFF, (size_t)L * H * 8, x->s));
  if ((st = am_cuda_long_init(dst, ex->n, ex->target, x->s)) != AM_STATUS_OK)
    goto done;
  a = am_cu_lc_args_t{};
  a.q = d;
  a.k = d + p.off_k;
  a.v = d + p.off_v;
  a.dout = grads ? d + p.off_d : NULL;
  a.pos = (const int *)(d + p.off_pos);
  a.n = ex->n, a.np = p.np, a.dp = p.dp, a.H = H, a.Hkv = ex->Hkv;
  a.scale = (float)ex->attn.scale, a.softcap = (float)ex->attn.softcap;
  a.causal = ex->attn.causal, a.window = ex->attn.sliding_window;
  a.stats = (w & AM_PASS_HEAD_STATS) != 0;
  a.importance = grads && (w & AM_PASS_HEAD_IMPORTANCE);
  a.grid = geo.active, a.prefix = geo.prefix, a.cols = geo.cols;
  a.lse = (double *)(d + p.off_lse);
  a.rows = (double *)(d + p.off_rows);
  a.u = (double *)(d + p.off_u);
  a.w_att = w & AM_PASS_ROLLOUT ? dst + 1 * (size_t)ex->n : NULL;
  a.w_grad = grads && (w & AM_PASS_GRAD_ROLLOUT) ? dst + 2 * (size_t)ex->n : NULL;
  for (int depth = 0; depth < L; depth++) {
    const int l = L - 1 - depth, b = depth & 1;
    unsigned char *pin = x->h + b * p.in_bytes;
    AM_CHECK(cudaEventSynchronize(ev[b])); /* its previous copy has left */
    const int bad = stage_layer(ex, l, &p, pin, inf);
    AM_CHECK(cudaMemcpyAsync(d, pin, p.in_bytes, cudaMemcpyHostToDevice, x->s));
    AM_CHECK(cudaEventRecord(ev[b], x->s));
    a.acc = (double *)(d + p.off_acc) + (size_t)l * H * AM_LR_N;
    a.fault = (unsigned long long *)(d + p.off_fault) + (size_t)l * H;
    a.w_last = l == L - 1 && (w & AM_PASS_ATTENTION_LAST) ? dst + 4 * (size_t)ex->n : NULL;
    if ((st = am_cuda_long_rows(&a, dt, x->s)) != AM_STATUS_OK)
      goto done;
    if (bad) { /* the scores of this layer's other heads may still come first */
      stop = l;
      break;
    }
    if ((st = am_cuda_long_cols(&a, dt, x->s)) != AM_STATUS_OK ||
        (st = am_cuda_long_apply(&a, dst, l == L - 1, x->s)) != AM_STATUS_OK)
      goto done;
  }
  if (stop < 0 &&
      (st = am_cuda_long_finish(dst, ex->n, H, ex->target, opt->normalize,
                                (float *)(d + p.off_out), x->s)) != AM_STATUS_OK)
    goto done;
  AM_CHECK(cudaMemcpyAsync(pin_back, d + p.off_acc, p.dev_bytes - p.off_acc,
                           cudaMemcpyDeviceToHost, x->s));
  AM_CHECK(cudaStreamSynchronize(x->s));
  if (pick_fault(ex, (const unsigned long long *)(pin_back + (p.off_fault - p.off_acc)),
                 stop, inf, f)) {
    st = AM_STATUS_BAD_INPUT;
    goto done;
  }
  store_heads(ex, &geo, (const double *)pin_back, w, out);
  {
    const float *maps = (const float *)(pin_back + (p.off_out - p.off_acc));
    const size_t bytes = (size_t)ex->n * 4;
    if (w & AM_PASS_ATTENTION_LAST)
      memcpy(out->attention_last, maps, bytes);
    if (w & AM_PASS_ROLLOUT)
      memcpy(out->rollout, maps + ex->n, bytes);
    if (w & AM_PASS_GRAD_ROLLOUT)
      memcpy(out->grad_rollout, maps + 2 * (size_t)ex->n, bytes);
  }
done:
  free(table);
  free(inf);
  return st;
}

/* n == 0: statistics of no rows are undefined, importance sums to 0 (as the CPU). */
void write_empty(const am_lc_example_t *ex, unsigned want, am_pass_output_t *out) {
  const size_t LH = (size_t)ex->L * ex->H;
  for (size_t k = 0; k < LH; k++) {
    if (want & AM_PASS_HEAD_STATS)
      for (int s = 0; s < AM_STAT_COUNT; s++)
        out->head_stats[(size_t)s * LH + k] = NAN;
    if (want & AM_PASS_HEAD_IMPORTANCE)
      out->head_importance[k] = 0.0f;
  }
}

/* The examples of one device: e = first, first + step, ..., in order; stops at the first
 * fault (its example in *bad) or error (its message in why). */
typedef struct lc_share {
  am_cu_aux_t *x;
  const am_lc_example_t *ex;
  const am_pass_options_t *opt;
  am_pass_output_t *out;
  int nex, first, step;
  am_status st;
  am_fault_t fault;
  int bad;
  char why[512];
} lc_share_t;

void run_share(lc_share_t *w) {
  am_status st = AM_STATUS_OK;
  cudaEvent_t ev[2] = {NULL, NULL};
  am_cu_aux_t *x = w->x;
  w->bad = -1;
  pthread_mutex_lock(&x->mu);
  AM_CHECK(cudaSetDevice(x->dev));
  AM_CHECK(cudaEventCreateWithFlags(&ev[0], cudaEventDisableTiming));
  AM_CHECK(cudaEventCreateWithFlags(&ev[1], cudaEventDisableTiming));
  for (int e = w->first; e < w->nex && st == AM_STATUS_OK; e += w->step) {
    if (w->ex[e].n == 0) {
      write_empty(&w->ex[e], w->opt->want, &w->out[e]);
      continue;
    }
    st = run_example(x, ev, &w->ex[e], w->opt, &w->out[e], &w->fault);
    if (st == AM_STATUS_BAD_INPUT)
      w->bad = e;
  }
done:
  for (int b = 0; b < 2; b++)
    if (ev[b])
      cudaEventDestroy(ev[b]);
  pthread_mutex_unlock(&x->mu);
  w->st = st;
  if (st != AM_STATUS_OK && st != AM_STATUS_BAD_INPUT) /* the message is per thread */
    snprintf(w->why, sizeof w->why, "%s", am_cuda_error());
}

void *share_thread(void *arg) {
  run_share((lc_share_t *)arg);
  return NULL;
}

} // namespace

am_status am_cu_long_pass(void *state, const am_lc_example_t *ex, int nex,
                          const am_pass_options_t *opt, am_pass_output_t *out,
                          am_fault_t *fault, int *fault_example) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  if (opt && (opt->want & am_pass_needing(AM_NEEDS_STEPS)))
    return am_fail(s->ctx, AM_STATUS_UNSUPPORTED,
                   "cuda: several targets are not computed from the long-context form");
  if (opt && opt->device_pointers) /* the staging reads the rows on the host */
    return am_fail(s->ctx, AM_STATUS_INVALID_ARGUMENT,
                   "cuda: the long-context form (queries/keys/values) from device pointers "
                   "is not computed yet; pass host arrays");
  for (int e = 0; e < nex; e++) {
    const am_status c = am_lc_check_example(&ex[e], opt, &out[e]);
    if (c != AM_STATUS_OK)
      return c;
  }
  const int D = s->ndev < nex ? s->ndev : (nex > 0 ? nex : 1);
  lc_share_t w[AM_CU_MAX_DEVICES];
  pthread_t tid[AM_CU_MAX_DEVICES];
  int started[AM_CU_MAX_DEVICES] = {0};
  for (int d = 0; d < D; d++) {
    w[d] = lc_share_t{};
    w[d].x = &s->lc[d];
    w[d].ex = ex;
    w[d].opt = opt;
    w[d].out = out;
    w[d].nex = nex;
    w[d].first = d;
    w[d].step = D;
  }
  for (int d = 1; d < D; d++) /* device 0's share runs on this thread */
    started[d] = pthread_create(&tid[d], NULL, share_thread, &w[d]) == 0;
  for (int d = 1; d < D; d++)
    if (!started[d])
      run_share(&w[d]);
  run_share(&w[0]);
  for (int d = 1; d < D; d++)
    if (started[d])
      pthread_join(tid[d], NULL);
  /* an error first (device order), else the lowest failing example */
  int bad = -1;
  for (int d = 0; d < D; d++) {
    if (w[d].st != AM_STATUS_OK && w[d].st != AM_STATUS_BAD_INPUT)
      return am_fail(s->ctx, w[d].st, "long_pass: %s", w[d].why);
    if (w[d].st == AM_STATUS_BAD_INPUT && (bad < 0 || w[d].bad < w[bad].bad))
      bad = d;
  }
  if (bad < 0)
    return AM_STATUS_OK;
  *fault = w[bad].fault;
  *fault_example = w[bad].bad;
  return AM_STATUS_BAD_INPUT;
}
