/* select.c — picks a backend for a context from the user's --backend choice: the CPU
 * backend is linked in; the CUDA backend is a module loaded on demand (module.c). */
#include "backend/select.h"

#include <stdio.h>
#include <string.h>

#include "backend/module.h"
#include "core/ctx.h"

/* A device backend gets the CPU reference beside it, made first so that the device's
 * create names the device (ctx->device_name). */
static am_status reference_start(am_ctx_t *ctx, const am_backend_t *b) {
  if (b == &am_backend_cpu || ctx->reference)
    return AM_STATUS_OK;
  void *state = NULL;
  am_status st = am_backend_cpu.create(ctx, "cpu", &state);
  if (st != AM_STATUS_OK)
    return st;
  ctx->reference = &am_backend_cpu;
  ctx->reference_state = state;
  return AM_STATUS_OK;
}

static void reference_stop(am_ctx_t *ctx) {
  if (ctx->reference && ctx->reference->destroy)
    ctx->reference->destroy(ctx->reference_state);
  ctx->reference = NULL;
  ctx->reference_state = NULL;
}

static am_status backend_start(am_ctx_t *ctx, const am_backend_t *b, const char *spec) {
  void *state = NULL;
  am_status st = reference_start(ctx, b);
  if (st != AM_STATUS_OK)
    return st;
  st = b->create(ctx, spec, &state);
  if (st != AM_STATUS_OK) {
    reference_stop(ctx);
    return st;
  }
  ctx->backend = b;
  ctx->backend_state = state;
  snprintf(ctx->backend_name, sizeof ctx->backend_name, "%s", b->name);
  return AM_STATUS_OK;
}

/* The CUDA backend's table: linked in (the emulator's build, tests/cuda_emu), loaded from
 * libattnmap-cuda.so (a CUDA build), or none. NULL with a message in ctx. */
static const am_backend_t *cuda_table(am_ctx_t *ctx, const char *spec) {
#if defined(ATTNMAP_CUDA_LINKED)
  (void)ctx, (void)spec;
  return &am_backend_cuda;
#elif defined(ATTNMAP_CUDA_MODULE)
  char why[512];
  const am_backend_t *t = am_backend_module("cuda", why, sizeof why);
  if (!t)
    am_fail(ctx, AM_STATUS_UNSUPPORTED,
            "backend %s: the CUDA backend could not be loaded: %s", spec, why);
  return t;
#else
  am_fail(ctx, AM_STATUS_UNSUPPORTED,
          "backend %s: this build of attnmap has no CUDA backend "
          "(configure with -DATTNMAP_CUDA=ON where nvcc is installed)",
          spec);
  return NULL;
#endif
}

void am_backend_stop(am_ctx_t *ctx) {
  if (ctx->backend && ctx->backend->destroy)
    ctx->backend->destroy(ctx->backend_state);
  ctx->backend = NULL;
  ctx->backend_state = NULL;
  reference_stop(ctx);
}

am_status am_backend_select(am_ctx_t *ctx, const char *spec) {
  if (strcmp(spec, "cpu") == 0)
    return backend_start(ctx, &am_backend_cpu, spec);
  int is_auto = strcmp(spec, "auto") == 0;
  if (is_auto || strcmp(spec, "cuda") == 0 || strncmp(spec, "cuda:", 5) == 0) {
#if !defined(ATTNMAP_CUDA_LINKED)
    /* auto loads the module only where the driver shows a device */
    if (is_auto && !am_backend_device_present("cuda"))
      return backend_start(ctx, &am_backend_cpu, "cpu");
#endif
    const am_backend_t *cuda = cuda_table(ctx, spec);
    if (cuda) {
      am_status st = backend_start(ctx, cuda, is_auto ? "cuda" : spec);
      if (st == AM_STATUS_OK || !is_auto)
        return st;
    } else if (!is_auto) {
      return AM_STATUS_UNSUPPORTED;
    }
    am_clear_error(ctx);
    return backend_start(ctx, &am_backend_cpu, "cpu");
  }
  return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                 "backend '%s': expected cpu, cuda, cuda:N, cuda:all or auto", spec);
}
