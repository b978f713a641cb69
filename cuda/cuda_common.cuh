/* cuda_common.cuh — what every file of the CUDA backend shares: the one macro through which
 * every CUDA and cuBLAS call is checked, the launch macro (plain <<<>>> on a GPU, the
 * block-by-block emulator of tests/cuda_emu when AM_CUDA_EMU is defined), element loads
 * that widen F16/BF16 in registers, and warp/group reductions.
 *
 * Error handling: AM_CHECK(call) records a message ("file:line: call: CUDA error text")
 * in a per-thread buffer (am_cuda_error()) and jumps to the function's `done` label with
 * `st` set; an allocation failure maps to AM_STATUS_OUT_OF_MEMORY, everything else to
 * AM_STATUS_DEVICE. */
#ifndef AM_CUDA_COMMON_CUH
#define AM_CUDA_COMMON_CUH

#ifndef AM_CUDA_EMU
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include <float.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern "C" {
#include "attnmap.h"
}

/* ---- errors ----------------------------------------------------------------------- */

/* The calling thread's last CUDA failure message ("" when none). */
const char *am_cuda_error(void);
/* Records a message for the calling thread (printf-style) and returns status. */
am_status am_cuda_fail(am_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
am_status am_cuda_check(cudaError_t err, const char *what, const char *file, int line);
am_status am_cuda_check(cublasStatus_t err, const char *what, const char *file, int line);

#define AM_CHECK(call)                                                                     \
  do {                                                                                     \
    st = am_cuda_check((call), #call, __FILE__, __LINE__);                                 \
    if (st != AM_STATUS_OK)                                                                \
      goto done;                                                                           \
  } while (0)

/* Launches kernel (a function or a pointer to one: no commas in the argument) and checks
 * cudaGetLastError(); needs `st` and `done` like AM_CHECK. */
#ifdef AM_CUDA_EMU
#define AM_LAUNCH(kernel, grid, block, smem, stream, ...)                                  \
  do {                                                                                     \
    am_emu_launch(#kernel, kernel, grid, block, smem, stream, __VA_ARGS__);                \
    AM_CHECK(cudaGetLastError());                                                          \
  } while (0)
#else
#define AM_LAUNCH(kernel, grid, block, smem, stream, ...)                                  \
  do {                                                                                     \
    kernel<<<grid, block, smem, stream>>>(__VA_ARGS__);                                    \
    AM_CHECK(cudaGetLastError());                                                          \
  } while (0)
#endif

/* Dynamic shared memory of a kernel as `type *name`. */
#ifdef AM_CUDA_EMU
#define AM_DYNAMIC_SMEM(type, name) type *name = reinterpret_cast<type *>(am_emu_dyn_smem())
#else
#define AM_DYNAMIC_SMEM(type, name)                                                        \
  extern __shared__ __align__(16) unsigned char am_smem_raw_[];                            \
  type *name = reinterpret_cast<type *>(am_smem_raw_)
#endif

#define AM_FULL_MASK 0xFFFFFFFFu

/* ---- element types on the device ------------------------------------------------- */

/* Staged element types: F64 inputs are narrowed to F32 on the host while staging, which
 * is what the CPU reference does when it reads them (am_load_float). */
enum { AM_DT_F32 = 0, AM_DT_F16 = 1, AM_DT_BF16 = 2 };

template <int DT> struct am_elem { typedef unsigned short type; };
template <> struct am_elem<AM_DT_F32> { typedef float type; };

__host__ __device__ inline float am_cu_f16_bits(unsigned short h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half(h));
#else
  unsigned sign = (unsigned)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  unsigned bits;
  if (exp == 0x1Fu)
    bits = sign | 0x7F800000u | (man << 13);
  else if (exp != 0)
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  else if (man == 0)
    bits = sign;
  else {
    exp = 113;
    while (!(man & 0x400u)) {
      man <<= 1;
      exp--;
    }
    bits = sign | (exp << 23) | ((man & 0x3FFu) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
#endif
}

__host__ __device__ inline float am_cu_bf16_bits(unsigned short b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float((unsigned)b << 16);
#else
  unsigned bits = (unsigned)b << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
#endif
}

/* Element i of a staged array, widened to float in registers. */
template <int DT>
__device__ __forceinline__ float am_ld(const typename am_elem<DT>::type *p, size_t i) {
  if (DT == AM_DT_F32)
    return (float)p[i];
  if (DT == AM_DT_F16)
    return am_cu_f16_bits((unsigned short)p[i]);
  return am_cu_bf16_bits((unsigned short)p[i]);
}

/* The same with the type known only at run time (small ops: saliency, widening). */
__device__ __forceinline__ float am_ld_any(const void *p, int dt, size_t i) {
  if (dt == AM_DT_F32)
    return ((const float *)p)[i];
  unsigned short b = ((const unsigned short *)p)[i];
  return dt == AM_DT_F16 ? am_cu_f16_bits(b) : am_cu_bf16_bits(b);
}

__device__ __forceinline__ bool am_finite(float x) { return fabsf(x) <= FLT_MAX; }

/* ---- reductions --------------------------------------------------------------------- */

/* Sums over aligned groups of g lanes (g a power of two, the same in the whole warp);
 * every lane of the group ends with the same bits (a + b == b + a). */
__device__ __forceinline__ float am_group_sum(float v, int g) {
  for (int o = g >> 1; o > 0; o >>= 1)
    v += __shfl_xor_sync(AM_FULL_MASK, v, o);
  return v;
}
__device__ __forceinline__ double am_group_sum_d(double v, int g) {
  for (int o = g >> 1; o > 0; o >>= 1)
    v += __shfl_xor_sync(AM_FULL_MASK, v, o);
  return v;
}
__device__ __forceinline__ float am_group_min(float v, int g) {
  for (int o = g >> 1; o > 0; o >>= 1)
    v = fminf(v, __shfl_xor_sync(AM_FULL_MASK, v, o));
  return v;
}
__device__ __forceinline__ float am_group_max(float v, int g) {
  for (int o = g >> 1; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(AM_FULL_MASK, v, o));
  return v;
}

/* Block-wide sum of one double per thread in a fixed tree (the same bits every run).
 * Every thread of the block must call it; scratch: 32 doubles of shared memory. The
 * result is returned to every thread. */
__device__ __forceinline__ double am_block_sum_d(double v, double *scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = (blockDim.x + 31) >> 5;
  v = am_group_sum_d(v, 32);
  __syncthreads(); /* scratch may still be read from a previous call */
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  double s = 0.0;
  for (int w = 0; w < nwarps; w++)
    s += scratch[w];
  return s;
}

__device__ __forceinline__ long long am_block_sum_ll(long long v, long long *scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(AM_FULL_MASK, v, o);
  __syncthreads();
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  long long s = 0;
  for (int w = 0; w < nwarps; w++)
    s += scratch[w];
  return s;
}

__device__ __forceinline__ double am_block_min_d(double v, double *scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1)
    v = fmin(v, __shfl_xor_sync(AM_FULL_MASK, v, o));
  __syncthreads();
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  double s = scratch[0];
  for (int w = 1; w < nwarps; w++)
    s = fmin(s, scratch[w]);
  return s;
}

__device__ __forceinline__ double am_block_max_d(double v, double *scratch) {
  return -am_block_min_d(-v, scratch);
}

/* out[0..n) normalised in place as --normalize says (am_cpu_normalize's rules: extremes
 * and the sum in double, the quotient rounded once). Every thread of the block calls it;
 * scratch: 32 doubles of shared memory. */
__device__ __forceinline__ void am_block_normalize(float *out, int n, int how,
                                                   double *scratch) {
  if (how == AM_NORMALIZE_NONE)
    return;
  double lo = INFINITY, hi = -INFINITY, sum = 0.0;
  __syncthreads(); /* out was written by other threads */
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    lo = fmin(lo, (double)out[j]);
    hi = fmax(hi, (double)out[j]);
    sum += out[j];
  }
  lo = am_block_min_d(lo, scratch);
  hi = am_block_max_d(hi, scratch);
  sum = am_block_sum_d(sum, scratch);
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const double v = out[j];
    switch (how) {
    case AM_NORMALIZE_MAX:
      if (hi > 0.0)
        out[j] = (float)(v / hi);
      break;
    case AM_NORMALIZE_SUM:
      if (sum > 0.0)
        out[j] = (float)(v / sum);
      break;
    default:
      out[j] = hi > lo ? (float)((v - lo) / (hi - lo)) : 0.0f;
      break;
    }
  }
}

#endif
