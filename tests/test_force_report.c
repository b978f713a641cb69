/* test_force_report.c — `analyze --force` over a run folder that holds a report: the
 * report is what a person reads and may keep, so the run is not replaced (exit 2, one line
 * naming the report, the old run and its report untouched); without a report --force
 * replaces the run as before. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

static char work[128];
static char paths[8][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "forcerep"), 0); }
static void teardown(void) { dsb_rmtree(work); }

TestSuite(force_report, .init = setup, .fini = teardown, .timeout = 60);

static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 8], sizeof paths[0], work, name);
}

Test(force_report, force_does_not_delete_a_report) {
  dsb_spec_t s = {.L = 2, .H = 2, .B = 3, .T = 5, .grads = 1, .seed = 9};
  const char *ds = P("d.safetensors"), *run = P("run");
  cr_assert_eq(dsb_make(&s, ds), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "-q", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "-q", "--force", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "no report yet: --force replaces: %s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "report", run, "-q", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  char index[700];
  snprintf(index, sizeof index, "%s/report/index.html", run);
  cr_assert(dsb_exists(index));
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "-q", "--force", NULL), 0);
  cr_expect_eq(r.exit_code, 2, "stderr: %s", r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "/run/report") && strstr(r.err, "does not delete reports"),
            "stderr: %s", r.err);
  cli_result_free(&r);
  cr_expect(dsb_exists(index), "the report was deleted");
  char examples[700];
  snprintf(examples, sizeof examples, "%s/examples.safetensors", run);
  cr_expect(dsb_exists(examples), "the old run was deleted");
}
