/* flow_op.cu — the CUDA backend's attention flow op (ops/backend.h `flow`).
 *
 * The device solver (cuda/flow.cu, am_cuda_flow) crashed its own test on the first GPU run
 * (H200, 2026-12-04, bench/results/gpu-h200-2026-12-04; a NULL write in its host code,
 * since fixed and checked on the emulator): until a GPU run passes tests/test_flow_cuda.c,
 * this op runs it only when ATTNMAP_CUDA_FLOW=device asks for it, and otherwise returns
 * AM_STATUS_UNSUPPORTED, so that the pipeline runs the CPU reference beside the device
 * (ctx->reference, host/pipeline/chunk.c; docs/cuda.md); the emulator of tests/cuda_emu
 * runs both paths the same way. With ATTNMAP_CUDA_FLOW=device the examples go to
 * am_cuda_flow on the first device, in groups of one shape whose attention blocks fit 1
 * GiB: host inputs are copied block by block as they are ([H,T,T] per layer, padded, any
 * alignment), device pointers are passed as they are. */
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"

#include "cuda/flow.cuh"

#define AM_FLOW_BUDGET ((size_t)1 << 30)

static int same_shape(const am_example_t *a, const am_example_t *b) {
  return a->L == b->L && a->H == b->H && a->T == b->T && a->dtype == b->dtype;
}

/* Examples [e0, e1) of one shape through am_cuda_flow. */
static am_status flow_group(am_cu_state_t *s, const am_example_t *ex, int e0, int e1,
                            const am_pass_options_t *opt, float *const *out) {
  am_cu_aux_t *x = &s->aux;
  am_status st = AM_STATUS_OK;
  const am_example_t *x0 = &ex[e0];
  const int k = e1 - e0, L = x0->L, T = x0->T, dev = opt->device_pointers;
  const size_t block = (size_t)x0->H * T * T * am_dtype_size(x0->dtype);
  const size_t o_idx = am_cu_align((size_t)k * L * sizeof(void *));
  const size_t o_out = am_cu_align(o_idx + (size_t)k * T * 4);
  const size_t o_blk = am_cu_align(o_out + (size_t)k * T * 4);
  const size_t dev_bytes = o_blk + (dev ? 0 : (size_t)k * L * block);
  int *nv = (int *)malloc((size_t)k * sizeof *nv),
      *tg = (int *)malloc((size_t)k * sizeof *tg);
  char err[256] = "";
  am_cuda_flow_batch_t fb;
  if (!nv || !tg) {
    st = am_cuda_fail(AM_STATUS_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  if ((st = am_cu_aux_reserve(x, dev_bytes, o_blk)) != AM_STATUS_OK)
    goto done;
  memset(x->h, 0, o_blk);
  for (int q = 0; q < k; q++) {
    const am_example_t *e = &ex[e0 + q];
    nv[q] = e->n;
    tg[q] = e->target;
    memcpy(x->h + o_idx + (size_t)q * T * 4, e->idx, (size_t)e->n * 4);
    for (int l = 0; l < L; l++) {
      const void *p =
          dev ? e->att[l] : (const void *)(x->d + o_blk + ((size_t)q * L + l) * block);
      memcpy(x->h + ((size_t)q * L + l) * sizeof(void *), &p, sizeof p);
      if (!dev && e->n > 0)
        AM_CHECK(cudaMemcpyAsync(x->d + o_blk + ((size_t)q * L + l) * block, e->att[l],
                                 block, cudaMemcpyHostToDevice, x->s));
    }
  }
  AM_CHECK(cudaMemcpyAsync(x->d, x->h, o_out, cudaMemcpyHostToDevice, x->s));
  fb.nex = k;
  fb.L = L;
  fb.H = x0->H;
  fb.T = T;
  fb.dtype = x0->dtype;
  fb.att = (const void *const *)x->d;
  fb.idx = (const int32_t *)(x->d + o_idx);
  fb.n = nv;
  fb.target = tg;
  fb.fusion = opt->fusion;
  fb.discard = opt->discard;
  fb.out = (float *)(x->d + o_out);
  st = am_cuda_flow(&fb, x->s, err, sizeof err);
  if (st != AM_STATUS_OK) {
    am_cuda_fail(st, "attention flow: %s", err);
    goto done;
  }
  AM_CHECK(
      cudaMemcpyAsync(x->h, x->d + o_out, (size_t)k * T * 4, cudaMemcpyDeviceToHost, x->s));
  AM_CHECK(cudaStreamSynchronize(x->s));
  for (int q = 0; q < k; q++)
    if (ex[e0 + q].n > 0)
      memcpy(out[e0 + q], x->h + (size_t)q * T * 4, (size_t)ex[e0 + q].n * 4);
done:
  free(nv);
  free(tg);
  return st;
}

static int device_flow_asked(void) {
  const char *v = getenv("ATTNMAP_CUDA_FLOW");
  return v && strcmp(v, "device") == 0;
}

am_status am_cu_flow(void *state, const am_example_t *ex, int nex,
                     const am_pass_options_t *opt, float *const *out) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  am_status st = AM_STATUS_OK;
  if (!device_flow_asked())
    return am_fail(s->ctx, AM_STATUS_UNSUPPORTED,
                   "attention flow runs on the CPU beside the GPU until the device solver "
                   "passes its GPU test (docs/cuda.md)%s",
                   opt->device_pointers
                       ? ": give host tensors, or set ATTNMAP_CUDA_FLOW=device "
                         "to run the unverified device solver"
                       : "");
  pthread_mutex_lock(&s->aux.mu);
  for (int e0 = 0; e0 < nex && st == AM_STATUS_OK;) {
    const size_t block =
        (size_t)ex[e0].L * ex[e0].H * ex[e0].T * ex[e0].T * am_dtype_size(ex[e0].dtype);
    int e1 = e0 + 1;
    while (e1 < nex && same_shape(&ex[e0], &ex[e1]) &&
           (opt->device_pointers || (size_t)(e1 - e0 + 1) * block <= AM_FLOW_BUDGET))
      e1++;
    st = flow_group(s, ex, e0, e1, opt, out);
    e0 = e1;
  }
  pthread_mutex_unlock(&s->aux.mu);
  return st == AM_STATUS_OK ? st : am_fail(s->ctx, st, "%s", am_cuda_error());
}
