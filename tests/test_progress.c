/* test_progress.c — `analyze --progress=auto|always|never` into a pipe (a nightly log):
 * always prints plain lines (no carriage returns) with examples/s and the ETA, one at the
 * first chunk, then at most one per interval, and one at the end; never and --quiet print
 * none. (On a terminal, test_run checks the line rewritten in place.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

static char work[128];
static char paths[8][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "progress"), 0); }
static void teardown(void) {
  unsetenv("ATTNMAP_PROGRESS_INTERVAL");
  dsb_rmtree(work);
}

TestSuite(progress, .init = setup, .fini = teardown, .timeout = 60);

static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 8], sizeof paths[0], work, name);
}

static const char *dataset(void) {
  dsb_spec_t s = {.L = 2, .H = 2, .B = 4, .T = 6, .grads = 1, .seed = 5};
  const char *ds = P("d.safetensors");
  cr_assert_eq(dsb_make(&s, ds), 0);
  return ds;
}

static int count(const char *s, const char *what) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
    n++;
  return n;
}

static void run(cli_result_t *r, const char *ds, const char *mode, int quiet) {
  static int runs;
  char name[32];
  snprintf(name, sizeof name, "run%d", runs++);
  cr_assert_eq(cli_run(r, NULL, "analyze", ds, "-o", P(name), "--chunk", "1", "--progress",
                       mode, quiet ? "--quiet" : NULL, NULL),
               0);
  cr_expect_eq(r->exit_code, 0, "stderr: %s", r->err);
}

/* 4 examples in chunks of 1: with the default 10 s interval, the first chunk's line and the
 * last one (2); with an interval far below a chunk's time, one per chunk (4). */
Test(progress, always_prints_plain_lines_in_a_pipe) {
  const char *ds = dataset();
  cli_result_t r;
  run(&r, ds, "always", 0);
  cr_expect_eq(count(r.err, "examples/s"), 2, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "analyze: 1/4 examples") && strstr(r.err, "analyze: 4/4 examples"),
            "stderr: %s", r.err);
  cr_expect(strstr(r.err, "ETA done in"), "stderr: %s", r.err);
  cr_expect(strchr(r.err, '\r') == NULL, "carriage return in a pipe: %s", r.err);
  cli_result_free(&r);
  setenv("ATTNMAP_PROGRESS_INTERVAL", "0.000001", 1);
  run(&r, ds, "always", 0);
  cr_expect_eq(count(r.err, "examples/s"), 4, "stderr: %s", r.err);
  cli_result_free(&r);
}

Test(progress, never_and_quiet_print_none) {
  const char *ds = dataset();
  cli_result_t r;
  setenv("ATTNMAP_PROGRESS_INTERVAL", "0.000001", 1);
  run(&r, ds, "never", 0);
  cr_expect_eq(count(r.err, "examples/s"), 0, "stderr: %s", r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "only the closing line: %s", r.err);
  cli_result_free(&r);
  run(&r, ds, "always", 1);
  cr_expect_eq(r.err_len, 0, "--quiet printed: %s", r.err);
  cli_result_free(&r);
  run(&r, ds, "auto", 0); /* a pipe is no terminal */
  cr_expect_eq(count(r.err, "examples/s"), 0, "stderr: %s", r.err);
  cli_result_free(&r);
}

Test(progress, a_bad_value_is_a_usage_error) {
  const char *ds = dataset();
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", P("run"), "--progress", "loud", NULL),
               0);
  cr_expect_eq(r.exit_code, 2);
  cr_expect(strstr(r.err, "--progress 'loud'"), "stderr: %s", r.err);
  cli_result_free(&r);
}
