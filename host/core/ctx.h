/* ctx.h — the context's insides and the one way the library reports a failure. */
#ifndef AM_CORE_CTX_H
#define AM_CORE_CTX_H

#include <stddef.h>

#include "attnmap.h"

struct am_backend; /* ops/backend.h */

struct am_ctx {
  char error[1024];
  int threads;
  char backend_name[32];
  char device_name[128];
  const struct am_backend *backend;
  void *backend_state;
  /* The CPU reference beside a device backend, for the ops that backend leaves to it
   * (returns AM_STATUS_UNSUPPORTED for): attention flow on CUDA (docs/cuda.md). NULL with
   * the CPU backend. */
  const struct am_backend *reference;
  void *reference_state;
};

/* Records a one-line message on ctx (may be NULL) and returns status, so that a failure
 * reads `return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: ...", path, name);`.
 * Newlines in the message are replaced by spaces, other control characters escaped. */
am_status am_fail(am_ctx_t *ctx, am_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* src into dst (len bytes, NUL-terminated) with control characters written as \xNN
 * (C1 controls as \u00NN) and newlines as spaces; returns the length written. */
size_t am_escape_controls(char *dst, size_t len, const char *src);

/* Forgets the last message. */
void am_clear_error(am_ctx_t *ctx);

/* Online processors. */
int am_cpu_core_count(void);

#endif
