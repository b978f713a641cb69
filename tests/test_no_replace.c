/* test_no_replace.c — attnmap never deletes or replaces what it did not create (issue 21,
 * "data loss"): `--force` and `report -o` replace only a run or report folder attnmap
 * wrote (its marker file, nothing else in it, not a symbolic link), never an input, a
 * folder above an input, a user's folder or file, or what a symbolic link points at.
 * Every refusal is one line, exit 2, and every byte of what was there is still there. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/dataset_builder.h"
#include "support/report_dataset.h"
#include "support/run_cli.h"

static char work[128];
static char paths[16][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "norepl"), 0); }
static void teardown(void) { dsb_rmtree(work); }

TestSuite(no_replace, .init = setup, .fini = teardown, .timeout = 120);

static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 16], sizeof paths[0], work, name);
}

static const rds_spec_t small = {.L = 2, .H = 2, .B = 4, .T = 6, .grads = 1, .seed = 3};

/* A dataset file at path (its parent made) and its bytes, to compare afterwards. */
static char *make_data(const char *path, size_t *len) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s", path);
  *strrchr(dir, '/') = '\0';
  mkdir(dir, 0777);
  cr_assert_eq(rds_make(&small, path), 0);
  return dsb_read_file(path, len);
}

static void expect_same(const char *path, const char *bytes, size_t len) {
  size_t now = 0;
  char *text = dsb_read_file(path, &now);
  cr_expect(text && now == len && memcmp(text, bytes, len) == 0, "%s changed or is gone",
            path);
  free(text);
}

static void check_refused(cli_result_t *r, const char *what, const char *phrase) {
  cr_expect_eq(r->signal, 0, "%s: signal %d", what, r->signal);
  cr_expect_eq(r->exit_code, 2, "%s: exit %d; stderr: %s", what, r->exit_code, r->err);
  cr_expect_eq(cli_count_lines(r->err), 1, "%s: stderr not one line: %s", what, r->err);
  cr_expect(strstr(r->err, phrase) != NULL, "%s: no '%s' in: %s", what, phrase, r->err);
  cli_result_free(r);
}

/* attnmap ARGS... must exit 2 with one line holding phrase. */
#define expect_refused(what, phrase, ...)                                                  \
  do {                                                                                     \
    cli_result_t r_;                                                                       \
    cr_assert_eq(cli_run(&r_, NULL, __VA_ARGS__), 0);                                      \
    check_refused(&r_, what, phrase);                                                      \
  } while (0)

/* attnmap ARGS... must succeed. */
#define run_ok(...)                                                                        \
  do {                                                                                     \
    cli_result_t r_;                                                                       \
    cr_assert_eq(cli_run(&r_, NULL, __VA_ARGS__), 0);                                      \
    cr_assert_eq(r_.exit_code, 0, "exit %d; stderr: %s", r_.exit_code, r_.err);            \
    cli_result_free(&r_);                                                                  \
  } while (0)

Test(no_replace, analyze_never_replaces_its_input_file) {
  size_t len;
  const char *x = P("data/x.safetensors");
  char *bytes = make_data(x, &len);
  expect_refused("-o the input", "never replaces its inputs", "analyze", x, "-o", x,
                 "--force", "-q", NULL);
  expect_same(x, bytes, len);
  /* the same file by another name: ./ and a symbolic link */
  char dotted[600];
  snprintf(dotted, sizeof dotted, "%s/data/./x.safetensors", work);
  expect_refused("-o ./input", "never replaces its inputs", "analyze", x, "-o", dotted,
                 "--force", "-q", NULL);
  const char *link = P("link.safetensors");
  cr_assert_eq(symlink(x, link), 0);
  expect_refused("input via a link", "never replaces its inputs", "analyze", link, "-o", x,
                 "--force", "-q", NULL);
  expect_same(x, bytes, len);
  free(bytes);
}

