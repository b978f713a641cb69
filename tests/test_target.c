/* test_target.c — which token a run reads and what it leaves out: the target the exporter
 * recorded in the shards (attnmap.exporter metadata) is taken unless --target is given,
 * said on stderr and in summary.json, refused when shards contradict each other, shown by
 * inspect; the target token is left out of agreement and the per-token table unless
 * --include-target (docs/analyses.md, "The target's own mass"). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

static char work[128];
static char paths[16][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "target"), 0); }
static void teardown(void) { dsb_rmtree(work); }

TestSuite(target, .init = setup, .fini = teardown, .timeout = 120);

static const char *P(const char *name) {
  char *p = paths[next_path++ % 16];
  return dsb_join(p, sizeof paths[0], work, name);
}

static const int lens[4] = {6, 3, 5, 6};

/* A shard of 4 examples whose attnmap.exporter metadata records target (NULL: none). */
static void write_shard(const char *path, const char *target, uint64_t seed) {
  dsb_spec_t s = {.L = 2, .H = 2, .B = 4, .T = 6, .lengths = lens, .grads = 1,
                  .special = 1, .seed = seed};
  dsb_t *ds = dsb_build(&s);
  cr_assert_not_null(ds);
  int n = dsb_tensors(ds);
  char exporter[128];
  snprintf(exporter, sizeof exporter, "{\"task\": \"causal-lm\", \"target\": \"%s\"}",
           target ? target : "");
  const char *meta[] = {"attnmap.exporter", exporter};
  cr_assert_eq(dsb_write_list(path, ds->list, n, meta, target ? 1 : 0), 0);
  dsb_free(ds);
}

static json_t *options_of(const char *run) {
  char path[600];
  snprintf(path, sizeof path, "%s/summary.json", run);
  json_t *root = json_load_file(path, 0, NULL);
  cr_assert_not_null(root, "no %s", path);
  json_t *opt = json_object_get(json_object_get(root, "provenance"), "options");
  json_incref(opt);
  json_decref(root);
  return opt;
}

Test(target, the_recorded_target_is_used_and_said_unless_target_is_given) {
  const char *dir = P("shards"), *run = P("run"), *run2 = P("run-cls");
  char shard[600];
  mkdir(dir, 0777);
  write_shard(dsb_join(shard, sizeof shard, dir, "shard-00000.safetensors"), "last", 1);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", dir, "-o", run, NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "target last as the exporter recorded it in") &&
                strstr(r.err, "shard-00000.safetensors"),
            "stderr: %s", r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "stderr: %s", r.err);
  cli_result_free(&r);
  json_t *opt = options_of(run);
  cr_expect_str_eq(json_string_value(json_object_get(opt, "target")), "last");
  cr_expect_str_eq(json_string_value(json_object_get(opt, "target_source")), "exporter");
  json_decref(opt);

  cr_assert_eq(cli_run(&r, NULL, "analyze", dir, "-o", run2, "--target", "cls", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "target cls from --target; the exporter recorded last in"),
            "stderr: %s", r.err);
  cli_result_free(&r);
  opt = options_of(run2);
  cr_expect_str_eq(json_string_value(json_object_get(opt, "target")), "cls");
  cr_expect_str_eq(json_string_value(json_object_get(opt, "target_source")), "options");
  json_decref(opt);

  cr_assert_eq(cli_run(&r, NULL, "inspect", dir, NULL), 0);
  cr_expect(strstr(r.out, "target: last (recorded by the exporter in"), "stdout: %s", r.out);
  cli_result_free(&r);
}

Test(target, shards_that_record_different_targets_are_refused_naming_both) {
  const char *dir = P("shards"), *run = P("run");
  char a[600], b[600];
  mkdir(dir, 0777);
  write_shard(dsb_join(a, sizeof a, dir, "shard-00000.safetensors"), "last", 1);
  write_shard(dsb_join(b, sizeof b, dir, "shard-00001.safetensors"), "cls", 2);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", dir, "-o", run, NULL), 0);
  cr_expect_eq(r.exit_code, 2, "stderr: %s", r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "shard-00000.safetensors") && strstr(r.err, "shard-00001") &&
                strstr(r.err, "contradicts"),
            "stderr: %s", r.err);
  cr_expect(!dsb_exists(run));
  cli_result_free(&r);
}

Test(target, no_record_means_cls_and_says_so) {
  const char *ds = P("plain.safetensors"), *run = P("run");
  write_shard(ds, NULL, 3);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "target cls, the default: the inputs record none"), "stderr: %s",
            r.err);
  cli_result_free(&r);
}

/* Sum of the per-token table's counts. */
static long long token_count(const char *run) {
  char path[600];
  snprintf(path, sizeof path, "%s/summary.json", run);
  json_t *root = json_load_file(path, 0, NULL);
  cr_assert_not_null(root);
  json_t *count = json_object_get(json_object_get(root, "tokens_table"), "count");
  long long total = 0;
  for (size_t i = 0; i < json_array_size(count); i++)
    total += json_integer_value(json_array_get(count, i));
  json_decref(root);
  return total;
}

/* The builder marks the first and last valid token special; with --target 1 the target is
 * a non-special token of every example (n >= 3), so the table counts n - 2 tokens per
 * example with --include-target (4+1+3+4 = 12) and n - 3 without (3+0+2+3 = 8). */
Test(target, the_target_token_is_left_out_of_the_token_table_unless_asked) {
  const char *ds = P("d.safetensors"), *run = P("run"), *with = P("run-with");
  write_shard(ds, NULL, 4);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "--target", "1", "-q", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", with, "--target", "1",
                       "--include-target", "-q", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cli_result_free(&r);
  cr_expect_eq(token_count(run), 8);
  cr_expect_eq(token_count(with), 12);
  json_t *opt = options_of(with);
  cr_expect(json_is_true(json_object_get(opt, "include_target")));
  json_decref(opt);
}
