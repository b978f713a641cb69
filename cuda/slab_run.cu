/* slab_run.cu — a planned slab through one device: inputs copied from the pipeline's
 * views (mapped files) into the slot's pinned memory by the copy threads, one
 * asynchronous copy to the device on the copy stream, the kernels layer by layer from the
 * top on the compute stream (which waits for the copy with an event), one copy of the
 * outputs back, then the outputs scattered into the batch's buffers and the first bad
 * value decoded with the CPU's words and values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"

extern "C" {
#include "core/half.h"
}

/* ---- staging ----------------------------------------------------------------------- */

typedef struct stage_task {
  const am_cu_batch_t *b;
  const am_cu_plan_t *p;
  unsigned char *pin;
  int nw, L, H;
} stage_task_t;

/* Head h of one layer block [H,T,T] of x into dst [n,n] (staged type). */
static void copy_head(unsigned char *dst, const unsigned char *block, const am_example_t *x,
                      int h, size_t es) {
  const int n = x->n, T = x->T;
  const int32_t *idx = x->idx;
  const size_t T2 = (size_t)T * T;
  if (x->dtype == AM_DTYPE_F64) { /* narrowed as am_load_float reads it */
    const unsigned char *src = block + (size_t)h * T2 * 8;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) {
        double d;
        memcpy(&d, src + ((size_t)idx[i] * T + idx[j]) * 8, 8);
        const float f = (float)d;
        memcpy(dst + ((size_t)i * n + j) * 4, &f, 4);
      }
    return;
  }
  const unsigned char *src = block + (size_t)h * T2 * es;
  if (n == T) {
    memcpy(dst, src, T2 * es);
  } else if (idx[n - 1] - idx[0] == n - 1) { /* consecutive valid tokens: row copies */
    for (int i = 0; i < n; i++)
      memcpy(dst + (size_t)i * n * es, src + ((size_t)(idx[0] + i) * T + idx[0]) * es,
             (size_t)n * es);
  } else {
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++)
        memcpy(dst + ((size_t)i * n + j) * es, src + ((size_t)idx[i] * T + idx[j]) * es,
               es);
  }
}

/* Job j: staged example s, layer l, attention or gradient, head h. */
static void stage_job(void *arg, int j) {
  const stage_task_t *t = (const stage_task_t *)arg;
  const int h = j % t->H;
  j /= t->H;
  const int w = j % t->nw;
  j /= t->nw;
  const int l = j % t->L, s = j / t->L;
  const am_cu_ex_t *X = &t->p->ex[s];
  const am_example_t *x = &t->b->ex[t->p->bidx[s]];
  const size_t es = t->p->es, nn = (size_t)X->n * X->n;
  const unsigned char *block = (const unsigned char *)(w ? x->grad[l] : x->att[l]);
  unsigned char *dst = t->pin + (w ? t->p->off_grad : 0) +
                       ((size_t)X->in + ((size_t)l * t->H + h) * nn) * es;
  copy_head(dst, block, x, h, es);
}

/* Device pointers: the valid positions and every layer's source pointers. */
static void stage_tables(const am_cu_batch_t *b, const am_cu_plan_t *p,
                         unsigned char *pin) {
  const int L = b->ex[p->bidx[0]].L;
  for (int s = 0; s < p->nex; s++) {
    const am_example_t *x = &b->ex[p->bidx[s]];
    memcpy(pin + p->off_idx + 4 * (size_t)p->ex[s].idx, x->idx, 4 * (size_t)x->n);
    for (int l = 0; l < L; l++) {
      const void *ptr[2] = {x->att[l], x->grad ? x->grad[l] : NULL};
      for (int w = 0; w < 2; w++)
        memcpy(pin + p->off_src + (((size_t)w * p->nex + s) * L + l) * sizeof(void *),
               &ptr[w], sizeof(void *));
    }
  }
}

void am_cu_stage(am_cu_pool_t *pool, const am_cu_batch_t *b, const am_cu_plan_t *p,
                 unsigned char *pin) {
  if (p->nex == 0)
    return;
  const am_example_t *x0 = &b->ex[p->bidx[0]];
  unsigned char *base = pin - p->pin_off; /* pin holds [pin_off, in_bytes) of the slot */
  if (p->devptr) {
    stage_tables(b, p, base);
  } else {
    stage_task_t t = {b, p, base, p->grads ? 2 : 1, x0->L, x0->H};
    am_cu_pool_run(pool, stage_job, &t, p->nex * t.L * t.nw * t.H);
  }
  memcpy(base + p->off_desc, p->ex, (size_t)p->nex * sizeof(am_cu_ex_t));
  for (int s = 0; s < p->nex; s++)
    if (p->ex[s].S > 0)
      memcpy(base + p->off_steps + 4 * (size_t)p->ex[s].steps, b->ex[p->bidx[s]].steps,
             4 * (size_t)p->ex[s].S);
}

