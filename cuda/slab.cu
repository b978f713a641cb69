/* slab.cu — one slab of a batch on one device: what each example needs (flags, bytes),
 * where everything sits in the slot (the plan), the copy of the inputs into pinned
 * memory, the sequence of copies and kernels on the device's streams, and the results
 * brought back into the pipeline's buffers.
 *
 * Inputs are staged compact [L,H,n,n] per example whatever the padding: a whole-block
 * memcpy when there is none, a row memcpy per valid row when the valid tokens are
 * consecutive, an element gather otherwise (holes in the mask). F64 is narrowed to F32
 * here, as the CPU reference reads it. Any byte offset of the source is fine (memcpy).
 * Matrices and all-rows products are laid out by example length so that the examples of
 * one length form one strided batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"

extern "C" {
#include "core/half.h"
#include "ops/grid.h"
}

unsigned am_cu_example_flags(const am_cu_batch_t *b, int e, unsigned long long *kdrop) {
  const am_example_t *x = &b->ex[e];
  const am_pass_options_t *o = &b->opt;
  const unsigned w = o->want;
  const int n = x->n;
  const unsigned long long nn = (unsigned long long)n * n;
  unsigned f = 0;
  unsigned long long k = 0;
  if (w & AM_PASS_HEAD_STATS)
    f |= AM_EXF_STATS;
  if (w & AM_PASS_HEAD_IMPORTANCE)
    f |= AM_EXF_IMP;
  if (x->grad)
    f |= AM_EXF_GRADS;
  if (w & (AM_PASS_ROLLOUT | AM_PASS_ROLLOUT_ROWS | AM_PASS_ROLLOUT_STEPS)) {
    /* as vit-explain's int(n*n*d) and the CPU, in double */
    k = (unsigned long long)floor((double)nn * o->discard);
    if (k > 0 && k < nn)
      f |= AM_EXF_DISCARD;
  }
  if (w & AM_PASS_ROLLOUT)
    f |= n <= AM_CU_FAST_MAX && !(f & AM_EXF_DISCARD) ? AM_EXF_ROLL_INK : AM_EXF_ROLL_MAT;
  if ((f & AM_EXF_ROLL_MAT) || (w & AM_PASS_ROLLOUT_ROWS))
    f |= AM_EXF_WRITE_F;
  if (w & AM_PASS_GRAD_ROLLOUT)
    f |= n <= AM_CU_FAST_MAX ? AM_EXF_GRAD_INK : AM_EXF_GRAD_MAT;
  if ((f & AM_EXF_GRAD_MAT) || (w & AM_PASS_GRAD_ROLLOUT_ROWS))
    f |= AM_EXF_WRITE_G;
  if ((f & AM_EXF_STATS) && am_grid_table_size(&o->grid, n) > 0)
    f |= AM_EXF_GRID;
  if (w & AM_PASS_ATTENTION_LAST)
    f |= AM_EXF_LAST;
  if (w & AM_PASS_ROLLOUT_ROWS)
    f |= AM_EXF_RROWS;
  if (w & AM_PASS_GRAD_ROLLOUT_ROWS)
    f |= AM_EXF_GROWS;
  if (w & AM_PASS_ATTENTION_LAST_STEPS)
    f |= AM_EXF_LAST_STEPS;
  if (w & AM_PASS_ROLLOUT_STEPS)
    f |= AM_EXF_ROLL_STEPS | AM_EXF_WRITE_F;
  if (w & AM_PASS_GRAD_ROLLOUT_STEPS)
    f |= AM_EXF_GRAD_STEPS | AM_EXF_WRITE_G;
  if (!(f & AM_EXF_DISCARD))
    k = 0;
  *kdrop = k;
  return f;
}

/* Step rows of example x the pass computes (0: none). */
static int steps_of(const am_example_t *x, unsigned f) {
  return (f & (AM_EXF_LAST_STEPS | AM_EXF_ROLL_STEPS | AM_EXF_GRAD_STEPS)) ? x->nsteps : 0;
}

/* Doubles of work of the step rows: [RS n][V S n][W S n] and [V S n][W S n]. */
static size_t steps_work(int n, int S, unsigned f, int grad) {
  const size_t sn = (size_t)S * n;
  if (grad)
    return (f & AM_EXF_GRAD_STEPS) ? 2 * sn : 0;
  return (f & AM_EXF_ROLL_STEPS) ? n + 2 * sn : 0;
}

