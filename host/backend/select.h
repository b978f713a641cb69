/* select.h — the registered backends and the choice of one for a context: the layer above
 * the backends (cpu/, cuda/), which know only ops/backend.h (docs/architecture.md).
 * am_ctx_create (ctx_create.c) is here, not in core/, because it picks the backend. */
#ifndef AM_BACKEND_SELECT_H
#define AM_BACKEND_SELECT_H

#include "ops/backend.h"

extern const am_backend_t am_backend_cpu; /* cpu/backend_cpu.c */
#ifdef ATTNMAP_CUDA_LINKED
extern const am_backend_t am_backend_cuda; /* cuda/backend_cuda.cu, linked in (emulator) */
#endif

/* Chooses and creates the backend named by spec ("cpu", "cuda[:N|:all]", "auto"). */
am_status am_backend_select(am_ctx_t *ctx, const char *spec);

/* Destroys the context's backend state and its CPU reference's, if any. */
void am_backend_stop(am_ctx_t *ctx);

#endif
