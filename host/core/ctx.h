/* ctx.h — the context's insides and the one way the library reports a failure. */
#ifndef AM_CORE_CTX_H
#define AM_CORE_CTX_H

#include "attnmap.h"

struct am_backend; /* ops/backend.h */

struct am_ctx {
  char error[1024];
  int threads;
  char backend_name[32];
  char device_name[128];
  const struct am_backend *backend;
  void *backend_state;
};

/* Records a one-line message on ctx (may be NULL) and returns status, so that a failure
 * reads `return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: ...", path, name);`.
 * Newlines in the message are replaced by spaces. */
am_status am_fail(am_ctx_t *ctx, am_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Forgets the last message. */
void am_clear_error(am_ctx_t *ctx);

/* Online processors. */
int am_cpu_core_count(void);

#endif