/* Doubles of work, floats of matrices and of outputs of an example of n tokens and S
 * step rows. */
static void example_sizes(int L, int H, int n, int S, unsigned f, size_t *work, size_t *mat,
                          size_t *out) {
  const size_t nn = (size_t)n * n, LH = (size_t)L * H;
  *work = (f & (AM_EXF_STATS | AM_EXF_IMP)) ? LH * am_cu_nb(n) * AM_CU_NSTAT : 0;
  if (f & (AM_EXF_ROLL_INK | AM_EXF_ROLL_MAT))
    *work += (size_t)am_cu_roll_doubles(n, (f & AM_EXF_ROLL_INK) != 0);
  if (f & (AM_EXF_GRAD_INK | AM_EXF_GRAD_MAT))
    *work += (size_t)am_cu_grad_doubles(n, (f & AM_EXF_GRAD_INK) != 0);
  *work += steps_work(n, S, f, 0) + steps_work(n, S, f, 1);
  *mat = nn * (!!(f & AM_EXF_WRITE_F) + !!(f & AM_EXF_WRITE_G) + !!(f & AM_EXF_RROWS) +
               !!(f & AM_EXF_GROWS));
  *out = ((f & AM_EXF_STATS) ? AM_STAT_COUNT * LH : 0) + ((f & AM_EXF_IMP) ? LH : 0) +
         (size_t)n * (!!(f & AM_EXF_LAST) + !!(f & (AM_EXF_ROLL_INK | AM_EXF_ROLL_MAT)) +
                      !!(f & (AM_EXF_GRAD_INK | AM_EXF_GRAD_MAT))) +
         nn * (!!(f & AM_EXF_RROWS) + !!(f & AM_EXF_GROWS)) +
         (size_t)S * n *
             (!!(f & AM_EXF_LAST_STEPS) + !!(f & AM_EXF_ROLL_STEPS) +
              !!(f & AM_EXF_GRAD_STEPS));
}

void am_cu_example_bytes(const am_cu_batch_t *b, int e, size_t *dev, size_t *pin_in,
                         size_t *pin_out) {
  const am_example_t *x = &b->ex[e];
  *dev = *pin_in = *pin_out = 0;
  if (x->n < 1)
    return;
  unsigned long long kdrop;
  const unsigned f = am_cu_example_flags(b, e, &kdrop);
  size_t work, mat, out;
  const int S = steps_of(x, f);
  example_sizes(x->L, x->H, x->n, S, f, &work, &mat, &out);
  const size_t in = (size_t)x->L * x->H * x->n * x->n *
                    (x->dtype == AM_DTYPE_F64 ? 4 : am_dtype_size(x->dtype)) *
                    (x->grad ? 2 : 1);
  const size_t tables =
      sizeof(am_cu_ex_t) + 4 * (size_t)x->n + 16 * (size_t)x->L + 4 * (size_t)S + 8;
  *pin_in = b->opt.device_pointers ? tables : in + tables;
  *pin_out = out * sizeof(float) + 8;
  *dev = in + tables + work * sizeof(double) + mat * sizeof(float) + *pin_out;
}

void am_cu_plan_free(am_cu_plan_t *p) {
  free(p->bidx);
  free(p->ex);
  free(p->groups);
  memset(p, 0, sizeof *p);
}

static int cmp_by_length(const void *pa, const void *pb, void *ctx) {
  const am_cu_ex_t *ex = (const am_cu_ex_t *)ctx;
  const int a = *(const int *)pa, b = *(const int *)pb;
  if (ex[a].n != ex[b].n)
    return ex[a].n < ex[b].n ? -1 : 1;
  return (a > b) - (a < b);
}

