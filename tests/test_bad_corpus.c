/* test_bad_corpus.c — the committed bad-input corpus (tests/bad/cases/, written by
 * tests/bad/make_bad.py, described by tests/bad/EXPECTED.tsv) through the CLI: for every
 * case `attnmap analyze CASE -o RUN` and `attnmap inspect CASE` must exit with the code
 * the manifest gives, print exactly one line on stderr holding every expected substring
 * (the file, the tensor, the problem), never die of a signal, and leave no run folder,
 * no RUN.tmp-* folder and nothing new beside the case. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

#define BAD_DIR ATTNMAP_SOURCE_DIR "/tests/bad"
#define MAX_CASES 256
#define MAX_SUBS 8

typedef struct bad_case {
  char name[128];
  int analyze_exit, inspect_exit;
  int nsubs;
  char subs[MAX_SUBS][160];
} bad_case_t;

static bad_case_t cases[MAX_CASES];
static int ncases;
static char work[128];

/* Parses EXPECTED.tsv: case, analyze exit, inspect exit, substrings (tab-separated). */
static void load_manifest(void) {
  FILE *f = fopen(BAD_DIR "/EXPECTED.tsv", "r");
  cr_assert_not_null(f, "cannot open %s", BAD_DIR "/EXPECTED.tsv");
  char line[2048];
  ncases = 0;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#' || line[0] == '\n')
      continue;
    line[strcspn(line, "\n")] = '\0';
    cr_assert_lt(ncases, MAX_CASES);
    bad_case_t *c = &cases[ncases++];
    memset(c, 0, sizeof *c);
    char *save = NULL;
    int col = 0;
    for (char *tok = strtok_r(line, "\t", &save); tok; tok = strtok_r(NULL, "\t", &save)) {
      if (col == 0)
        snprintf(c->name, sizeof c->name, "%s", tok);
      else if (col == 1)
        c->analyze_exit = atoi(tok);
      else if (col == 2)
        c->inspect_exit = atoi(tok);
      else if (c->nsubs < MAX_SUBS)
        snprintf(c->subs[c->nsubs++], sizeof c->subs[0], "%s", tok);
      col++;
    }
    cr_assert_geq(col, 4, "manifest line of %s has no expected substring", c->name);
  }
  fclose(f);
}

static void setup(void) {
  load_manifest();
  cr_assert_eq(dsb_tempdir(work, sizeof work, "bad"), 0);
}
static void teardown(void) { dsb_rmtree(work); }

TestSuite(bad_corpus, .init = setup, .fini = teardown, .timeout = 600);

/* Entries of a folder, . and .. excepted; -1 when it cannot be opened. */
static int count_entries(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return n;
}

static void check_result(const bad_case_t *c, const char *cmd, const cli_result_t *r,
                         int want) {
  cr_expect_eq(r->signal, 0, "%s %s: killed by signal %d; stderr: %s", cmd, c->name,
               r->signal, r->err);
  cr_expect(!r->timed_out, "%s %s: timed out", cmd, c->name);
  cr_expect_eq(r->exit_code, want, "%s %s: exit %d, want %d; stderr: %s", cmd, c->name,
               r->exit_code, want, r->err);
  if (want == 0)
    return;
  cr_expect_eq(cli_count_lines(r->err), 1, "%s %s: stderr is not one line: [%s]", cmd,
               c->name, r->err);
  for (int s = 0; s < c->nsubs; s++)
    cr_expect(strstr(r->err, c->subs[s]) != NULL, "%s %s: no '%s' in: %s", cmd, c->name,
              c->subs[s], r->err);
}

Test(bad_corpus, manifest_covers_every_case_and_at_least_40) {
  cr_expect_geq(ncases, 40, "only %d cases", ncases);
  DIR *d = opendir(BAD_DIR "/cases");
  cr_assert_not_null(d);
  struct dirent *e;
  int on_disk = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    on_disk++;
    int found = 0;
    for (int i = 0; i < ncases && !found; i++)
      found = strcmp(cases[i].name, e->d_name) == 0;
    cr_expect(found, "%s is in tests/bad/cases but not in EXPECTED.tsv", e->d_name);
  }
  closedir(d);
  cr_expect_eq(on_disk, ncases, "%d cases on disk, %d in the manifest", on_disk, ncases);
}

Test(bad_corpus, every_case_fails_cleanly) {
  char run[256], input[512], parent[512];
  snprintf(run, sizeof run, "%s/run", work);
  for (int i = 0; i < ncases; i++) {
    const bad_case_t *c = &cases[i];
    snprintf(input, sizeof input, "%s/cases/%.127s", BAD_DIR, c->name);
    cr_assert(dsb_exists(input), "%s is in EXPECTED.tsv but missing", input);
    /* what sits beside (or inside) the case before, to see that nothing is added */
    snprintf(parent, sizeof parent, "%s/cases", BAD_DIR);
    int before = count_entries(parent), inside = count_entries(input);

    cli_result_t r;
    cr_assert_eq(cli_run(&r, NULL, "analyze", input, "-o", run, "--quiet", NULL), 0);
    check_result(c, "analyze", &r, c->analyze_exit);
    cli_result_free(&r);
    if (c->analyze_exit != 0) {
      cr_expect(!dsb_exists(run), "analyze %s: %s exists after a failure", c->name, run);
      cr_expect_eq(count_entries(work), 0, "analyze %s: something left in %s", c->name,
                   work);
    }
    dsb_rmtree(run);

    cr_assert_eq(cli_run(&r, NULL, "inspect", input, NULL), 0);
    check_result(c, "inspect", &r, c->inspect_exit);
    cli_result_free(&r);
    cr_expect_eq(count_entries(parent), before, "%s: files added beside the case", c->name);
    cr_expect_eq(count_entries(input), inside, "%s: files added inside the case", c->name);
  }
}