Test(no_replace, analyze_never_replaces_a_folder_holding_an_input) {
  size_t len;
  const char *x = P("top/data/x.safetensors"), *data = P("top/data"), *top = P("top");
  mkdir(top, 0777);
  char *bytes = make_data(x, &len);
  expect_refused("-o the dataset folder", "never replaces its inputs", "analyze", x, "-o",
                 data, "--force", "-q", NULL);
  expect_refused("-o a parent", "never replaces its inputs", "analyze", data, "-o", top,
                 "--force", "-q", NULL);
  expect_refused("-o the folder, given as the input", "never replaces its inputs",
                 "analyze", data, "-o", data, "--force", "-q", NULL);
  expect_same(x, bytes, len);
  cr_expect_eq(dsb_count_prefixed(data, ".tmp-"), 0);
  cr_expect_eq(dsb_count_prefixed(data, ".partial"), 0);
  free(bytes);
}

Test(no_replace, force_replaces_only_a_run_folder_attnmap_wrote) {
  size_t len;
  const char *x = P("x.safetensors"), *run = P("run");
  char *bytes = make_data(x, &len);
  /* a user's folder, a user's file, an empty folder */
  const char *mine = P("mine"), *notes = P("mine/notes.txt");
  mkdir(mine, 0777);
  cr_assert_eq(dsb_write_bytes(notes, "keep", 4), 0);
  expect_refused("a user folder", "not a run folder attnmap wrote", "analyze", x, "-o",
                 mine, "--force", "-q", NULL);
  expect_same(notes, "keep", 4);
  const char *file = P("file.txt");
  cr_assert_eq(dsb_write_bytes(file, "keep", 4), 0);
  expect_refused("a user file", "not a run folder attnmap wrote", "analyze", x, "-o", file,
                 "--force", "-q", NULL);
  expect_same(file, "keep", 4);
  /* a run folder holding a user's file is not replaced either */
  run_ok("analyze", x, "-o", run, "-q", NULL);
  const char *extra = P("run/my-notes.txt");
  cr_assert_eq(dsb_write_bytes(extra, "keep", 4), 0);
  expect_refused("a run with a user file", "my-notes.txt", "analyze", x, "-o", run,
                 "--force", "-q", NULL);
  expect_same(extra, "keep", 4);
  /* a summary.json that is not attnmap's */
  cr_assert_eq(unlink(extra), 0);
  cr_assert_eq(dsb_write_bytes(P("run/summary.json"), "{}", 2), 0);
  expect_refused("a foreign summary", "not a run folder attnmap wrote", "analyze", x, "-o",
                 run, "--force", "-q", NULL);
  /* a real run is replaced */
  dsb_rmtree(run);
  run_ok("analyze", x, "-o", run, "-q", NULL);
  run_ok("analyze", x, "-o", run, "--force", "-q", NULL);
  expect_same(x, bytes, len);
  free(bytes);
}

Test(no_replace, never_follows_a_symbolic_link) {
  size_t len;
  const char *x = P("x.safetensors"), *run = P("run"), *other = P("other");
  char *bytes = make_data(x, &len);
  run_ok("analyze", x, "-o", other, "-q", NULL);
  /* the output is a link to a real run folder: refused, the folder untouched */
  const char *link = P("link");
  cr_assert_eq(symlink(other, link), 0);
  expect_refused("-o a link", "symbolic link", "analyze", x, "-o", link, "--force", "-q",
                 NULL);
  cr_expect(dsb_exists(P("other/summary.json")));
  /* a run whose report/ is a link out of the run folder to a user's folder */
  run_ok("analyze", x, "-o", run, "-q", NULL);
  const char *mine = P("mine"), *notes = P("mine/index.html");
  mkdir(mine, 0777);
  cr_assert_eq(dsb_write_bytes(notes, "keep", 4), 0);
  cr_assert_eq(symlink(mine, P("run/report")), 0);
  expect_refused("report/ a link", "symbolic link", "report", run, "-q", NULL);
  expect_same(notes, "keep", 4);
  expect_refused("run with a linked report", "report", "analyze", x, "-o", run, "--force",
                 "-q", NULL);
  expect_same(notes, "keep", 4);
  /* a PNG of a report that links to a user's file */
  cr_assert_eq(unlink(P("run/report")), 0);
  run_ok("report", run, "-q", NULL);
  cr_assert_eq(symlink(notes, P("run/report/img/x.png")), 0);
  expect_refused("a linked PNG", "x.png", "report", run, "-q", NULL);
  expect_same(notes, "keep", 4);
  expect_same(x, bytes, len);
  free(bytes);
}

