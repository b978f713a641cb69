/* test_run_folder.c — the one run-folder reader (am_run_open, pipeline/run_folder.c) and
 * its users: a valid run opens with the names it was written with; a run folder edited
 * or mixed up is refused with one line naming the file, the tensor or field and the
 * problem — by am_run_open, by `attnmap report` and by `attnmap merge` alike (a summary
 * of another run, reordered pairs or maps, shapes that disagree, a mask or lengths
 * edited); merge refuses one run folder or one input file given twice under two
 * spellings ("r" and "./r", "f" and "./f"). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/summary.h"
#include "support/dataset_builder.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

static void setup(void) { scratch_setup("runfolder"); }
TestSuite(run_folder, .init = setup, .fini = scratch_teardown, .timeout = 60);

/* A run of a small dataset with grads, saliency, labels and special tokens. */
static const char *analyzed(const char *name, uint64_t seed, int checksums) {
  static char runs[4][600];
  static int next;
  char *run = runs[next++ % 4];
  char file[64];
  snprintf(file, sizeof file, "%s.safetensors", name);
  const char *p = tmp_path(file);
  dsb_spec_t s = {.L = 2,
                  .H = 2,
                  .B = 3,
                  .T = 5,
                  .grads = 1,
                  .saliency = 1,
                  .labels = 1,
                  .special = 1,
                  .seed = seed};
  cr_assert_eq(dsb_make(&s, p), 0);
  snprintf(run, 600, "%s", tmp_path(name));
  am_dataset_t *ds = NULL;
  cr_assert_eq(am_dataset_open(ctx, &p, 1, &ds), AM_STATUS_OK, "%s", am_last_error(ctx));
  am_plan_t plan;
  am_plan_init(&plan);
  am_run_options_t o;
  am_run_options_init(&o);
  o.checksums = checksums;
  cr_assert_eq(am_run_analyze(ctx, ds, &plan, run, &o), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_dataset_close(ds);
  return run;
}

static char *in(const char *run, const char *name) {
  static char buf[4][700];
  static int next;
  char *b = buf[next++ % 4];
  snprintf(b, 700, "%s/%s", run, name);
  return b;
}

static json_t *load_summary(const char *run) {
  json_t *doc = json_load_file(in(run, "summary.json"), 0, NULL);
  cr_assert_not_null(doc);
  return doc;
}

static void save_summary(const char *run, json_t *doc) {
  cr_assert_eq(json_dump_file(doc, in(run, "summary.json"), JSON_COMPACT), 0);
  json_decref(doc);
}

/* Records the examples file's size and CRC-32C again, as analyze does: an edit of the
 * examples file that the checksum would otherwise catch reaches the checks behind it. */
static void rerecord_checksum(const char *run) {
  json_t *doc = load_summary(run);
  cr_assert_eq(am_summary_add_files(ctx, doc, run), AM_STATUS_OK);
  save_summary(run, doc);
}

/* am_run_open refuses run with a message holding every phrase. */
static void refused(const char *run, const char *a, const char *b) {
  am_run_t *r = (am_run_t *)1;
  cr_assert_eq(am_run_open(ctx, run, &r), AM_STATUS_BAD_INPUT, "accepted; %s %s", a, b);
  cr_assert_null(r);
  const char *msg = am_last_error(ctx);
  cr_expect(!strchr(msg, '\n'), "%s", msg);
  cr_expect(strstr(msg, a), "no '%s' in: %s", a, msg);
  cr_expect(!b || strstr(msg, b), "no '%s' in: %s", b, msg);
}

Test(run_folder, valid_run_opens_with_its_names) {
  const char *run = analyzed("a", 1, 1);
  am_run_t *r = NULL;
  cr_assert_eq(am_run_open(ctx, run, &r), AM_STATUS_OK, "%s", am_last_error(ctx));
  json_t *doc = load_summary(run);
  json_t *maps = json_object_get(
      json_object_get(json_object_get(doc, "provenance"), "options"), "maps");
  cr_assert_eq(am_run_map_count(r), (int)json_array_size(maps));
  for (int m = 0; m < am_run_map_count(r); m++)
    cr_expect_str_eq(am_run_map_name(r, m), json_string_value(json_array_get(maps, m)));
  cr_assert_gt(am_run_pair_count(r), 0);
  cr_expect_str_eq(am_run_pair_name(r, 0), "attention_last~rollout");
  cr_expect_null(am_run_pair_name(r, am_run_pair_count(r)));
  cr_expect(strstr(am_run_summary(r), "\"files\""));
  cr_expect(am_file_find(am_run_examples(r), "head.entropy") != NULL);
  /* the checksum analyze recorded is the file's */
  const json_t *rec = json_object_get(
      json_object_get(json_object_get(doc, "provenance"), "files"), "examples.safetensors");
  cr_expect(json_is_string(json_object_get(rec, "crc32c")));
  json_decref(doc);
  am_run_close(r);
  am_run_close(NULL);
}

Test(run_folder, summary_of_another_run_is_refused) {
  const char *a = analyzed("a", 1, 1), *b = analyzed("b", 2, 1);
  size_t len = 0;
  char *text = dsb_read_file(in(b, "summary.json"), &len);
  cr_assert_not_null(text);
  cr_assert_eq(dsb_write_bytes(in(a, "summary.json"), text, len), 0);
  free(text);
  refused(a, "examples.safetensors: CRC-32C", "another run");
  /* report refuses it too and writes nothing */
  cr_assert_eq(am_run_report(ctx, a, NULL, NULL), AM_STATUS_BAD_INPUT);
  cr_expect(strstr(am_last_error(ctx), "CRC-32C"), "%s", am_last_error(ctx));
  cr_expect_not(dsb_exists(in(a, "report")));
}

Test(run_folder, summary_without_checksum_is_refused) {
  const char *a = analyzed("a", 1, 1);
  json_t *doc = load_summary(a);
  json_object_del(json_object_get(doc, "provenance"), "files");
  save_summary(a, doc);
  refused(a, "summary.json: provenance.files.examples.safetensors", "run analyze again");
}

/* Reordered pairs would put every agreement column under another pair's name. */
Test(run_folder, reordered_pairs_are_refused_by_reader_merge_and_report) {
  const char *a = analyzed("a", 1, 1), *b = analyzed("b", 2, 1);
  json_t *doc = load_summary(b);
  json_t *pairs = json_object_get(
      json_object_get(json_object_get(doc, "provenance"), "options"), "pairs");
  json_t *first = json_incref(json_array_get(pairs, 0));
  json_array_remove(pairs, 0);
  json_array_append_new(pairs, first);
  save_summary(b, doc);
  refused(b, "provenance.options.pairs", "wrong names");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "merge", a, b, "-o", tmp_path("m"), NULL), 0);
  cr_expect_eq(r.exit_code, 2, "%s", r.err);
  cr_expect(strstr(r.err, "provenance.options.pairs"), "%s", r.err);
  cr_expect_eq(cli_count_lines(r.err), 1, "%s", r.err);
  cr_expect_not(dsb_exists(tmp_path("m")));
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "report", b, NULL), 0);
  cr_expect_eq(r.exit_code, 2, "%s", r.err);
  cr_expect(strstr(r.err, "pairs"), "%s", r.err);
  cli_result_free(&r);
}