/* ---- the device's work -----------------------------------------------------------------
 */

static am_cu_args_t slab_args(const am_cu_plan_t *p, const am_cu_batch_t *b,
                              unsigned char *dev) {
  const am_example_t *x0 = &b->ex[p->bidx[0]];
  am_cu_args_t a;
  memset(&a, 0, sizeof a);
  a.att = dev;
  a.grad = p->grads ? dev + p->off_grad : NULL;
  a.ex = (const am_cu_ex_t *)(dev + p->off_desc);
  a.nex = p->nex;
  a.L = x0->L;
  a.H = x0->H;
  a.fusion = (int)b->opt.fusion;
  a.normalize = (int)b->opt.normalize;
  a.tol = b->opt.row_tolerance > 0 ? b->opt.row_tolerance : am_row_sum_tolerance(x0->dtype);
  /* The float row sum of <= 4096 values in tiles of 16 per lane, a 5-step tree and <= 8
   * tiles is within ~30 ulp (2e-6) of the exact sum: rows within 3e-5 of the tolerance
   * are rescanned in double in the CPU's order, so a bad row is never missed. */
  a.tol_fast = (float)(a.tol - 3e-5);
  a.grid_rows = b->opt.grid.rows;
  a.grid_cols = b->opt.grid.cols;
  a.grid_prefix = b->opt.grid.prefix;
  a.work = (double *)(dev + p->off_work);
  a.mat = (float *)(dev + p->off_mat);
  a.out = (float *)(dev + p->off_out);
  a.fault = (unsigned long long *)(dev + p->off_fault);
  a.steps = (const int *)(dev + p->off_steps);
  return a;
}

static am_status ensure_blas(am_cu_dev_t *d) {
  am_status st = AM_STATUS_OK;
  if (d->blas)
    return st;
  AM_CHECK(cublasCreate(&d->blas));
  /* full float products, as CBLAS sgemm: no TF32 */
  AM_CHECK(cublasSetMathMode(d->blas, CUBLAS_DEFAULT_MATH));
done:
  return st;
}

/* The all-rows products of one layer for every length group. */
static am_status rows_layer(am_cu_dev_t *d, const am_cu_plan_t *p, am_cu_args_t *a,
                            int *in_tmp, int first) {
  am_status st = AM_STATUS_OK;
  for (int q = 0; q < p->ngroups && st == AM_STATUS_OK; q++) {
    const am_cu_group_t *g = &p->groups[q];
    if (g->PR >= 0)
      st = am_cuda_rows_step(d->blas, &g->g, a->mat + g->F, a->out + g->PR, a->mat + g->TR,
                             &in_tmp[2 * q], first, d->compute);
    if (st == AM_STATUS_OK && g->PG >= 0)
      st = am_cuda_rows_step(d->blas, &g->g, a->mat + g->G, a->out + g->PG, a->mat + g->TG,
                             &in_tmp[2 * q + 1], first, d->compute);
  }
  return st;
}

static am_status rows_finish(am_cu_dev_t *d, const am_cu_plan_t *p, am_cu_args_t *a,
                             const int *in_tmp) {
  am_status st = AM_STATUS_OK;
  for (int q = 0; q < p->ngroups && st == AM_STATUS_OK; q++) {
    const am_cu_group_t *g = &p->groups[q];
    if (g->PR >= 0)
      st = am_cuda_rows_finish(&g->g, a->out + g->PR, a->mat + g->TR, in_tmp[2 * q],
                               d->compute);
    if (st == AM_STATUS_OK && g->PG >= 0)
      st = am_cuda_rows_finish(&g->g, a->out + g->PG, a->mat + g->TG, in_tmp[2 * q + 1],
                               d->compute);
  }
  return st;
}

/* Layer l: the fused read, then the matrix-form steps and the all-rows products. */
static am_status one_layer(am_cu_dev_t *d, const am_cu_plan_t *p, am_cu_args_t *a, int l,
                           int *in_tmp) {
  const unsigned any = p->any;
  a->layer = l;
  am_status st = am_cuda_fused_layer(a, p->dt, p->nbmax, d->compute);
  if (st == AM_STATUS_OK && (any & AM_EXF_DISCARD))
    st = am_cuda_discard(a, d->compute);
  if (st == AM_STATUS_OK && (any & (AM_EXF_ROLL_MAT | AM_EXF_ROLL_STEPS)))
    st = am_cuda_rollout_rowsum(a, p->nmax, d->compute);
  if (st == AM_STATUS_OK && (any & AM_EXF_ROLL_MAT))
    st = am_cuda_rollout_step(a, p->nmax, d->compute);
  if (st == AM_STATUS_OK && (any & AM_EXF_GRAD_MAT))
    st = am_cuda_grad_rollout_step(a, p->nmax, d->compute);
  if (st == AM_STATUS_OK && (any & (AM_EXF_ROLL_STEPS | AM_EXF_GRAD_STEPS)))
    st = am_cuda_steps_layer(a, any, p->nmax, p->smax, d->compute);
  if (st == AM_STATUS_OK && (any & AM_EXF_RROWS))
    st = am_cuda_rollout_hat(a, p->nmax, d->compute);
  if (st == AM_STATUS_OK && (any & AM_EXF_GROWS))
    st = am_cuda_grad_rollout_hat(a, p->nmax, d->compute);
  if (st == AM_STATUS_OK && (any & (AM_EXF_RROWS | AM_EXF_GROWS)))
    st = rows_layer(d, p, a, in_tmp, l == a->L - 1);
  return st;
}

