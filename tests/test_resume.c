/* test_resume.c — `attnmap analyze --resume` after the process was killed with SIGKILL at
 * a random point: the resumed run finishes with examples.safetensors byte-identical and
 * summary.json identical (apart from provenance) to an uninterrupted run; until then only
 * RUN.partial exists. Also: a resume with other options starts afresh, and two runs into
 * one folder at once are refused. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

extern char **environ;

static char dir[128];
static char data[256], full[256], run[256], partial[300];

static void setup(void) {
  cr_assert_eq(dsb_tempdir(dir, sizeof dir, "resume"), 0);
  dsb_join(data, sizeof data, dir, "data.safetensors");
  dsb_join(full, sizeof full, dir, "full");
  dsb_join(run, sizeof run, dir, "run");
  snprintf(partial, sizeof partial, "%s.partial", run);
  int lengths[160];
  for (int b = 0; b < 160; b++)
    lengths[b] = 8 + (b * 7) % 25;
  dsb_spec_t spec = {.L = 3,
                     .H = 3,
                     .B = 160,
                     .T = 32,
                     .lengths = lengths,
                     .grads = 1,
                     .saliency = 1,
                     .labels = 1,
                     .special = 1,
                     .seed = 11};
  cr_assert_eq(dsb_make(&spec, data), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", full, "-q", "--chunk", "3", NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
}

static void teardown(void) { dsb_rmtree(dir); }

TestSuite(resume, .init = setup, .fini = teardown, .timeout = 120);

/* Starts analyze in the background and kills it with SIGKILL after delay_us unless it
 * finished before. Returns 1 when it was killed. */
static const char *several; /* --target A:B for the several-targets test, else NULL */

