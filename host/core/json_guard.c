/* json_guard.c — the counting allocator behind json_guard.h. The count is per thread: a
 * document is built and written on one thread, and a failure on another thread (the
 * reader, a worker) does not belong to it. */
#include "core/json_guard.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>

static _Thread_local unsigned long failures;

static void *counting_malloc(size_t n) {
  void *p = malloc(n);
  if (!p)
    failures++;
  return p;
}

static void install(void) { json_set_alloc_funcs(counting_malloc, free); }

void am_json_guard_install(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install);
}

void am_json_note_failure(void) { failures++; }

unsigned long am_json_take_failures(void) {
  unsigned long n = failures;
  failures = 0;
  return n;
}
