/* module.cu — the entry point of libattnmap-cuda.so, the CUDA backend built as a module of
 * its own (ops/backend.h): the library loads it with dlopen only when the CUDA backend is
 * asked for, so that a CPU run never maps the CUDA runtime (backend/module.c). */
#include "cuda/cuda_internal.h"

extern "C" const am_backend_t am_backend_cuda; /* backend_cuda.cu */

extern "C" __attribute__((visibility("default"))) const am_backend_t *
attnmap_backend_entry(int abi, size_t table_size, size_t ctx_size) {
  if (abi != AM_BACKEND_ABI || table_size != sizeof(am_backend_t) ||
      ctx_size != sizeof(struct am_ctx))
    return NULL;
  return &am_backend_cuda;
}