static int run_and_kill(long delay_us) {
  const char *argv[] = {ATTNMAP_CLI, "analyze", data, "-o",           run,
                        "-q",        "--chunk", "1",  "--checkpoint", "0",
                        "--target",  several,   NULL};
  if (!several)
    argv[10] = NULL;
  pid_t pid;
  cr_assert_eq(posix_spawn(&pid, ATTNMAP_CLI, NULL, NULL, (char *const *)argv, environ), 0);
  int status = 0;
  for (long waited = 0; waited < delay_us; waited += 2000) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      return 0;
    usleep(2000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

static json_t *summary_without_provenance(const char *run_dir) {
  char path[512];
  json_t *j = json_load_file(dsb_join(path, sizeof path, run_dir, "summary.json"), 0, NULL);
  cr_assert_not_null(j, "%s", path);
  json_object_del(j, "provenance");
  return j;
}

static void expect_same_as_full(const char *what) {
  char a[512], b[512];
  size_t na = 0, nb = 0;
  char *x = dsb_read_file(dsb_join(a, sizeof a, full, "examples.safetensors"), &na);
  char *y = dsb_read_file(dsb_join(b, sizeof b, run, "examples.safetensors"), &nb);
  cr_assert(x && y);
  cr_expect(na == nb && memcmp(x, y, na) == 0, "%s: examples.safetensors differs", what);
  free(x);
  free(y);
  json_t *s1 = summary_without_provenance(full), *s2 = summary_without_provenance(run);
  cr_expect(json_equal(s1, s2), "%s: summary.json differs", what);
  json_decref(s1);
  json_decref(s2);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1 when the partial folder holds a checkpoint (the kill landed after some progress). */
static int has_checkpoint(void) {
  char path[512];
  return dsb_exists(dsb_join(path, sizeof path, partial, "progress.json"));
}

/* How long an uninterrupted run takes on this machine now (us): kills land inside it. */
static long uninterrupted_us(void) {
  double t0 = now_s();
  run_and_kill(600 * 1000000L);
  return (long)((now_s() - t0) * 1e6);
}

Test(resume, killed_at_random_points_resumes_to_identical_outputs) {
  unsigned seed = (unsigned)time(NULL);
  srand(seed);
  long span = uninterrupted_us();
  int killed_mid_run = 0;
  for (int trial = 0; trial < 6; trial++) {
    dsb_rmtree(run);
    dsb_rmtree(partial);
    long delay = span / 10 + rand() % (span * 8 / 10 + 1);
    int killed = run_and_kill(delay);
    if (killed && !dsb_exists(run))
      killed_mid_run += has_checkpoint();
    if (!dsb_exists(run)) { /* else it finished before the kill: nothing to resume */
      cli_result_t r;
      /* the same options as the killed run (--chunk is one of them): a real resume */
      cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "-q", "--resume",
                           "--chunk", "1", NULL),
                   0);
      cr_expect_eq(r.exit_code, 0, "seed %u trial %d (killed after %ld us): %s", seed,
                   trial, delay, r.err);
      cli_result_free(&r);
    }
    char what[64];
    snprintf(what, sizeof what, "seed %u trial %d delay %ld us", seed, trial, delay);
    expect_same_as_full(what);
    cr_expect(!dsb_exists(partial), "%s: %s left after completion", what, partial);
  }
  cr_expect(killed_mid_run >= 1, "seed %u: none of 6 kills (run of %ld us) landed mid-run",
            seed, span);
}

Test(resume, other_options_start_afresh) {
  run_and_kill(60000);
  cli_result_t r;
  /* a different discard ratio: the partial rows are not this run's, it starts again */
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "-q", "--resume", "--discard",
                       "0.5", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  char other[256];
  dsb_join(other, sizeof other, dir, "other");
  cr_assert_eq(
      cli_run(&r, NULL, "analyze", data, "-o", other, "-q", "--discard", "0.5", NULL), 0);
  cli_result_free(&r);
  char a[512], b[512];
  size_t na = 0, nb = 0;
  char *x = dsb_read_file(dsb_join(a, sizeof a, other, "examples.safetensors"), &na);
  char *y = dsb_read_file(dsb_join(b, sizeof b, run, "examples.safetensors"), &nb);
  cr_expect(x && y && na == nb && memcmp(x, y, na) == 0);
  free(x);
  free(y);
}

Test(resume, resume_without_partial_runs_whole) {
  cli_result_t r;
  cr_assert_eq(
      cli_run(&r, NULL, "analyze", data, "-o", run, "-q", "--resume", "--chunk", "3", NULL),
      0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  expect_same_as_full("resume without a partial folder");
}

/* Nightly scripts pass --resume every time: on a finished run made from the same inputs
 * with the same options it says so, exits 0 and leaves the folder as it is; with other
 * options or changed inputs it is the usual error naming the folder. */
Test(resume, finished_run_with_same_inputs_is_success) {
  char sum[512];
  dsb_join(sum, sizeof sum, full, "summary.json");
  size_t n0 = 0, n1 = 0;
  char *before = dsb_read_file(sum, &n0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", full, "-q", "--resume", "--chunk",
                       "3", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cr_expect(strstr(r.err, "already complete with these inputs and options") != NULL, "%s",
            r.err);
  cli_result_free(&r);
  char *after = dsb_read_file(sum, &n1);
  cr_expect(before && after && n0 == n1 && memcmp(before, after, n0) == 0,
            "summary.json was rewritten");
  free(before);
  free(after);
  /* other options: --chunk is one of them (it is recorded), so is --discard */
  const char *other[][2] = {{"--discard", "0.5"}, {"--chunk", "4"}};
  for (int k = 0; k < 2; k++) {
    cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", full, "-q", "--resume",
                         other[k][0], other[k][1], NULL),
                 0);
    cr_expect_eq(r.exit_code, 2, "%s %s: exit %d", other[k][0], other[k][1], r.exit_code);
    cr_expect(strstr(r.err, "already exists and is not a run made from these inputs") &&
                  strstr(r.err, full),
              "%s", r.err);
    cli_result_free(&r);
  }
  /* the same options, an input modified since */
  struct timespec later[2] = {{0, UTIME_OMIT}, {time(NULL) + 100, 0}};
  cr_assert_eq(utimensat(AT_FDCWD, data, later, 0), 0);
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", full, "-q", "--resume", "--chunk",
                       "3", NULL),
               0);
  cr_expect_eq(r.exit_code, 2, "modified input: exit %d: %s", r.exit_code, r.err);
  cli_result_free(&r);
}

static json_t *input_crc(json_t *summary) {
  json_t *inputs = json_object_get(json_object_get(summary, "provenance"), "inputs");
  return json_object_get(json_array_get(inputs, 0), "crc32c");
}

/* A resumed run's checksums: the rows done before the kill are read at the end, the rest
 * as the chunks are read; combined, the CRC-32C of the whole file, as an uninterrupted
 * run records it. */