/* Matrices (mat) and rows outputs (out) by length: one strided batch per length. */
static void place_matrices(am_cu_plan_t *p, size_t *mat, size_t *out) {
  int *ord = (int *)malloc((size_t)p->nex * sizeof *ord);
  for (int s = 0; s < p->nex; s++)
    ord[s] = s;
  qsort_r(ord, (size_t)p->nex, sizeof *ord, cmp_by_length, p->ex);
  p->ngroups = 0;
  for (int a = 0; a < p->nex;) {
    int z = a;
    while (z < p->nex && p->ex[ord[z]].n == p->ex[ord[a]].n)
      z++;
    const unsigned f = p->ex[ord[a]].flags; /* one length: the same flags */
    const long long nn = (long long)p->ex[ord[a]].n * p->ex[ord[a]].n, cnt = z - a;
    am_cu_group_t *g = &p->groups[p->ngroups++];
    g->g.n = p->ex[ord[a]].n;
    g->g.count = (int)cnt;
    g->F = g->G = g->TR = g->TG = g->PR = g->PG = -1;
    long long *slots[4] = {&g->F, &g->G, &g->TR, &g->TG};
    const unsigned bits[4] = {AM_EXF_WRITE_F, AM_EXF_WRITE_G, AM_EXF_RROWS, AM_EXF_GROWS};
    for (int q = 0; q < 4; q++)
      if (f & bits[q]) {
        *slots[q] = (long long)*mat;
        *mat += (size_t)(cnt * nn);
      }
    if (f & AM_EXF_RROWS) {
      g->PR = (long long)*out;
      *out += (size_t)(cnt * nn);
    }
    if (f & AM_EXF_GROWS) {
      g->PG = (long long)*out;
      *out += (size_t)(cnt * nn);
    }
    for (int r = 0; r < cnt; r++) {
      am_cu_ex_t *X = &p->ex[ord[a + r]];
      X->F = g->F >= 0 ? g->F + r * nn : -1;
      X->G = g->G >= 0 ? g->G + r * nn : -1;
      X->o_rrows = g->PR >= 0 ? g->PR + r * nn : -1;
      X->o_grows = g->PG >= 0 ? g->PG + r * nn : -1;
    }
    a = z;
  }
  free(ord);
}

static am_status plan_arrays(am_cu_plan_t *p, int count) {
  if (count <= p->cap)
    return AM_STATUS_OK;
  free(p->bidx);
  free(p->ex);
  free(p->groups);
  p->bidx = (int *)malloc((size_t)count * sizeof *p->bidx);
  p->ex = (am_cu_ex_t *)malloc((size_t)count * sizeof *p->ex);
  p->groups = (am_cu_group_t *)malloc((size_t)count * sizeof *p->groups);
  p->cap = p->bidx && p->ex && p->groups ? count : 0;
  return p->cap ? AM_STATUS_OK : am_cuda_fail(AM_STATUS_OUT_OF_MEMORY, "out of memory");
}

/* Staged example s = batch example e: its descriptor, inputs, work and outputs placed
 * after what is already placed (in: elements, work: doubles, out: floats). */
