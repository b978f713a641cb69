/* widen.cu — element types on the device: F16 and BF16 widened to F32 (the same
 * conversions the fused kernels do in registers, am_ld in cuda_common.cuh), and the
 * gather that stages inputs given as device pointers: the valid rows and keys of each
 * head copied compact [H,n,n] into the slab, F64 narrowed to F32 as the CPU reads it.
 *
 * Work mapping: one thread per element, grid-stride (widen); grid = (n^2/256, H,
 * examples) per layer (gather). Bytes: widen reads es and writes 4 per element; gather
 * reads and writes es per valid element (reads 8, writes 4 for F64). No flops. */
#include <stdint.h>
#include <string.h>

#include "cuda/cuda_internal.h"

namespace {

__global__ void __launch_bounds__(256)
    widen_kernel(const void *src, int dt, size_t count, float *dst) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
       i += (size_t)gridDim.x * blockDim.x)
    dst[i] = am_ld_any(src, dt, i);
}

/* Element elem of a source of es bytes per element, aligned or not. */
__device__ __forceinline__ unsigned long long load_bits(const unsigned char *p, size_t elem,
                                                        int es) {
  const unsigned char *q = p + elem * es;
  if (((uintptr_t)q & (uintptr_t)(es - 1)) == 0)
    return es == 8   ? *(const unsigned long long *)q
           : es == 4 ? *(const unsigned *)q
                     : *(const unsigned short *)q;
  unsigned long long v = 0;
  for (int b = 0; b < es; b++)
    v |= (unsigned long long)q[b] << (8 * b);
  return v;
}

__global__ void __launch_bounds__(256)
    gather_kernel(am_cu_args_t a, const unsigned char *const *src, const int *idx,
                  int layer, int which, int src_es, int f64) {
  const am_cu_ex_t X = a.ex[blockIdx.z];
  const long long n = X.n, p = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= n * n)
    return;
  const int h = blockIdx.y, i = (int)(p / n), j = (int)(p - i * n);
  const int *id = idx + X.idx;
  const unsigned char *s = src[((size_t)which * a.nex + blockIdx.z) * a.L + layer];
  const size_t elem = ((size_t)h * X.T + id[i]) * X.T + id[j];
  const size_t at = X.in + ((size_t)layer * a.H + h) * (size_t)(n * n) + p;
  const unsigned long long bits = load_bits(s, elem, src_es);
  unsigned char *dst = (unsigned char *)(which ? a.grad : a.att);
  if (f64) {
    double d;
    memcpy(&d, &bits, 8);
    ((float *)dst)[at] = (float)d;
  } else if (src_es == 4) {
    ((unsigned *)dst)[at] = (unsigned)bits;
  } else {
    ((unsigned short *)dst)[at] = (unsigned short)bits;
  }
}

} // namespace

am_status am_cuda_gather(const am_cu_args_t *a, const am_cu_plan_t *p, int l, int which,
                         am_dtype src_dtype, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  const unsigned char *base = (const unsigned char *)a->att;
  const unsigned char *const *src = (const unsigned char *const *)(base + p->off_src);
  const int *idx = (const int *)(base + p->off_idx);
  const long long nn = (long long)p->nmax * p->nmax;
  const dim3 grid((unsigned)((nn + 255) / 256), (unsigned)a->H, (unsigned)a->nex);
  AM_LAUNCH(gather_kernel, grid, dim3(256), 0, s, *a, src, idx, l, which,
            (int)am_dtype_size(src_dtype), src_dtype == AM_DTYPE_F64 ? 1 : 0);
done:
  return st;
}

am_status am_cu_aux_reserve(am_cu_aux_t *x, size_t dev_bytes, size_t host_bytes) {
  am_status st = AM_STATUS_OK;
  AM_CHECK(cudaSetDevice(x->dev));
  if (!x->s)
    AM_CHECK(cudaStreamCreateWithFlags(&x->s, cudaStreamNonBlocking));
  if (x->d_cap < dev_bytes) {
    AM_CHECK(cudaFree(x->d));
    x->d = NULL;
    x->d_cap = 0;
    AM_CHECK(cudaMalloc((void **)&x->d, dev_bytes));
    x->d_cap = dev_bytes;
  }
  if (x->h_cap < host_bytes) {
    AM_CHECK(cudaFreeHost(x->h));
    x->h = NULL;
    x->h_cap = 0;
    AM_CHECK(cudaHostAlloc((void **)&x->h, host_bytes, cudaHostAllocDefault));
    x->h_cap = host_bytes;
  }
done:
  return st;
}

/* F32/F16/BF16 elements -> floats through the device (the parity suite compares every
 * F16 and BF16 bit pattern with the host conversion). */
static am_status widen_locked(am_cu_aux_t *x, am_dtype dtype, const void *src, size_t count,
                              float *dst) {
  const size_t es = am_dtype_size(dtype);
  am_status st =
      am_cu_aux_reserve(x, count * es + count * 4 + 256, count * (es > 4 ? es : 4) + 1);
  const int dt = am_cu_dt(dtype);
  float *d_out = (float *)(x->d + ((count * es + 255) & ~(size_t)255));
  if (st != AM_STATUS_OK)
    return st;
  memcpy(x->h, src, count * es);
  AM_CHECK(cudaMemcpyAsync(x->d, x->h, count * es, cudaMemcpyHostToDevice, x->s));
  AM_LAUNCH(
      widen_kernel,
      dim3(count ? (unsigned)((count + 255) / 256 < 4096 ? (count + 255) / 256 : 4096) : 1),
      dim3(256), 0, x->s, (const void *)x->d, dt, count, d_out);
  AM_CHECK(cudaMemcpyAsync(x->h, d_out, count * 4, cudaMemcpyDeviceToHost, x->s));
  AM_CHECK(cudaStreamSynchronize(x->s));
  memcpy(dst, x->h, count * 4);
done:
  return st;
}

am_status am_cuda_widen(void *state, am_dtype dtype, const void *src, size_t count,
                        float *dst) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  if (!s || !src || !dst ||
      !(dtype == AM_DTYPE_F32 || dtype == AM_DTYPE_F16 || dtype == AM_DTYPE_BF16))
    return AM_STATUS_INVALID_ARGUMENT;
  pthread_mutex_lock(&s->aux.mu);
  const am_status st = widen_locked(&s->aux, dtype, src, count, dst);
  pthread_mutex_unlock(&s->aux.mu);
  if (st != AM_STATUS_OK)
    am_fail(s->ctx, st, "widen: %s", am_cuda_error());
  return st;
}

void *am_cuda_device_copy(void *state, const void *src, size_t bytes) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  void *p = NULL;
  if (!s || cudaSetDevice(s->aux.dev) != cudaSuccess ||
      cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
    (void)cudaGetLastError();
    return NULL;
  }
  if (cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
    (void)cudaGetLastError();
    cudaFree(p);
    return NULL;
  }
  return p;
}

void am_cuda_device_free(void *state, void *p) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  if (s && p && cudaSetDevice(s->aux.dev) == cudaSuccess)
    cudaFree(p);
}
