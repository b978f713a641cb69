/* ctx.c — a context's error message and accessors, status names, dtype names, the version
 * string. Contexts are created with their backend (backend/ctx_create.c). */
#include "core/ctx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int am_cpu_core_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

const char *am_version(void) { return AM_VERSION_STRING; }

const char *am_status_str(am_status status) {
  switch (status) {
#define AM_STATUS_CASE_(name, value, text)                                                 \
  case AM_STATUS_##name:                                                                   \
    return text;
    AM_STATUS_LIST(AM_STATUS_CASE_)
#undef AM_STATUS_CASE_
  }
  return "unknown status";
}

const char *am_dtype_name(am_dtype dtype) {
  switch (dtype) {
#define AM_DTYPE_NAME_(name, value, text, size)                                            \
  case AM_DTYPE_##name:                                                                    \
    return text;
    AM_DTYPE_LIST(AM_DTYPE_NAME_)
#undef AM_DTYPE_NAME_
  case AM_DTYPE_COUNT:
    break;
  }
  return NULL;
}

size_t am_dtype_size(am_dtype dtype) {
  switch (dtype) {
#define AM_DTYPE_SIZE_(name, value, text, size)                                            \
  case AM_DTYPE_##name:                                                                    \
    return size;
    AM_DTYPE_LIST(AM_DTYPE_SIZE_)
#undef AM_DTYPE_SIZE_
  case AM_DTYPE_COUNT:
    break;
  }
  return 0;
}

am_status am_fail(am_ctx_t *ctx, am_status status, const char *fmt, ...) {
  if (!ctx)
    return status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
  va_end(ap);
  for (char *p = ctx->error; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return status;
}

void am_clear_error(am_ctx_t *ctx) {
  if (ctx)
    ctx->error[0] = '\0';
}

const char *am_last_error(const am_ctx_t *ctx) { return ctx ? ctx->error : ""; }
const char *am_ctx_backend_name(const am_ctx_t *ctx) { return ctx->backend_name; }
const char *am_ctx_device_name(const am_ctx_t *ctx) { return ctx->device_name; }
int am_ctx_threads(const am_ctx_t *ctx) { return ctx->threads; }
