/* select.c — picks a backend for a context from the user's --backend choice. */
#include "backend/select.h"

#include <stdio.h>
#include <string.h>

#include "core/ctx.h"

static am_status backend_start(am_ctx_t *ctx, const am_backend_t *b, const char *spec) {
  void *state = NULL;
  am_status st = b->create(ctx, spec, &state);
  if (st != AM_STATUS_OK)
    return st;
  ctx->backend = b;
  ctx->backend_state = state;
  snprintf(ctx->backend_name, sizeof ctx->backend_name, "%s", b->name);
  return AM_STATUS_OK;
}

am_status am_backend_select(am_ctx_t *ctx, const char *spec) {
  if (strcmp(spec, "cpu") == 0)
    return backend_start(ctx, &am_backend_cpu, spec);
  int is_auto = strcmp(spec, "auto") == 0;
  if (is_auto || strcmp(spec, "cuda") == 0 || strncmp(spec, "cuda:", 5) == 0) {
#ifdef ATTNMAP_HAVE_CUDA
    am_status st = backend_start(ctx, &am_backend_cuda, is_auto ? "cuda" : spec);
    if (st == AM_STATUS_OK || !is_auto)
      return st;
#else
    if (!is_auto)
      return am_fail(ctx, AM_STATUS_UNSUPPORTED,
                     "backend %s: this build of attnmap has no CUDA backend "
                     "(configure with -DATTNMAP_CUDA=ON where nvcc is installed)",
                     spec);
#endif
    am_clear_error(ctx);
    return backend_start(ctx, &am_backend_cpu, "cpu");
  }
  return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                 "backend '%s': expected cpu, cuda, cuda:N, cuda:all or auto", spec);
}
