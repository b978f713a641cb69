/* cuda_emu.h — a CPU emulator of the small part of CUDA and cuBLAS that the .cu files of
 * cuda/ use, so that the CUDA backend's kernels and host code can be built with g++ and
 * checked against the CPU reference on a machine without a GPU (tests/cuda_emu/run.sh).
 *
 * It is force-included (-include cuda_emu.h) with AM_CUDA_EMU defined. Blocks run one
 * after another; the threads of a block are fibers on the calling OS thread that switch
 * only at barriers and warp operations (__syncthreads*, __syncwarp, shuffles, ballots),
 * in thread order, so a run is deterministic. It is strict where a GPU is undefined:
 * a block barrier after some threads exited, a full-mask warp operation with exited
 * lanes, and threads of one warp waiting at different barriers all abort with the
 * kernel's name. Memory from cudaMalloc and dynamic shared memory start filled with a
 * NaN pattern, so reads of unwritten memory show. Streams and events are synchronous:
 * ordering bugs between streams are the real GPU's (and compute-sanitizer's) to find.
 * Not part of the library. */
#ifndef AM_CUDA_EMU_H
#define AM_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <functional>
#include <type_traits>

/* ---- language -------------------------------------------------------------------------
 */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

struct am_emu_thread {
  dim3 tid, bid, bdim, gdim;
};
extern thread_local am_emu_thread *am_emu_cur;
#define threadIdx (am_emu_cur->tid)
#define blockIdx (am_emu_cur->bid)
#define blockDim (am_emu_cur->bdim)
#define gridDim (am_emu_cur->gdim)

void __syncthreads(void);
int __syncthreads_or(int pred);
void __syncwarp(unsigned mask = 0xFFFFFFFFu);
unsigned __ballot_sync(unsigned mask, int pred);
unsigned long long am_emu_shfl(unsigned mask, unsigned long long bits, int src, int mode);
unsigned char *am_emu_dyn_smem(void);

template <typename T>
static inline T am_emu_shfl_t(unsigned mask, T v, int lane, int mode) {
  static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
  unsigned long long bits = 0;
  memcpy(&bits, &v, sizeof v);
  bits = am_emu_shfl(mask, bits, lane, mode);
  T r;
  memcpy(&r, &bits, sizeof r);
  return r;
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  return am_emu_shfl_t(mask, v, lane_mask, 1);
}
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src) {
  return am_emu_shfl_t(mask, v, src, 0);
}
static inline int __any_sync(unsigned mask, int pred) {
  return __ballot_sync(mask, pred) != 0;
}
static inline int __all_sync(unsigned mask, int pred) {
  return __ballot_sync(mask, !pred) == 0;
}

static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
#define __log2f(x) log2f(x) /* glibc declares functions of these names: macros */
#define __logf(x) logf(x)
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
/* Fibers of a block run on one OS thread and switch only at barriers: plain updates. */
static inline unsigned long long atomicMin(unsigned long long *p, unsigned long long v) {
  unsigned long long old = *p;
  if (v < old)
    *p = v;
  return old;
}
static inline unsigned atomicAdd(unsigned *p, unsigned v) {
  unsigned old = *p;
  *p = old + v;
  return old;
}
static inline int atomicAdd(int *p, int v) {
  int old = *p;
  *p = old + v;
  return old;
}
static inline int atomicCAS(int *p, int compare, int v) {
  int old = *p;
  if (old == compare)
    *p = v;
  return old;
}

/* ---- 16-bit types and warp matrix operations (nvcuda::wmma) ------------------------------
 * __half and __nv_bfloat16 are their bits (the kernels only pass pointers to them). A wmma
 * fragment of 16 x 16 elements is spread over the warp: lane l holds elements l, l + 32,
 * ... of the tile in row-major order, widened to float (a GPU's layout is unspecified;
 * kernels may only fill, load, multiply and store them). load/mma/store are warp-collective
 * as on a GPU: every lane of the warp must call them with the same pointer and stride (the
 * emulator aborts otherwise), pointers 32-byte aligned and strides a multiple of 16 bytes
 * (8 elements of 16 bits, 4 floats), as the CUDA programming guide requires. mma_sync
 * multiplies in float, products of 16-bit values exact, sums in k order: a GPU's tensor
 * cores may round their internal sums differently. */
struct __half {
  unsigned short x;
};
struct __nv_bfloat16 {
  unsigned short x;
};

void am_emu_wmma_check(const void *p, unsigned ldm, unsigned elem_bytes);
void am_emu_wmma_mma(float *d, const float *a, const float *b, const float *c);
float am_emu_bits_to_float(unsigned short bits, int bf16);
int am_emu_lane(void);

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator has 16 x 16 x 16 only");
  enum { num_elements = 8 };
  float x[num_elements];
};

