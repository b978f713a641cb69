/* saliency.cu — token saliency from input embeddings and their gradients (docs/design.md
 * §3, the CPU reference host/cpu/saliency.c): per valid token, over the embedding
 * dimension D, grad_l2 = ||g||_2 (inseq), grad_x_input = sum_d g_d x_d (Captum) and
 * abs_grad_x_input = |sum_d g_d x_d|, products and sums in double as the CPU.
 *
 * Work mapping: one warp per token (256 threads = 8 tokens per block), lanes stride D and
 * reduce with shuffles. The valid rows are staged compact [tokens, D] in their own types
 * (F64 narrowed to F32 while staging, as the CPU reads it) and widened in registers.
 * Per token: reads D*(es_x + es_g) bytes, 4D flops, writes 12 bytes. */
#include <math.h>
#include <string.h>

#include "cuda/cuda_internal.h"

namespace {

__global__ void __launch_bounds__(256)
    saliency_kernel(const void *emb, int edt, const void *grad, int gdt, int D,
                    long long ntok, float *out) {
  const long long t = (long long)blockIdx.x * 8 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (t >= ntok)
    return; /* whole warps */
  double gg = 0.0, gx = 0.0;
  for (int d = lane; d < D; d += 32) {
    const double g = am_ld_any(grad, gdt, (size_t)t * D + d);
    const double x = am_ld_any(emb, edt, (size_t)t * D + d);
    gg += g * g;
    gx += g * x;
  }
  gg = am_group_sum_d(gg, 32);
  gx = am_group_sum_d(gx, 32);
  if (lane == 0) {
    out[t] = (float)sqrt(gg);
    out[ntok + t] = (float)gx;
    out[2 * ntok + t] = (float)fabs(gx);
  }
}

/* Row idx of a [T,D] array in dtype into dst in the staged type. */
static void stage_row(unsigned char *dst, const void *src, am_dtype dtype, int D, int row) {
  const size_t es = am_dtype_size(dtype);
  const unsigned char *s = (const unsigned char *)src + (size_t)row * D * es;
  if (dtype != AM_DTYPE_F64) {
    memcpy(dst, s, (size_t)D * es);
    return;
  }
  for (int d = 0; d < D; d++) {
    double v;
    memcpy(&v, s + (size_t)d * 8, 8);
    const float f = (float)v;
    memcpy(dst + (size_t)d * 4, &f, 4);
  }
}

/* Examples [e0, e1): their valid tokens staged, computed and scattered. */
static am_status run_examples(am_cu_aux_t *x, int e0, int e1, int D, const void *const *emb,
                              am_dtype edt, const void *const *grad, am_dtype gdt,
                              const int32_t *const *idx, const int *n, float *const *out) {
  am_status st = AM_STATUS_OK;
  const size_t ese = edt == AM_DTYPE_F64 ? 4 : am_dtype_size(edt);
  const size_t esg = gdt == AM_DTYPE_F64 ? 4 : am_dtype_size(gdt);
  long long ntok = 0;
  for (int e = e0; e < e1; e++)
    ntok += n[e];
  const size_t o_g = am_cu_align((size_t)ntok * D * ese);
  const size_t o_out = am_cu_align(o_g + (size_t)ntok * D * esg);
  const size_t out_bytes = 3 * (size_t)ntok * 4;
  long long t = 0;
  if (ntok == 0)
    return st;
  st = am_cu_aux_reserve(x, o_out + out_bytes, o_out > out_bytes ? o_out : out_bytes);
  if (st != AM_STATUS_OK)
    return st;
  for (int e = e0; e < e1; e++)
    for (int i = 0; i < n[e]; i++, t++) {
      stage_row(x->h + (size_t)t * D * ese, emb[e], edt, D, idx[e][i]);
      stage_row(x->h + o_g + (size_t)t * D * esg, grad[e], gdt, D, idx[e][i]);
    }
  AM_CHECK(cudaMemcpyAsync(x->d, x->h, o_out, cudaMemcpyHostToDevice, x->s));
  AM_LAUNCH(saliency_kernel, dim3((unsigned)((ntok + 7) / 8)), dim3(256), 0, x->s,
            (const void *)x->d, am_cu_dt(edt), (const void *)(x->d + o_g), am_cu_dt(gdt), D,
            ntok, (float *)(x->d + o_out));
  AM_CHECK(cudaMemcpyAsync(x->h, x->d + o_out, out_bytes, cudaMemcpyDeviceToHost, x->s));
  AM_CHECK(cudaStreamSynchronize(x->s));
  t = 0;
  for (int e = e0; e < e1; e++) {
    for (int k = 0; k < 3; k++)
      if (out[3 * e + k])
        memcpy(out[3 * e + k], x->h + ((size_t)k * ntok + t) * 4, (size_t)n[e] * 4);
    t += n[e];
  }
done:
  return st;
}

} // namespace

am_status am_cuda_saliency_run(am_cu_state_t *s, int nex, int D, const void *const *emb,
                               am_dtype emb_dtype, const void *const *grad,
                               am_dtype grad_dtype, const int32_t *const *idx, const int *n,
                               float *const *out) {
  am_status st = AM_STATUS_OK;
  pthread_mutex_lock(&s->aux.mu);
  /* batches of about 64 MiB of staged rows */
  const size_t row = (size_t)D * 8;
  for (int e0 = 0; e0 < nex && st == AM_STATUS_OK;) {
    size_t bytes = 0;
    int e1 = e0;
    while (e1 < nex && (e1 == e0 || bytes + (size_t)n[e1] * row <= ((size_t)64 << 20)))
      bytes += (size_t)n[e1++] * row;
    st = run_examples(&s->aux, e0, e1, D, emb, emb_dtype, grad, grad_dtype, idx, n, out);
    e0 = e1;
  }
  pthread_mutex_unlock(&s->aux.mu);
  return st;
}
