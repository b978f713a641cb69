/* ctx_create.c — a context is made with its backend: am_ctx_create picks and starts it
 * (select.c), am_ctx_destroy stops it. */
#include <stdio.h>
#include <stdlib.h>

#include "backend/select.h"
#include "core/ctx.h"
#include "core/json_guard.h"
#include "core/options.h"

am_status am_ctx_create(const am_ctx_options_t *opts, am_ctx_t **out, char *errbuf,
                        size_t errlen) {
  *out = NULL;
  am_ctx_t *ctx = calloc(1, sizeof *ctx);
  if (!ctx) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "out of memory");
    return AM_STATUS_OUT_OF_MEMORY;
  }
  am_json_guard_install();
  /* the option table's ranges (threads 0..1024: 100,000 made a thread team that crashed) */
  if (opts && am_options_check(NULL, AM_SCOPE_CTX, opts, errbuf, errlen) != AM_STATUS_OK) {
    free(ctx);
    return AM_STATUS_INVALID_ARGUMENT;
  }
  const char *want = (opts && opts->backend) ? opts->backend : "cpu";
  ctx->threads = (opts && opts->threads > 0) ? opts->threads : am_cpu_core_count();
  am_status st = am_backend_select(ctx, want);
  if (st != AM_STATUS_OK) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "%s", ctx->error);
    free(ctx);
    return st;
  }
  *out = ctx;
  return AM_STATUS_OK;
}

void am_ctx_destroy(am_ctx_t *ctx) {
  if (!ctx)
    return;
  am_backend_stop(ctx);
  free(ctx);
}