Test(run_folder, reordered_maps_and_wrong_shapes_are_refused) {
  const char *a = analyzed("a", 1, 1);
  json_t *doc = load_summary(a);
  json_t *maps = json_object_get(
      json_object_get(json_object_get(doc, "provenance"), "options"), "maps");
  json_t *first = json_incref(json_array_get(maps, 0));
  json_array_remove(maps, 0);
  json_array_append_new(maps, first);
  save_summary(a, doc);
  refused(a, "examples.safetensors: tensor", "as ");
  const char *b = analyzed("b", 2, 1);
  doc = load_summary(b);
  json_object_set_new(json_object_get(doc, "dataset"), "heads", json_integer(3));
  save_summary(b, doc);
  refused(b, "tensor head.entropy: expected F32 [3,2,3]", "found");
  const char *c = analyzed("c", 3, 1);
  doc = load_summary(c);
  json_object_set_new(json_object_get(doc, "dataset"), "layers", json_string("2"));
  save_summary(c, doc);
  refused(c, "summary.json: dataset.layers", "not an integer");
}

Test(run_folder, edited_mask_and_lengths_are_refused) {
  const char *a = analyzed("a", 1, 1);
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(ctx, in(a, "examples.safetensors"), &f), AM_STATUS_OK);
  const am_tensor_t *mask = am_file_find(f, "mask");
  size_t off =
      (size_t)((const char *)mask->data - (const char *)am_file_tensor(f, 0)->data);
  am_file_close(f);
  /* mask is the file's first tensor: its first byte sits at the data offset */
  size_t len = 0;
  unsigned char *bytes =
      (unsigned char *)dsb_read_file(in(a, "examples.safetensors"), &len);
  uint64_t header;
  memcpy(&header, bytes, 8);
  bytes[8 + header + off] = 2;
  cr_assert_eq(dsb_write_bytes(in(a, "examples.safetensors"), bytes, len), 0);
  refused(a, "examples.safetensors: CRC-32C", NULL); /* caught first by the checksum */
  rerecord_checksum(a);
  refused(a, "tensor mask: example 0, position 0: 2 is not 0 or 1", NULL);
  bytes[8 + header + off] = 0; /* one token fewer than lengths says */
  cr_assert_eq(dsb_write_bytes(in(a, "examples.safetensors"), bytes, len), 0);
  free(bytes);
  rerecord_checksum(a);
  refused(a, "tensor lengths: example 0", "its mask has");
}

