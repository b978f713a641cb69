/* test_job.c — the distributed job API (am_job_*, what `mpirun attnmap analyze` drives;
 * docs/cluster.md) in one process, so that it runs under the sanitizers too: any number of
 * parts gives the single-process run folder byte for byte; the split covers the pending
 * examples once, in order; a job stopped part-way resumes with another number of parts
 * from the rows its parts checkpointed (and never from a record whose rows changed); a
 * job missing rows is never published; a part asked to stop stops. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnmap.h"
#include "support/dataset_builder.h"

static char dir[128], data1[256], data2[256], full[256], run[256], partial[300];
static am_ctx_t *ctx;
static am_dataset_t *ds;
static am_plan_t plan;
static am_run_options_t opts;
#define N_EXAMPLES (37 + 20)

static void make_shard(const char *path, int B, int T, uint64_t seed) {
  int lengths[64];
  for (int b = 0; b < B; b++)
    lengths[b] = 6 + (b * 7) % (T - 5);
  dsb_spec_t spec = {.L = 2,
                     .H = 3,
                     .B = B,
                     .T = T,
                     .lengths = lengths,
                     .grads = 1,
                     .saliency = 1,
                     .labels = 1,
                     .special = 1,
                     .seed = seed};
  cr_assert_eq(dsb_make(&spec, path), 0);
}

static void setup(void) {
  cr_assert_eq(dsb_tempdir(dir, sizeof dir, "job"), 0);
  dsb_join(data1, sizeof data1, dir, "a.safetensors");
  dsb_join(data2, sizeof data2, dir, "b.safetensors");
  dsb_join(full, sizeof full, dir, "full");
  dsb_join(run, sizeof run, dir, "run");
  snprintf(partial, sizeof partial, "%s.partial", run);
  make_shard(data1, 37, 24, 3); /* uneven shards: 37 and 20 examples */
  make_shard(data2, 20, 24, 4);
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  const char *paths[] = {data1, data2};
  cr_assert_eq(am_dataset_open(ctx, paths, 2, &ds), AM_STATUS_OK, "%s", am_last_error(ctx));
  am_plan_init(&plan);
  am_run_options_init(&opts);
  plan.chunk = 4;
  opts.checkpoint_s = 0;
  cr_assert_eq(am_run_analyze(ctx, ds, &plan, full, &opts), AM_STATUS_OK, "%s",
               am_last_error(ctx));
}

static void teardown(void) {
  am_dataset_close(ds);
  am_ctx_destroy(ctx);
  dsb_rmtree(dir);
}

TestSuite(job, .init = setup, .fini = teardown, .timeout = 120);

static void expect_same_as_full(const char *what) {
  char a[512], b[512];
  size_t na = 0, nb = 0;
  char *x = dsb_read_file(dsb_join(a, sizeof a, full, "examples.safetensors"), &na);
  char *y = dsb_read_file(dsb_join(b, sizeof b, run, "examples.safetensors"), &nb);
  cr_assert(x && y, "%s: no examples.safetensors", what);
  cr_expect(na == nb && memcmp(x, y, na) == 0, "%s: examples.safetensors differs", what);
  free(x);
  free(y);
  json_t *s1 = json_load_file(dsb_join(a, sizeof a, full, "summary.json"), 0, NULL);
  json_t *s2 = json_load_file(dsb_join(b, sizeof b, run, "summary.json"), 0, NULL);
  cr_assert(s1 && s2);
  cr_expect(json_is_object(json_object_get(json_object_get(s2, "provenance"), "parts")),
            "%s: no provenance.parts", what);
  json_t *p1 = json_object_get(json_object_get(s1, "provenance"), "inputs");
  json_t *p2 = json_object_get(json_object_get(s2, "provenance"), "inputs");
  cr_expect(json_equal(p1, p2), "%s: the inputs' CRC-32C differ", what);
  json_object_del(s1, "provenance");
  json_object_del(s2, "provenance");
  cr_expect(json_equal(s1, s2), "%s: summary.json differs", what);
  json_decref(s1);
  json_decref(s2);
  cr_expect(!dsb_exists(partial), "%s: the partial folder is left", what);
}

/* Runs part `part` of `nparts`: every range of its split; the examples it computed. */
static int64_t run_part(am_job_t *job, int nparts, int part) {
  int64_t ranges[64];
  int n = am_job_split(job, nparts, part, ranges, 32);
  cr_assert(n >= 0 && n <= 32);
  int64_t done = 0;
  for (int i = 0; i < n; i++) {
    cr_assert_eq(am_job_rows(ctx, ds, &plan, run, &opts, ranges[2 * i], ranges[2 * i + 1],
                             NULL, NULL),
                 AM_STATUS_OK, "%s", am_last_error(ctx));
    done += ranges[2 * i + 1] - ranges[2 * i];
  }
  return done;
}

