/* test_json_guard.c — an allocation that fails while a JSON document is built must not
 * give a complete-looking file that lacks values (jansson drops such values silently).
 * The allocator installed by am_ctx_create is wrapped so that its k-th call asks for an
 * impossible size, and so really fails inside it; for k spread over every JSON allocation
 * of an analyze, a merge and a report, a run in which the failure happened must end in an
 * error with no run folder or report in place, and one in which it did not must succeed. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "support/dataset_builder.h"

/* malloc(SIZE_MAX) must return NULL under AddressSanitizer too, as it does in glibc. */
const char *__asan_default_options(void);
/* default visibility: the build hides symbols, and ASan looks this one up at run time */
__attribute__((visibility("default"))) const char *__asan_default_options(void) {
  return "allocator_may_return_null=1";
}

static json_malloc_t installed_malloc;
static json_free_t installed_free;
static long calls, fail_at; /* fail_at 0: no failure */
static int fired;

static void *failing_malloc(size_t n) {
  if (++calls == fail_at) {
    fired = 1;
    return installed_malloc(SIZE_MAX); /* fails inside the library's allocator */
  }
  return installed_malloc(n);
}

static char dir[128], data[256], data2[256], ref[256], ref2[256], part[256];
static am_ctx_t *ctx;
static am_dataset_t *ds, *ds2; /* two shards: runs over one file cannot be merged */

static void setup(void) {
  cr_assert_eq(dsb_tempdir(dir, sizeof dir, "jsonguard"), 0);
  dsb_join(data, sizeof data, dir, "data.safetensors");
  dsb_join(data2, sizeof data2, dir, "data2.safetensors");
  dsb_join(ref, sizeof ref, dir, "ref");
  dsb_join(ref2, sizeof ref2, dir, "ref2");
  dsb_join(part, sizeof part, dir, "part");
  dsb_spec_t spec = {.L = 2,
                     .H = 2,
                     .B = 6,
                     .T = 8,
                     .grads = 1,
                     .saliency = 1,
                     .labels = 1,
                     .special = 1,
                     .seed = 11};
  cr_assert_eq(dsb_make(&spec, data), 0);
  spec.seed = 12;
  spec.first = 6;
  cr_assert_eq(dsb_make(&spec, data2), 0);
  char err[256];
  am_ctx_options_t o = {.backend = "cpu", .threads = 1};
  cr_assert_eq(am_ctx_create(&o, &ctx, err, sizeof err), AM_STATUS_OK, "%s", err);
  json_get_alloc_funcs(&installed_malloc, &installed_free);
  cr_assert_neq((void *)installed_malloc, (void *)malloc,
                "am_ctx_create did not install the counting allocator");
  const char *paths[] = {data}, *paths2[] = {data2};
  cr_assert_eq(am_dataset_open(ctx, paths, 1, &ds), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_assert_eq(am_dataset_open(ctx, paths2, 1, &ds2), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  json_set_alloc_funcs(failing_malloc, installed_free);
}

static void teardown(void) {
  json_set_alloc_funcs(installed_malloc, installed_free);
  am_dataset_close(ds);
  am_dataset_close(ds2);
  am_ctx_destroy(ctx);
  dsb_rmtree(dir);
}

TestSuite(json_guard, .init = setup, .fini = teardown, .timeout = 300);

typedef am_status (*job_fn)(const char *out);

static am_status analyze_dataset(am_dataset_t *d, const char *out) {
  am_plan_t plan;
  am_plan_init(&plan);
  am_run_options_t opts;
  am_run_options_init(&opts);
  opts.force = 1;
  return am_run_analyze(ctx, d, &plan, out, &opts);
}

static am_status analyze(const char *out) { return analyze_dataset(ds, out); }

static am_status merge(const char *out) {
  const char *runs[] = {ref, ref2};
  am_run_options_t opts;
  am_run_options_init(&opts);
  opts.force = 1;
  return am_run_merge(ctx, runs, 2, out, &opts);
}

static am_status report(const char *out) {
  am_report_options_t opts;
  am_report_options_init(&opts);
  opts.out_dir = out;
  return am_run_report(ctx, ref, &opts, NULL);
}

/* Runs job with the k-th JSON allocation failing, for k spread over all of them. */
static void fail_each_in_turn(job_fn job, const char *what) {
  calls = 0;
  fail_at = 0;
  cr_assert_eq(job(part), AM_STATUS_OK, "%s: %s", what, am_last_error(ctx));
  long total = calls;
  cr_assert_gt(total, 50, "%s made only %ld JSON allocations", what, total);
  int failed = 0;
  for (long k = 1; k <= total; k += k < 20 || k > total - 20 ? 1 : total / 60 + 1) {
    dsb_rmtree(part);
    calls = 0;
    fired = 0;
    fail_at = k;
    am_status st = job(part);
    fail_at = 0;
    if (fired) {
      cr_expect_neq(st, AM_STATUS_OK, "%s: allocation %ld of %ld failed, yet it succeeded",
                    what, k, total);
      cr_expect(!dsb_exists(part), "%s: allocation %ld failed, yet %s exists", what, k,
                part);
      cr_expect_neq(am_last_error(ctx)[0], '\0');
      failed++;
    } else {
      cr_expect_eq(st, AM_STATUS_OK, "%s: no failure at %ld, yet: %s", what, k,
                   am_last_error(ctx));
    }
  }
  cr_expect_gt(failed, 40, "%s: only %d injected failures happened", what, failed);
}

Test(json_guard, analyze_never_writes_a_summary_that_lacks_values) {
  fail_each_in_turn(analyze, "analyze");
}

Test(json_guard, merge_never_writes_a_summary_that_lacks_values) {
  cr_assert_eq(analyze(ref), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_assert_eq(analyze_dataset(ds2, ref2), AM_STATUS_OK, "%s", am_last_error(ctx));
  fail_each_in_turn(merge, "merge");
}

Test(json_guard, report_never_writes_a_page_that_lacks_values) {
  cr_assert_eq(analyze(ref), AM_STATUS_OK, "%s", am_last_error(ctx));
  fail_each_in_turn(report, "report");
}
