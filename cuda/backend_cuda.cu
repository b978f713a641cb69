/* backend_cuda.cu — the CUDA backend's entry in the op table. For now it finds the
 * device and reports honestly: without a device AM_STATUS_NO_DEVICE; with one,
 * AM_STATUS_UNSUPPORTED until the kernels of issue 3 land. */
#include <cuda_runtime.h>

#include <stdio.h>

extern "C" {
#include "backend.h"
#include "core/ctx.h"
}

static am_status cuda_create(am_ctx_t *ctx, const char *spec, void **state) {
  *state = NULL;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0)
    return am_fail(ctx, AM_STATUS_NO_DEVICE, "backend %s: no CUDA device (%s)", spec,
                   err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    snprintf(ctx->device_name, sizeof ctx->device_name, "%.127s", prop.name);
  return am_fail(ctx, AM_STATUS_UNSUPPORTED,
                 "backend %s: found %s, but the CUDA kernels are not written yet; use "
                 "--backend cpu",
                 spec, ctx->device_name);
}

static void cuda_destroy(void *state) { (void)state; }

extern "C" const am_backend_t am_backend_cuda = {
    "cuda", cuda_create, cuda_destroy, NULL, NULL, NULL,
};
