/* test_cli_env.c — the environment `attnmap analyze` gives itself (host/cli/thread_env.c):
 * libgomp's idle workers sleep (OMP_WAIT_POLICY=passive, libgomp's spin count 0) and
 * OpenBLAS starts no spinning server threads (OPENBLAS_NUM_THREADS=1) unless the user
 * chose, which is then kept as given. libgomp describes the settings it read when
 * OMP_DISPLAY_ENV=verbose, once per process start, on stderr: the count of those
 * descriptions is the count of starts. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/run_cli.h"

TestSuite(cli_env, .timeout = 60);

/* Occurrences of needle in s. */
static int count(const char *s, const char *needle) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
    n++;
  return n;
}

/* The value libgomp reports last for `name` ("  NAME = 'VALUE'"), into out. */
static void last_value(const char *err, const char *name, char *out, size_t len) {
  out[0] = '\0';
  char key[64];
  snprintf(key, sizeof key, "%s = '", name);
  const char *at = NULL;
  for (const char *p = err; (p = strstr(p, key)) != NULL; p++)
    at = p + strlen(key);
  if (at)
    snprintf(out, len, "%.*s", (int)strcspn(at, "'"), at);
}

static void analyze_help(cli_result_t *r) {
  setenv("OMP_DISPLAY_ENV", "verbose", 1);
  cr_assert_eq(cli_run(r, NULL, "analyze", "--help", NULL), 0);
  unsetenv("OMP_DISPLAY_ENV");
  cr_assert_eq(r->exit_code, 0, "exit %d: %s", r->exit_code, r->err);
}

Test(cli_env, analyze_runs_with_sleeping_workers_by_default) {
  unsetenv("OMP_WAIT_POLICY");
  unsetenv("GOMP_SPINCOUNT");
  cli_result_t r;
  analyze_help(&r);
  /* the first start reads libgomp's default, the second the passive policy */
  cr_expect_eq(count(r.err, "OPENMP DISPLAY ENVIRONMENT BEGIN"), 2, "stderr: %s", r.err);
  char spin[64];
  last_value(r.err, "GOMP_SPINCOUNT", spin, sizeof spin);
  cr_expect_str_eq(spin, "0", "stderr: %s", r.err);
  cli_result_free(&r);
}

Test(cli_env, a_policy_the_user_set_is_kept) {
  const char *vars[2][2] = {{"OMP_WAIT_POLICY", "active"}, {"GOMP_SPINCOUNT", "1000"}};
  setenv("OPENBLAS_NUM_THREADS", "1", 1); /* OpenBLAS's reason to start again is gone too */
  for (int k = 0; k < 2; k++) {
    unsetenv("OMP_WAIT_POLICY");
    unsetenv("GOMP_SPINCOUNT");
    setenv(vars[k][0], vars[k][1], 1);
    cli_result_t r;
    analyze_help(&r);
    cr_expect_eq(count(r.err, "OPENMP DISPLAY ENVIRONMENT BEGIN"), 1, "%s: stderr: %s",
                 vars[k][0], r.err);
    char spin[64];
    last_value(r.err, "GOMP_SPINCOUNT", spin, sizeof spin);
    cr_expect_str_neq(spin, "0", "%s: stderr: %s", vars[k][0], r.err);
    cli_result_free(&r);
  }
  unsetenv("OMP_WAIT_POLICY");
  unsetenv("GOMP_SPINCOUNT");
  unsetenv("OPENBLAS_NUM_THREADS");
}

/* OpenBLAS reads OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or OMP_NUM_THREADS when it is
 * loaded: with the OpenMP policy chosen by the user, analyze starts again only when none of
 * those is set (to set OPENBLAS_NUM_THREADS=1), and keeps any of them as given. */
Test(cli_env, openblas_threads_start_only_when_the_user_set_none) {
  const char *vars[4] = {NULL, "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS",
                         "OMP_NUM_THREADS"};
  setenv("OMP_WAIT_POLICY", "passive", 1);
  for (int k = 0; k < 4; k++) {
    for (int v = 1; v < 4; v++)
      unsetenv(vars[v]);
    if (vars[k])
      setenv(vars[k], "2", 1);
    cli_result_t r;
    analyze_help(&r);
    cr_expect_eq(count(r.err, "OPENMP DISPLAY ENVIRONMENT BEGIN"), vars[k] ? 1 : 2,
                 "%s: stderr: %s", vars[k] ? vars[k] : "none set", r.err);
    if (vars[k] && strcmp(vars[k], "OMP_NUM_THREADS") == 0) {
      char n[64];
      last_value(r.err, "OMP_NUM_THREADS", n, sizeof n);
      cr_expect_str_eq(n, "2", "the user's OMP_NUM_THREADS is kept: stderr: %s", r.err);
    }
    cli_result_free(&r);
  }
  for (int v = 1; v < 4; v++)
    unsetenv(vars[v]);
  unsetenv("OMP_WAIT_POLICY");
}

Test(cli_env, other_commands_start_once) {
  unsetenv("OMP_WAIT_POLICY");
  unsetenv("GOMP_SPINCOUNT");
  setenv("OMP_DISPLAY_ENV", "verbose", 1);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "inspect", "--help", NULL), 0);
  unsetenv("OMP_DISPLAY_ENV");
  cr_expect_eq(count(r.err, "OPENMP DISPLAY ENVIRONMENT BEGIN"), 1, "stderr: %s", r.err);
  cli_result_free(&r);
}