static void place_example(am_cu_plan_t *p, const am_cu_batch_t *b, int e, size_t *in,
                          size_t *work, size_t *out, int *nidx, int *nsteps) {
  const am_example_t *x = &b->ex[e];
  am_cu_ex_t *X = &p->ex[p->nex];
  memset(X, 0, sizeof *X);
  p->bidx[p->nex++] = e;
  const int n = x->n;
  const size_t nn = (size_t)n * n, LH = (size_t)x->L * x->H;
  X->n = n;
  X->target = x->target;
  X->T = x->T;
  X->idx = *nidx;
  *nidx += n;
  X->flags = am_cu_example_flags(b, e, &X->kdrop);
  p->any |= X->flags;
  p->grads |= x->grad != NULL;
  p->nmax = n > p->nmax ? n : p->nmax;
  const int cls = am_cu_group(n) == 8 ? 0 : am_cu_group(n) == 16 ? 1 : 2;
  p->nbmax[cls] = am_cu_nb(n) > p->nbmax[cls] ? am_cu_nb(n) : p->nbmax[cls];
  X->in = (long long)*in;
  *in += LH * nn;
  const unsigned f = X->flags;
  X->stats = X->roll = X->grad = -1;
  if (f & (AM_EXF_STATS | AM_EXF_IMP)) {
    X->stats = (long long)*work;
    *work += LH * am_cu_nb(n) * AM_CU_NSTAT;
  }
  if (f & (AM_EXF_ROLL_INK | AM_EXF_ROLL_MAT)) {
    X->roll = (long long)*work;
    *work += (size_t)am_cu_roll_doubles(n, (f & AM_EXF_ROLL_INK) != 0);
  }
  if (f & (AM_EXF_GRAD_INK | AM_EXF_GRAD_MAT)) {
    X->grad = (long long)*work;
    *work += (size_t)am_cu_grad_doubles(n, (f & AM_EXF_GRAD_INK) != 0);
  }
  X->S = steps_of(x, f);
  X->steps = *nsteps;
  *nsteps += X->S;
  p->smax = X->S > p->smax ? X->S : p->smax;
  X->rsteps = X->gsteps = -1;
  if (f & AM_EXF_ROLL_STEPS) {
    X->rsteps = (long long)*work;
    *work += steps_work(n, X->S, f, 0);
  }
  if (f & AM_EXF_GRAD_STEPS) {
    X->gsteps = (long long)*work;
    *work += steps_work(n, X->S, f, 1);
  }
  const size_t sn = (size_t)X->S * n;
  long long *outs[8] = {&X->o_stats, &X->o_imp,    &X->o_last,   &X->o_roll,
                        &X->o_grad,  &X->o_lsteps, &X->o_rsteps, &X->o_gsteps};
  const size_t sizes[8] = {AM_STAT_COUNT * LH, LH, (size_t)n, (size_t)n,
                           (size_t)n,          sn, sn,        sn};
  const unsigned bits[8] = {AM_EXF_STATS,
                            AM_EXF_IMP,
                            AM_EXF_LAST,
                            AM_EXF_ROLL_INK | AM_EXF_ROLL_MAT,
                            AM_EXF_GRAD_INK | AM_EXF_GRAD_MAT,
                            AM_EXF_LAST_STEPS,
                            AM_EXF_ROLL_STEPS,
                            AM_EXF_GRAD_STEPS};
  for (int q = 0; q < 8; q++) {
    *outs[q] = (f & bits[q]) ? (long long)*out : -1;
    *out += (f & bits[q]) ? sizes[q] : 0;
  }
}

am_status am_cu_plan_build(const am_cu_batch_t *b, int e0, int e1, am_cu_plan_t *p) {
  const am_example_t *x0 = &b->ex[e0];
  am_status st = plan_arrays(p, e1 - e0);
  if (st != AM_STATUS_OK)
    return st;
  p->e0 = e0;
  p->e1 = e1;
  p->nex = 0;
  p->dt = am_cu_dt(x0->dtype);
  p->es = p->dt == AM_DT_F32 ? 4 : 2;
  p->grads = 0;
  p->any = 0;
  p->nmax = 0;
  p->nbmax[0] = p->nbmax[1] = p->nbmax[2] = 0;
  p->smax = 0;
  p->devptr = b->opt.device_pointers != 0;
  size_t in = 0, work = 0, mat = 0, out = 0; /* elements, doubles, floats, floats */
  int nidx = 0, nsteps = 0;
  for (int e = e0; e < e1; e++)
    if (b->ex[e].n >= 1)
      place_example(p, b, e, &in, &work, &out, &nidx, &nsteps);
  place_matrices(p, &mat, &out);
  const size_t att_bytes = in * p->es;
  p->off_grad = am_cu_align(att_bytes);
  p->off_desc = p->off_grad + (p->grads ? am_cu_align(att_bytes) : 0);
  p->off_idx = p->off_desc + (size_t)p->nex * sizeof(am_cu_ex_t);
  /* the step targets; with device pointers after the valid positions */
  p->off_steps = p->off_idx + (p->devptr ? 4 * (size_t)nidx : 0);
  p->in_bytes = p->off_steps + 4 * (size_t)nsteps;
  p->pin_off = 0;
  if (p->devptr) { /* valid positions and the source pointers of every layer */
    p->off_src = (p->in_bytes + 7) & ~(size_t)7;
    p->in_bytes = p->off_src + 2 * (size_t)p->nex * x0->L * sizeof(void *);
    p->pin_off = p->off_desc;
  }
  p->off_work = am_cu_align(p->in_bytes);
  p->off_mat = am_cu_align(p->off_work + work * sizeof(double));
  p->off_out = am_cu_align(p->off_mat + mat * sizeof(float));
  p->off_fault = p->off_out + ((out * sizeof(float) + 7) & ~(size_t)7);
  p->dev_bytes = p->off_fault + 8 * (size_t)p->nex;
  p->out_bytes = p->dev_bytes - p->off_out;
  return AM_STATUS_OK;
}
