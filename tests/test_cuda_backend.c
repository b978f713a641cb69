/* test_cuda_backend.c — choosing the CUDA backend. Without a device (or a build without
 * CUDA) asking for it fails with a clear message and `auto` falls back to the CPU; the
 * device suite skips visibly. Every op against the CPU reference: test_parity.c. */
#include <criterion/criterion.h>
#include <string.h>

#include "attnmap.h"

static int have_device(void) {
  am_ctx_options_t o = {.backend = "cuda"};
  am_ctx_t *ctx = NULL;
  char err[512] = "";
  am_status st = am_ctx_create(&o, &ctx, err, sizeof err);
  am_ctx_destroy(ctx);
  return st != AM_STATUS_NO_DEVICE &&
         !(st == AM_STATUS_UNSUPPORTED && strstr(err, "no CUDA"));
}

Test(cuda_backend, explicit_cuda_without_device_is_a_clear_error) {
  if (have_device())
    cr_skip_test("a CUDA device is present: covered by the device suite");
  am_ctx_options_t o = {.backend = "cuda:0"};
  am_ctx_t *ctx = NULL;
  char err[512] = "";
  am_status st = am_ctx_create(&o, &ctx, err, sizeof err);
  cr_expect(st == AM_STATUS_NO_DEVICE || st == AM_STATUS_UNSUPPORTED, "status %d", st);
  cr_expect_null(ctx);
  cr_expect(strstr(err, "cuda:0") != NULL, "message names the backend: %s", err);
  cr_expect(strstr(err, "CUDA") != NULL, "message says CUDA: %s", err);
}

Test(cuda_backend, auto_falls_back_to_cpu_without_device) {
  if (have_device())
    cr_skip_test("a CUDA device is present: auto picks it");
  am_ctx_options_t o = {.backend = "auto"};
  am_ctx_t *ctx = NULL;
  cr_assert_eq(am_ctx_create(&o, &ctx, NULL, 0), AM_STATUS_OK);
  cr_expect_str_eq(am_ctx_backend_name(ctx), "cpu");
  am_ctx_destroy(ctx);
}

Test(cuda_backend, unknown_backend_is_a_usage_error) {
  am_ctx_options_t o = {.backend = "tpu"};
  am_ctx_t *ctx = NULL;
  char err[512] = "";
  cr_expect_eq(am_ctx_create(&o, &ctx, err, sizeof err), AM_STATUS_INVALID_ARGUMENT);
  cr_expect(strstr(err, "tpu") != NULL, "%s", err);
}

static void require_device(void) {
  if (!have_device())
    cr_skip_test("no CUDA device");
}

TestSuite(cuda_device, .init = require_device);

Test(cuda_device, backend_names_the_device) {
  am_ctx_options_t o = {.backend = "cuda"};
  am_ctx_t *ctx = NULL;
  char err[512] = "";
  am_status st = am_ctx_create(&o, &ctx, err, sizeof err);
  cr_assert_eq(st, AM_STATUS_OK, "%s", err);
  cr_expect_str_eq(am_ctx_backend_name(ctx), "cuda");
  cr_expect(strlen(am_ctx_device_name(ctx)) > 0, "the device has a name");
  am_ctx_destroy(ctx);
}

Test(cuda_device, device_specs) {
  const char *good[] = {"cuda", "cuda:0", "cuda:all"};
  for (int k = 0; k < 3; k++) {
    am_ctx_options_t o = {.backend = good[k]};
    am_ctx_t *ctx = NULL;
    char err[512] = "";
    cr_expect_eq(am_ctx_create(&o, &ctx, err, sizeof err), AM_STATUS_OK, "%s: %s", good[k],
                 err);
    am_ctx_destroy(ctx);
  }
  const char *bad[] = {"cuda:999", "cuda:0,0", "cuda:x", "cuda:", "cuda:-1"};
  for (int k = 0; k < 5; k++) {
    am_ctx_options_t o = {.backend = bad[k]};
    am_ctx_t *ctx = NULL;
    char err[512] = "";
    cr_expect_eq(am_ctx_create(&o, &ctx, err, sizeof err), AM_STATUS_INVALID_ARGUMENT,
                 "%s: %s", bad[k], err);
    cr_expect(strstr(err, bad[k]) != NULL, "the message names %s: %s", bad[k], err);
    cr_expect_null(ctx);
  }
}