Test(no_replace, report_output_never_replaces_the_run_or_a_user_folder) {
  size_t len;
  const char *x = P("d/x.safetensors"), *run = P("d/runs/run"), *runs = P("d/runs");
  mkdir(P("d"), 0777);
  char *bytes = make_data(x, &len);
  mkdir(runs, 0777);
  run_ok("analyze", x, "-o", run, "-q", NULL);
  char *summary = NULL;
  size_t slen = 0;
  summary = dsb_read_file(P("d/runs/run/summary.json"), &slen);
  expect_refused("report -o RUN", "never replaces its inputs", "report", run, "-o", run,
                 "-q", NULL);
  expect_refused("report -o parent", "never replaces its inputs", "report", run, "-o", runs,
                 "-q", NULL);
  expect_refused("report -o dataset folder", "never replaces its inputs", "report", run,
                 "--dataset", x, "-o", P("d"), "-q", NULL);
  const char *mine = P("mine"), *notes = P("mine/notes.txt");
  mkdir(mine, 0777);
  cr_assert_eq(dsb_write_bytes(notes, "keep", 4), 0);
  expect_refused("report -o a user folder", "not a report folder attnmap wrote", "report",
                 run, "-o", mine, "-q", NULL);
  expect_same(notes, "keep", 4);
  expect_same(P("d/runs/run/summary.json"), summary, slen);
  expect_same(x, bytes, len);
  /* an earlier report elsewhere is replaced */
  run_ok("report", run, "-o", P("rep"), "-q", NULL);
  run_ok("report", run, "-o", P("rep"), "-q", NULL);
  cr_expect(dsb_exists(P("rep/index.html")));
  free(summary);
  free(bytes);
}

Test(no_replace, merge_never_replaces_a_merged_run) {
  const char *a = P("a.safetensors"), *b = P("b.safetensors");
  const char *ra = P("ra"), *rb = P("rb");
  size_t len;
  char *bytes = make_data(a, &len);
  rds_spec_t other = small;
  other.seed = 9;
  cr_assert_eq(rds_make(&other, b), 0);
  run_ok("analyze", a, "-o", ra, "-q", NULL);
  run_ok("analyze", b, "-o", rb, "-q", NULL);
  size_t slen = 0;
  char *summary = dsb_read_file(P("ra/summary.json"), &slen);
  expect_refused("merge -o an input run", "never replaces its inputs", "merge", ra, rb,
                 "-o", ra, "--force", "-q", NULL);
  expect_refused("merge -o the parent", "never replaces its inputs", "merge", ra, rb, "-o",
                 work, "--force", "-q", NULL);
  expect_same(P("ra/summary.json"), summary, slen);
  free(summary);
  free(bytes);
}

Test(no_replace, a_user_folder_named_like_the_partial_run_is_kept) {
  size_t len;
  const char *x = P("x.safetensors"), *run = P("run");
  char *bytes = make_data(x, &len);
  mkdir(P("run.partial"), 0777);
  const char *notes = P("run.partial/notes.txt");
  cr_assert_eq(dsb_write_bytes(notes, "keep", 4), 0);
  expect_refused("RUN.partial of a user", "notes.txt", "analyze", x, "-o", run, "-q", NULL);
  expect_same(notes, "keep", 4);
  cr_expect(!dsb_exists(run));
  free(bytes);
}