Test(run_folder, missing_or_junk_summary) {
  refused(tmp_path("nowhere"), "nowhere/summary.json: cannot read", NULL);
  const char *a = analyzed("a", 1, 1);
  cr_assert_eq(dsb_write_bytes(in(a, "summary.json"), "{\"dataset\":", 11), 0);
  refused(a, "summary.json: not JSON", NULL);
  cr_assert_eq(dsb_write_bytes(in(a, "summary.json"), "[]", 2), 0);
  refused(a, "not an attnmap summary", NULL);
}

/* `attnmap merge r ./r` and runs of `f` and `./f` without checksums. */
Test(run_folder, merge_refuses_one_folder_or_file_under_two_spellings) {
  const char *a = analyzed("a", 1, 1);
  char dot[700];
  snprintf(dot, sizeof dot, "%s/./", a);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "merge", a, dot, "-o", tmp_path("m"), NULL), 0);
  cr_expect_eq(r.exit_code, 2, "%s", r.err);
  cr_expect(strstr(r.err, "twice"), "%s", r.err);
  cli_result_free(&r);
  char cwd[600];
  cr_assert_not_null(getcwd(cwd, sizeof cwd));
  cr_assert_eq(chdir(dir), 0);
  cr_assert_eq(cli_run(&r, NULL, "analyze", "a.safetensors", "-o", "r1", "-q",
                       "--no-checksum", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "analyze", "./a.safetensors", "-o", "r2", "-q",
                       "--no-checksum", NULL),
               0);
  cr_expect_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "merge", "r1", "r2", "-o", "m2", NULL), 0);
  cr_expect_eq(r.exit_code, 2, "%s", r.err);
  cr_expect(strstr(r.err, "a.safetensors") && strstr(r.err, "twice"), "%s", r.err);
  cli_result_free(&r);
  cr_expect_not(dsb_exists("m2"));
  cr_assert_eq(chdir(cwd), 0);
}

/* Distinct runs still merge, and the merged folder passes the same reader. */
Test(run_folder, merged_run_is_a_valid_run_folder) {
  const char *a = analyzed("a", 1, 1), *b = analyzed("b", 2, 1);
  const char *runs[2] = {a, b};
  am_run_options_t o;
  am_run_options_init(&o);
  cr_assert_eq(am_run_merge(ctx, runs, 2, tmp_path("m"), &o), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_run_t *r = NULL;
  cr_assert_eq(am_run_open(ctx, tmp_path("m"), &r), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_expect_eq(am_file_find(am_run_examples(r), "mask")->shape[0], 6);
  am_run_close(r);
}