am_status am_cu_kernels(am_cu_dev_t *d, const am_cu_plan_t *p, const am_cu_batch_t *b,
                        unsigned char *dev) {
  am_status st = AM_STATUS_OK;
  am_cu_args_t a = slab_args(p, b, dev);
  int *in_tmp = (int *)calloc(2 * (size_t)p->ngroups + 2, sizeof *in_tmp);
  if (!in_tmp)
    return am_cuda_fail(AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if ((p->any & (AM_EXF_RROWS | AM_EXF_GROWS)) && (st = ensure_blas(d)) != AM_STATUS_OK)
    goto done;
  AM_CHECK(cudaMemsetAsync(a.fault, 0xFF, 8 * (size_t)p->nex, d->compute));
  if (p->any & (AM_EXF_ROLL_MAT | AM_EXF_GRAD_MAT)) {
    st = am_cuda_rollout_init(&a, p->nmax, d->compute);
    if (st != AM_STATUS_OK)
      goto done;
  }
  if ((p->any & (AM_EXF_ROLL_STEPS | AM_EXF_GRAD_STEPS)) &&
      (st = am_cuda_steps_init(&a, p->nmax, p->smax, d->compute)) != AM_STATUS_OK)
    goto done;
  for (int l = a.L - 1; l >= 0; l--) {
    st = one_layer(d, p, &a, l, in_tmp);
    if (st != AM_STATUS_OK)
      goto done;
  }
  st = rows_finish(d, p, &a, in_tmp);
  if (st == AM_STATUS_OK && (p->any & AM_EXF_LAST))
    st = am_cuda_attention_last(&a, p->dt, p->nmax, d->compute);
  if (st == AM_STATUS_OK && (p->any & (AM_EXF_STATS | AM_EXF_IMP)))
    st = am_cuda_head_stats(&a, d->compute);
  if (st == AM_STATUS_OK &&
      (p->any & (AM_EXF_LAST_STEPS | AM_EXF_ROLL_STEPS | AM_EXF_GRAD_STEPS)))
    st = am_cuda_steps_finish(&a, p->dt, p->smax, d->compute);
  if (st == AM_STATUS_OK &&
      (p->any & (AM_EXF_ROLL_INK | AM_EXF_ROLL_MAT | AM_EXF_GRAD_INK | AM_EXF_GRAD_MAT)))
    st = am_cuda_rollout_finish(&a, d->compute);
done:
  free(in_tmp);
  return st;
}

am_status am_cu_enqueue(am_cu_dev_t *d, am_cu_slot_t *slot, const am_cu_batch_t *b) {
  const am_cu_plan_t *p = &slot->plan;
  am_status st = AM_STATUS_OK;
  am_cu_args_t a = slab_args(p, b, slot->dev);
  AM_CHECK(cudaMemcpyAsync(slot->dev + p->pin_off, slot->pin_in, p->in_bytes - p->pin_off,
                           cudaMemcpyHostToDevice, d->copy));
  for (int l = 0; p->devptr && l < a.L; l++)
    for (int w = 0; w < 1 + p->grads; w++)
      if ((st = am_cuda_gather(&a, p, l, w, b->ex[p->bidx[0]].dtype, d->copy)) !=
          AM_STATUS_OK)
        goto done;
  AM_CHECK(cudaEventRecord(slot->staged, d->copy));
  AM_CHECK(cudaStreamWaitEvent(d->compute, slot->staged, 0));
  if ((st = am_cu_kernels(d, p, b, slot->dev)) != AM_STATUS_OK)
    goto done;
  AM_CHECK(cudaMemcpyAsync(slot->pin_out, slot->dev + p->off_out, p->out_bytes,
                           cudaMemcpyDeviceToHost, d->compute));
  AM_CHECK(cudaEventRecord(slot->done, d->compute));
done:
  return st;
}

/* ---- results ------------------------------------------------------------------------- */

/* Element elem of layer l of x's attentions (which 0) or gradients, as the CPU reads
 * it; device pointers are read back one value at a time (only to describe a fault). */
static float load_value(const am_cu_batch_t *b, const am_example_t *x, int which, int l,
                        int64_t elem) {
  const void *base = which ? x->grad[l] : x->att[l];
  if (!b->opt.device_pointers)
    return am_load_float(base, x->dtype, elem);
  unsigned char buf[8];
  const size_t es = am_dtype_size(x->dtype);
  if (cudaMemcpy(buf, (const unsigned char *)base + (size_t)elem * es, es,
                 cudaMemcpyDeviceToHost) != cudaSuccess) {
    (void)cudaGetLastError();
    return NAN;
  }
  return am_load_float(buf, x->dtype, 0);
}

/* The CPU's fault for the key found on example x: kind and value read back from the
 * input as the CPU reads them (the row sum in double, keys in order). */
static void decode_fault(const am_cu_batch_t *b, const am_example_t *x,
                         unsigned long long key, am_fault_t *f) {
  const int n = x->n, H = x->H, T = x->T;
  const unsigned long long width = 2ull * n + 1;
  const int sub = (int)(key % width);
  unsigned long long row = key / width;
  f->row = (int)(row % (unsigned)n);
  row /= (unsigned)n;
  f->head = (int)(row % (unsigned)H);
  f->layer = x->L - 1 - (int)(row / (unsigned)H);
  const int64_t base = ((int64_t)f->head * T + x->idx[f->row]) * T;
  if (sub < n) {
    const float v = load_value(b, x, 0, f->layer, base + x->idx[sub]);
    f->kind = isfinite(v) ? AM_FAULT_ATT_NEGATIVE : AM_FAULT_ATT_NOT_FINITE;
    f->value = v;
  } else if (sub == n) {
    double sum = 0.0;
    for (int j = 0; j < n; j++)
      sum += load_value(b, x, 0, f->layer, base + x->idx[j]);
    f->kind = AM_FAULT_ATT_ROW_SUM;
    f->value = sum;
  } else {
    f->kind = AM_FAULT_GRAD_NOT_FINITE;
    f->value = load_value(b, x, 1, f->layer, base + x->idx[sub - n - 1]);
  }
}

static void put(float *dst, const unsigned char *pin_out, long long off, size_t count) {
  if (dst && off >= 0)
    memcpy(dst, pin_out + (size_t)off * sizeof(float), count * sizeof(float));
}

int am_cu_collect(const am_cu_batch_t *b, const am_cu_plan_t *p,
                  const unsigned char *pin_out, am_fault_t *fault) {
  int bad = -1;
  for (int s = 0; s < p->nex && bad < 0; s++) {
    const unsigned char *keys = pin_out + (p->off_fault - p->off_out);
    unsigned long long key;
    memcpy(&key, keys + 8 * (size_t)s, 8);
    if (key != AM_CU_FAULT_NONE) {
      bad = p->bidx[s];
      memset(fault, 0, sizeof *fault);
      decode_fault(b, &b->ex[bad], key, fault);
    }
  }
  for (int s = 0; s < p->nex; s++) {
    const am_cu_ex_t *X = &p->ex[s];
    const am_example_t *x = &b->ex[p->bidx[s]];
    am_pass_output_t *o = &b->out[p->bidx[s]];
    const size_t n = (size_t)X->n, LH = (size_t)x->L * x->H;
    put(o->head_stats, pin_out, X->o_stats, AM_STAT_COUNT * LH);
    put(o->head_importance, pin_out, X->o_imp, LH);
    put(o->attention_last, pin_out, X->o_last, n);
    put(o->rollout, pin_out, X->o_roll, n);
    put(o->grad_rollout, pin_out, X->o_grad, n);
    put(o->rollout_rows, pin_out, X->o_rrows, n * n);
    put(o->grad_rollout_rows, pin_out, X->o_grows, n * n);
    put(o->attention_last_steps, pin_out, X->o_lsteps, (size_t)X->S * n);
    put(o->rollout_steps, pin_out, X->o_rsteps, (size_t)X->S * n);
    put(o->grad_rollout_steps, pin_out, X->o_gsteps, (size_t)X->S * n);
  }
  /* n == 0: statistics of no rows are undefined, importance sums to 0 (as the CPU) */
  for (int e = p->e0; e < p->e1; e++) {
    const am_example_t *x = &b->ex[e];
    if (x->n != 0)
      continue;
    const size_t LH = (size_t)x->L * x->H;
    if (b->opt.want & AM_PASS_HEAD_STATS)
      for (size_t k = 0; k < AM_STAT_COUNT * LH; k++)
        b->out[e].head_stats[k] = NAN;
    if (b->opt.want & AM_PASS_HEAD_IMPORTANCE)
      for (size_t k = 0; k < LH; k++)
        b->out[e].head_importance[k] = 0.0f;
  }
  return bad;
}