Test(resume, resumed_run_records_the_same_checksums) {
  long span = uninterrupted_us();
  int resumed = 0;
  for (int trial = 0; trial < 4; trial++) {
    dsb_rmtree(run);
    dsb_rmtree(partial);
    if (run_and_kill(span * (trial + 1) / 5) && !dsb_exists(run)) {
      resumed += has_checkpoint();
      cli_result_t r;
      cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "-q", "--resume", NULL),
                   0);
      cr_expect_eq(r.exit_code, 0, "%s", r.err);
      cli_result_free(&r);
    }
    char a[512], b[512];
    json_t *x = json_load_file(dsb_join(a, sizeof a, full, "summary.json"), 0, NULL);
    json_t *y = json_load_file(dsb_join(b, sizeof b, run, "summary.json"), 0, NULL);
    cr_assert(x && y);
    json_t *cx = input_crc(x), *cy = input_crc(y);
    cr_expect(cx && json_equal(cx, cy), "trial %d: crc32c %s, uninterrupted %s", trial,
              json_string_value(cy), json_string_value(cx));
    json_decref(x);
    json_decref(y);
  }
  cr_expect(resumed >= 1, "none of 4 kills (run of %ld us) landed mid-run", span);
}

/* Kills runs until one leaves a checkpoint with some but not all examples done. */
static void leave_a_checkpoint(void) {
  for (long delay = 20000; delay < 20000000; delay = delay * 3 / 2) {
    dsb_rmtree(run);
    dsb_rmtree(partial);
    run_and_kill(delay);
    if (!dsb_exists(run) && has_checkpoint())
      return;
  }
  cr_assert_fail("no kill left a checkpoint");
}

/* progress.json claiming more examples than were written, or rows changed under a
 * checkpoint: the partial rows are not trusted (a resume used to publish the unwritten
 * rows as zeros); the run starts afresh and ends as an uninterrupted one. */
Test(resume, edited_progress_or_rows_are_not_trusted) {
  char path[512];
  dsb_join(path, sizeof path, partial, "progress.json");
  for (int edit = 0; edit < 2; edit++) {
    leave_a_checkpoint();
    json_t *doc = json_load_file(path, 0, NULL);
    cr_assert_not_null(doc);
    int64_t done = json_integer_value(json_object_get(doc, "done"));
    if (edit == 0) {
      json_object_set_new(doc, "done", json_integer(160));
      cr_assert_eq(json_dump_file(doc, path, 0), 0);
    } else { /* lengths[0], a row the checkpoint counts as done */
      char ex[512];
      dsb_join(ex, sizeof ex, partial, "examples.safetensors");
      am_ctx_t *c = NULL;
      am_file_t *f = NULL;
      cr_assert_eq(am_ctx_create(NULL, &c, NULL, 0), AM_STATUS_OK);
      cr_assert_eq(am_file_open(c, ex, &f), AM_STATUS_OK, "%s", am_last_error(c));
      size_t off = (size_t)((const char *)am_file_find(f, "lengths")->data -
                            (const char *)am_file_find(f, "mask")->data); /* mask first */
      am_file_close(f);
      am_ctx_destroy(c);
      size_t len = 0;
      unsigned char *bytes = (unsigned char *)dsb_read_file(ex, &len);
      uint64_t header;
      cr_assert(bytes && done > 0);
      memcpy(&header, bytes, 8);
      bytes[8 + header + off] ^= 1;
      cr_assert_eq(dsb_write_bytes(ex, bytes, len), 0);
      free(bytes);
    }
    json_decref(doc);
    cli_result_t r;
    cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "-q", "--resume", "--chunk",
                         "1", NULL),
                 0);
    cr_expect_eq(r.exit_code, 0, "%s", r.err);
    cli_result_free(&r);
    expect_same_as_full(edit == 0 ? "done edited to 160" : "a stored row edited");
  }
}

/* Several targets (docs/generation.md): a run killed mid-way and resumed writes the step
 * tensors and the summary's steps section of an uninterrupted run. */
Test(resume, several_targets_resume_to_identical_outputs) {
  several = "2:-1";
  dsb_rmtree(full);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", full, "-q", "--chunk", "3",
                       "--target", several, NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  leave_a_checkpoint();
  cr_assert_eq(cli_run(&r, NULL, "analyze", data, "-o", run, "-q", "--resume", "--chunk",
                       "1", "--target", several, NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  expect_same_as_full("several targets");
  json_t *s = summary_without_provenance(run);
  cr_expect(json_is_object(json_object_get(s, "steps")), "no steps section");
  json_decref(s);
}
