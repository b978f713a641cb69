/* backends.h — the backends under test, listed once (backends.c), as ggml's
 * test-backend-ops lists its backends: each parity suite (test_parity.c,
 * test_parity_ops.c, test_backend_analyze.c) runs its op cases on every entry and compares
 * against the reference, the CPU backend with its plain loops (the oracle). A backend that
 * cannot run in this build or on this machine skips each test visibly (Criterion's SKIP,
 * with the reason). Adding a backend to the suites is one entry in backends.c.
 *
 * A suite's test over every backend:
 *   PAR_TEST(parity, some_case) { am_ctx_t *c = par_backend_open(be, PAR_PLAIN); ... } */
#ifndef TESTS_SUPPORT_BACKENDS_H
#define TESTS_SUPPORT_BACKENDS_H

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "attnmap.h"

/* How a test wants the backend set up. A backend without the variant skips the test. */
typedef enum par_variant {
  PAR_PLAIN,       /* its default context */
  PAR_ALL_DEVICES, /* spread over every device it has */
  PAR_SMALL_WORK,  /* its work cut into small pieces (several slabs per batch) */
  PAR_TIGHT_MEMORY /* allocations above a bound fail: its out-of-memory fall-back */
} par_variant;

typedef struct par_backend {
  const char *name; /* in skip and failure messages: "cpu_x86_sweeps", "cuda" */
  /* The context of the variant, or NULL with why (the test skips). */
  am_ctx_t *(*open)(par_variant v, char *why, size_t len);
  /* attnmap analyze --backend value for test_backend_analyze (every device), or NULL */
  const char *cli_spec;
} par_backend_t;

/* Every backend under test (not the reference). */
extern par_backend_t par_backends[];
extern const size_t par_backend_count;

/* The reference: a CPU context running the plain loops (pass_plain.c), 2 threads. */
am_ctx_t *par_reference(void);

/* be's context for variant v; skips the calling test (with be's name and the reason)
 * where there is none. */
am_ctx_t *par_backend_open(const par_backend_t *be, par_variant v);

/* Entry numbers 0 .. par_backend_count - 1: the tests' parameters. Criterion hands a
 * parameter to a test process as bytes, and that process may be a fresh exec of the suite
 * (other addresses): the entry is looked up there by its number, never passed by pointer.
 */
extern int par_backend_ids[];

/* One test run once per entry of par_backends; `be` is the entry in its body. */
#define PAR_TEST(suite, name)                                                              \
  static void suite##_##name##_on(const par_backend_t *be);                                \
  ParameterizedTestParameters(suite, name) {                                               \
    return cr_make_param_array(int, par_backend_ids, par_backend_count);                   \
  }                                                                                        \
  ParameterizedTest(int *id, suite, name) { suite##_##name##_on(&par_backends[*id]); }     \
  static void suite##_##name##_on(const par_backend_t *be)

#endif
