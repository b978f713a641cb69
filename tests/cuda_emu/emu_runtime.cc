/* emu_runtime.cc — synchronous stand-ins for the CUDA runtime and cuBLAS calls of the
 * backend (cuda_emu.h). Devices: AM_EMU_DEVICES (default 1), each with AM_EMU_MEM_MB of
 * memory (default 8192) counted against cudaMalloc, so that out-of-memory paths can be
 * driven. Memory is host memory; copies happen at once; events and streams are tokens. */
#include "cuda_emu.h"

#include <cblas.h>
#include <mutex>
#include <stdio.h>
#include <stdlib.h>
#include <unordered_map>

struct am_emu_stream {
  int device;
};
struct am_emu_event {
  int device;
};
struct am_emu_blas {
  int device;
};

namespace {
struct alloc_info {
  size_t bytes;
  int device;
  bool host;
};
std::mutex mu;
std::unordered_map<uintptr_t, alloc_info> allocs; /* start -> info */
size_t used[64];
thread_local cudaError_t last = cudaSuccess;
} // namespace
extern thread_local cudaError_t am_emu_launch_error; /* emu.cc: bad launch configurations */
namespace {
thread_local int device = 0;

int devices(void) {
  const char *e = getenv("AM_EMU_DEVICES");
  int n = e ? atoi(e) : 1;
  return n < 0 ? 0 : n > 64 ? 64 : n;
}
size_t capacity(void) {
  const char *e = getenv("AM_EMU_MEM_MB");
  return (size_t)(e ? atof(e) : 8192.0) * (1u << 20);
}
cudaError_t fail(cudaError_t e) {
  last = e;
  return e;
}
/* The allocation holding p, or NULL. */
const alloc_info *find(const void *p, uintptr_t *start) {
  for (auto &kv : allocs)
    if ((uintptr_t)p >= kv.first &&
        (uintptr_t)p < kv.first + (kv.second.bytes ? kv.second.bytes : 1)) {
      *start = kv.first;
      return &kv.second;
    }
  return NULL;
}
} // namespace

cudaError_t cudaGetDeviceCount(int *count) {
  *count = devices();
  return *count > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}
cudaError_t cudaSetDevice(int dev) {
  if (dev < 0 || dev >= devices())
    return fail(cudaErrorInvalidDevice);
  device = dev;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int *dev) {
  *dev = device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev) {
  if (dev < 0 || dev >= devices())
    return fail(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "cuda_emu device %d", dev);
  prop->multiProcessorCount = 4;
  prop->totalGlobalMem = capacity();
  prop->sharedMemPerBlockOptin = 227u << 10;
  prop->major = 9;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev) {
  cudaDeviceProp prop;
  cudaError_t e = cudaGetDeviceProperties(&prop, dev);
  if (e != cudaSuccess)
    return e;
  if (attr != cudaDevAttrMultiProcessorCount)
    return fail(cudaErrorInvalidValue);
  *value = prop.multiProcessorCount;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
  std::lock_guard<std::mutex> g(mu);
  *total = capacity();
  *free_bytes = *total - used[device];
  return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes) {
  std::lock_guard<std::mutex> g(mu);
  *p = NULL;
  if (used[device] + bytes > capacity())
    return fail(cudaErrorMemoryAllocation);
  /* 256-byte aligned, as cudaMalloc's (wmma loads need 32) */
  void *q = aligned_alloc(256, (bytes + 255) / 256 * 256 + (bytes ? 0 : 256));
  if (!q)
    return fail(cudaErrorMemoryAllocation);
  memset(q, 0xFF, bytes); /* NaN pattern: device memory starts undefined */
  allocs[(uintptr_t)q] = alloc_info{bytes, device, false};
  used[device] += bytes;
  *p = q;
  return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
  if (!p)
    return cudaSuccess;
  std::lock_guard<std::mutex> g(mu);
  auto it = allocs.find((uintptr_t)p);
  if (it == allocs.end() || it->second.host)
    return fail(cudaErrorInvalidValue);
  used[it->second.device] -= it->second.bytes;
  allocs.erase(it);
  free(p);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned) {
  std::lock_guard<std::mutex> g(mu);
  *p = malloc(bytes ? bytes : 1);
  if (!*p)
    return fail(cudaErrorMemoryAllocation);
  memset(*p, 0xFF, bytes);
  allocs[(uintptr_t)*p] = alloc_info{bytes, device, true};
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void *p) {
  if (!p)
    return cudaSuccess;
  std::lock_guard<std::mutex> g(mu);
  auto it = allocs.find((uintptr_t)p);
  if (it == allocs.end() || !it->second.host)
    return fail(cudaErrorInvalidValue);
  allocs.erase(it);
  free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind) {
  if (bytes)
    memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind k,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, k);
}
cudaError_t cudaMemset(void *p, int value, size_t bytes) {
  memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(p, value, bytes);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
  *s = new am_emu_stream{device};
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) {
  *e = new am_emu_event{device};
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t) {
  *ms = 1.0f;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaGetLastError(void) {
  cudaError_t e = last;
  if (e == cudaSuccess)
    e = am_emu_launch_error;
  last = cudaSuccess;
  am_emu_launch_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return last; }
const char *cudaGetErrorString(cudaError_t err) {
  switch (err) {
  case cudaSuccess:
    return "no error";
  case cudaErrorMemoryAllocation:
    return "out of memory";
  case cudaErrorInvalidConfiguration:
    return "invalid configuration argument";
  case cudaErrorInvalidValue:
    return "invalid argument";
  case cudaErrorNoDevice:
    return "no CUDA-capable device is detected";
  case cudaErrorInvalidDevice:
    return "invalid device ordinal";
  default:
    return "unknown error";
  }
}
cudaError_t cudaFuncSetAttribute(const void *, cudaFuncAttribute, int value) {
  return value <= (227 << 10) ? cudaSuccess : fail(cudaErrorInvalidValue);
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *attr, const void *p) {
  std::lock_guard<std::mutex> g(mu);
  memset(attr, 0, sizeof *attr);
  uintptr_t start;
  const alloc_info *a = find(p, &start);
  attr->type = !a        ? cudaMemoryTypeUnregistered
               : a->host ? cudaMemoryTypeHost
                         : cudaMemoryTypeDevice;
  attr->device = a ? a->device : -1;
  attr->devicePointer = attr->hostPointer = (void *)p;
  return cudaSuccess;
}

/* ---- cuBLAS: OpenBLAS underneath, column-major as cuBLAS -------------------------------
 */
cublasStatus_t cublasCreate(cublasHandle_t *h) {
  *h = new am_emu_blas{device};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) {
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) {
  return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusString(cublasStatus_t st) {
  return st == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_ERROR";
}
cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb,
                           int m, int n, int k, const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta, float *C, int ldc) {
  cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_T ? CblasTrans : CblasNoTrans,
              tb == CUBLAS_OP_T ? CblasTrans : CblasNoTrans, m, n, k, *alpha, A, lda, B,
              ldb, *beta, C, ldc);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long sa, const float *B, int ldb,
                                         long long sb, const float *beta, float *C, int ldc,
                                         long long sc, int batch) {
  if (batch < 0 || m < 0 || n < 0 || k < 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  for (int b = 0; b < batch; b++)
    cublasSgemm(h, ta, tb, m, n, k, alpha, A + b * sa, lda, B + b * sb, ldb, beta,
                C + b * sc, ldc);
  return CUBLAS_STATUS_SUCCESS;
}