Test(job, any_number_of_parts_gives_the_single_process_folder) {
  for (int nparts = 1; nparts <= 5; nparts++) {
    dsb_rmtree(run);
    am_job_t *job = NULL;
    cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK);
    cr_assert_not_null(job);
    int64_t covered = 0, next = 0, ranges[64];
    for (int p = 0; p < nparts; p++) { /* the split: in order, disjoint, complete */
      int n = am_job_split(job, nparts, p, ranges, 32);
      for (int i = 0; i < n; i++) {
        cr_expect_eq(ranges[2 * i], next, "nparts %d part %d", nparts, p);
        cr_expect(ranges[2 * i + 1] > ranges[2 * i]);
        next = ranges[2 * i + 1];
        covered += ranges[2 * i + 1] - ranges[2 * i];
      }
    }
    cr_expect_eq(covered, N_EXAMPLES);
    for (int p = nparts - 1; p >= 0; p--) /* the parts in any order */
      run_part(job, nparts, p);
    cr_assert_eq(am_job_finish(job, "{\"engine\":\"test\"}"), AM_STATUS_OK, "%s",
                 am_last_error(ctx));
    am_job_close(job, AM_STATUS_OK);
    char what[32];
    snprintf(what, sizeof what, "%d parts", nparts);
    expect_same_as_full(what);
  }
}

Test(job, a_stopped_job_resumes_with_another_number_of_parts) {
  am_job_t *job = NULL;
  cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK);
  int64_t ranges[64];
  cr_assert_eq(am_job_split(job, 3, 1, ranges, 32), 1);
  run_part(job, 3, 2); /* part 2 whole, part 1's first half: then the job "dies" */
  int64_t mid = (ranges[0] + ranges[1]) / 2;
  cr_assert_eq(am_job_rows(ctx, ds, &plan, run, &opts, ranges[0], mid, NULL, NULL),
               AM_STATUS_OK);
  am_job_close(job, AM_STATUS_IO); /* an I/O failure or a kill: the folder is kept */
  cr_assert(dsb_exists(partial));
  opts.resume = 1;
  cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK);
  int64_t again = run_part(job, 2, 0) + run_part(job, 2, 1);
  cr_expect_lt(again, N_EXAMPLES, "a resume recomputed every example");
  cr_assert_eq(am_job_finish(job, "{}"), AM_STATUS_OK, "%s", am_last_error(ctx));
  am_job_close(job, AM_STATUS_OK);
  expect_same_as_full("resumed with 2 parts");
  /* finished: a resume has nothing to do */
  cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK);
  cr_expect_null(job);
}

Test(job, a_record_whose_rows_changed_is_not_trusted) {
  am_job_t *job = NULL;
  cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK);
  run_part(job, 2, 1);
  am_job_close(job, AM_STATUS_IO);
  char path[512]; /* a row of part 1 changed behind the record's back */
  FILE *f = fopen(dsb_join(path, sizeof path, partial, "examples.safetensors"), "r+b");
  cr_assert_not_null(f);
  fseek(f, -4, SEEK_END);
  fputc(0x55, f);
  fclose(f);
  opts.resume = 1;
  cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK);
  cr_expect_eq(run_part(job, 1, 0), N_EXAMPLES, "rows of a stale record were trusted");
  cr_assert_eq(am_job_finish(job, "{}"), AM_STATUS_OK);
  am_job_close(job, AM_STATUS_OK);
  expect_same_as_full("stale record");
}

Test(job, missing_rows_are_never_published) {
  am_job_t *job = NULL;
  cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK);
  run_part(job, 2, 0);
  am_status st = am_job_finish(job, NULL);
  cr_expect_neq(st, AM_STATUS_OK);
  cr_expect(strstr(am_last_error(ctx), "missing"), "%s", am_last_error(ctx));
  am_job_close(job, st);
  cr_expect(!dsb_exists(run));
}

static int stop_now(void *user, int64_t done, int64_t total) {
  (void)total;
  *(int64_t *)user = done;
  return 1;
}

Test(job, a_part_asked_to_stop_stops_after_its_chunk) {
  am_job_t *job = NULL;
  cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK);
  int64_t seen = -1;
  am_status st = am_job_rows(ctx, ds, &plan, run, &opts, 0, N_EXAMPLES, stop_now, &seen);
  cr_expect_neq(st, AM_STATUS_OK);
  cr_expect_eq(seen, 4, "stopped after %lld examples, not after the first chunk",
               (long long)seen);
  cr_expect_eq(am_job_rows(ctx, ds, &plan, run, &opts, 5, 3, NULL, NULL),
               AM_STATUS_INVALID_ARGUMENT);
  am_job_close(job, AM_STATUS_IO);
}

/* Several targets (docs/generation.md): the parts write the step tensors and the finish
 * the steps section, as one process does. */
Test(job, several_targets_give_the_single_process_folder) {
  plan.target = AM_TARGET_RANGE; /* --target 1:-1 */
  plan.target_index = 1;
  plan.target_stop = -1;
  plan.target_slice = 3;
  dsb_rmtree(full);
  cr_assert_eq(am_run_analyze(ctx, ds, &plan, full, &opts), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_job_t *job = NULL;
  cr_assert_eq(am_job_open(ctx, ds, &plan, run, &opts, &job), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  for (int p = 2; p >= 0; p--)
    run_part(job, 3, p);
  cr_assert_eq(am_job_finish(job, "{\"engine\":\"test\"}"), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_job_close(job, AM_STATUS_OK);
  expect_same_as_full("3 parts, several targets");
  char path[512];
  json_t *s = json_load_file(dsb_join(path, sizeof path, run, "summary.json"), 0, NULL);
  cr_expect(json_is_object(json_object_get(s, "steps")), "no steps section");
  json_decref(s);
}