template <typename Use, typename T, typename Layout>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, Layout> &f, float v) {
  for (int t = 0; t < 8; t++)
    f.x[t] = v;
}

static inline float am_emu_elem(const float *p, size_t i) { return p[i]; }
static inline float am_emu_elem(const __half *p, size_t i) {
  return am_emu_bits_to_float(p[i].x, 0);
}
static inline float am_emu_elem(const __nv_bfloat16 *p, size_t i) {
  return am_emu_bits_to_float(p[i].x, 1);
}

/* Element (r, c) of the logical tile from memory, stored row- or column-major. */
template <typename T>
inline void am_emu_load(float *x, const T *p, unsigned ldm, bool col) {
  am_emu_wmma_check(p, ldm, sizeof(T));
  const int lane = am_emu_lane();
  for (int t = 0; t < 8; t++) {
    const int e = t * 32 + lane, r = e / 16, c = e % 16;
    x[t] = am_emu_elem(p, col ? (size_t)c * ldm + r : (size_t)r * ldm + c);
  }
}

template <typename Use, typename T, typename L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, L> &f, const T *p, unsigned ldm) {
  static_assert(std::is_same<L, row_major>::value || std::is_same<L, col_major>::value,
                "an operand fragment has a layout");
  am_emu_load(f.x, p, ldm, std::is_same<L, col_major>::value);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p,
                             unsigned ldm, layout_t layout) {
  am_emu_load(f.x, p, ldm, layout == mem_col_major);
}
inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f,
                              unsigned ldm, layout_t layout) {
  am_emu_wmma_check(p, ldm, 4);
  const int lane = am_emu_lane();
  for (int t = 0; t < 8; t++) {
    const int e = t * 32 + lane, r = e / 16, c = e % 16;
    p[layout == mem_col_major ? (size_t)c * ldm + r : (size_t)r * ldm + c] = f.x[t];
  }
}
template <typename T, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, T, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, T, LB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
  static_assert(!std::is_same<T, float>::value, "wmma operands are 16-bit here");
  am_emu_wmma_mma(d.x, a.x, b.x, c.x);
}
} // namespace wmma
} // namespace nvcuda

/* ---- runtime ----------------------------------------------------------------------------
 */
typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorUnknown = 999
} cudaError_t;
typedef enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
} cudaMemcpyKind;
typedef enum cudaMemoryType {
  cudaMemoryTypeUnregistered = 0,
  cudaMemoryTypeHost = 1,
  cudaMemoryTypeDevice = 2,
  cudaMemoryTypeManaged = 3
} cudaMemoryType;
typedef enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8
} cudaFuncAttribute;
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
  void *devicePointer, *hostPointer;
};
struct cudaDeviceProp {
  char name[256];
  int multiProcessorCount;
  size_t totalGlobalMem, sharedMemPerBlockOptin;
  int major, minor, l2CacheSize, memoryBusWidth, clockRate, memoryClockRate;
};
typedef struct am_emu_stream *cudaStream_t;
typedef struct am_emu_event *cudaEvent_t;
#define cudaStreamNonBlocking 1
#define cudaEventDisableTiming 2
#define cudaEventDefault 0
#define cudaHostAllocDefault 0

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s = 0);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t err);
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value);
typedef enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 } cudaDeviceAttr;
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev);
/* stream-ordered allocation: copies happen at once here, so the plain calls do */
static inline cudaError_t cudaMallocAsync(void **p, size_t bytes, cudaStream_t) {
  return cudaMalloc(p, bytes);
}
static inline cudaError_t cudaFreeAsync(void *p, cudaStream_t) { return cudaFree(p); }
/* blocks run one after another: one resident block per multiprocessor */
template <typename K>
static inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *n, K, int,
                                                                        size_t) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *attr, const void *p);

/* ---- cuBLAS ---------------------------------------------------------------------------
 */
typedef struct am_emu_blas *cublasHandle_t;
typedef enum cublasStatus {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7
} cublasStatus_t;
typedef enum cublasOperation { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum cublasMath { CUBLAS_DEFAULT_MATH = 0 } cublasMath_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode);
const char *cublasGetStatusString(cublasStatus_t st);
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long sa, const float *B, int ldb,
                                         long long sb, const float *beta, float *C, int ldc,
                                         long long sc, int batch);
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                           int m, int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc);

/* ---- launches ---------------------------------------------------------------------------
 */
void am_emu_run(const char *name, const std::function<void()> &body, dim3 grid, dim3 block,
                size_t smem);

template <typename... P, typename... A>
static inline void am_emu_launch(const char *name, void (*kernel)(P...), dim3 grid,
                                 dim3 block, size_t smem, cudaStream_t, A... args) {
  std::function<void()> body = [=]() { kernel(args...); };
  am_emu_run(name, body, grid, block, smem);
}

#endif
