/* test_cli_errors.c — bad input and bad usage through the CLI (docs/design.md §2, §6):
 * every malformed file or dataset, made here under a fresh temp folder, must make
 * `attnmap analyze BAD -o RUN` (and `attnmap inspect BAD`) exit 2 with exactly one line
 * on stderr that names the file, the tensor where one is concerned, and the problem; and
 * no run folder (nor a RUN.tmp-* leftover) may appear. `attnmap merge` likewise. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

static char work[128]; /* this test's temporary folder */
static char paths[8][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "clierr"), 0); }
static void teardown(void) { dsb_rmtree(work); }

TestSuite(cli_errors, .init = setup, .fini = teardown, .timeout = 60);

static const char *P(const char *name) {
  return dsb_join(paths[next_path++ % 8], sizeof paths[0], work, name);
}

/* The one-line contract of docs/design.md §6 for a finished CLI run. */
static void check_failure(const cli_result_t *r, const char *path, const char *tensor,
                          const char *phrase) {
  cr_assert_eq(r->signal, 0, "killed by signal %d; stderr: %s", r->signal, r->err);
  cr_assert(!r->timed_out, "timed out");
  cr_expect_eq(r->exit_code, 2, "exit %d, stderr: %s", r->exit_code, r->err);
  cr_expect_eq(cli_count_lines(r->err), 1, "stderr is not one line: [%s]", r->err);
  cr_expect(r->err_len > 0 && r->err[r->err_len - 1] == '\n', "no newline: [%s]", r->err);
  if (path)
    cr_expect(strstr(r->err, path) != NULL, "no path %s in: %s", path, r->err);
  if (tensor)
    cr_expect(strstr(r->err, tensor) != NULL, "no tensor %s in: %s", tensor, r->err);
  if (phrase)
    cr_expect(strstr(r->err, phrase) != NULL, "no '%s' in: %s", phrase, r->err);
}

static void check_no_run(const char *run) {
  cr_expect(!dsb_exists(run), "%s exists after a failure", run);
  cr_expect_eq(dsb_count_prefixed(run, ".tmp-"), 0, "%s.tmp-* left behind", run);
  /* bad input leaves no partial folder (only I/O failures keep one for --resume) */
  cr_expect_eq(dsb_count_prefixed(run, ".partial"), 0, "%s.partial* left behind", run);
}

/* attnmap analyze INPUT -o RUN [OPT VAL]: fails naming `path`, writes nothing. */
static void analyze_fails_at(const char *input, const char *path, const char *tensor,
                             const char *phrase, const char *opt, const char *val) {
  const char *run = P("run");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", input, "-o", run, opt, val, NULL), 0);
  check_failure(&r, path, tensor, phrase);
  check_no_run(run);
  cli_result_free(&r);
}

static void analyze_fails(const char *input, const char *tensor, const char *phrase) {
  analyze_fails_at(input, input, tensor, phrase, NULL, NULL);
}

static void inspect_fails(const char *input, const char *path, const char *tensor,
                          const char *phrase) {
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "inspect", input, NULL), 0);
  check_failure(&r, path, tensor, phrase);
  cli_result_free(&r);
}

static void both_fail(const char *input, const char *tensor, const char *phrase) {
  analyze_fails(input, tensor, phrase);
  inspect_fails(input, input, tensor, phrase);
}

/* The base dataset: L=2, H=2, B=3, T=6, valid lengths 6, 4, 5 (right padding), F32. */
static const int lengths[3] = {6, 4, 5};
static dsb_spec_t spec(void) {
  return (dsb_spec_t){.L = 2, .H = 2, .B = 3, .T = 6, .lengths = lengths, .seed = 7};
}
static dsb_t *build(dsb_spec_t s) {
  dsb_t *ds = dsb_build(&s);
  cr_assert_not_null(ds);
  return ds;
}
static dsb_t *base(int grads) {
  dsb_spec_t s = spec();
  s.grads = grads;
  return build(s);
}
/* Writes ds (its edited tensor list of n when n > 0) to work/NAME and frees it. */
static const char *save(dsb_t *ds, int n, const char *name) {
  const char *p = P(name);
  cr_assert_eq(n > 0 ? dsb_write_list(p, ds->list, n, NULL, 0) : dsb_write(ds, p), 0);
  dsb_free(ds);
  return p;
}

Test(cli_errors, control_valid_dataset_succeeds) {
  const char *ds = save(base(1), 0, "ok.safetensors"), *run = P("run");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "--quiet", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect(dsb_exists(run));
  cli_result_free(&r);
}

/* ---- the file format ---------------------------------------------------------- */
/* One header entry: "NAME":{"dtype":"DT","shape":[SHAPE],"data_offsets":[B,E]} */
#define E(name, dt, shape, b, e)                                                           \
  "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":[" shape "],\"data_offsets\":[" #b "," #e  \
  "]}"
#define ATT4 E("attentions", "F32", "1,1,1,1,1", 0, 4)

/* A safetensors file with this header and ndata zero bytes of data fails as promised. */
static void header_fails(const char *file, const char *header, size_t ndata,
                         const char *tensor, const char *phrase, int inspect) {
  const char *p = P(file);
  cr_assert_eq(dsb_write_header(p, header, ndata), 0);
  analyze_fails(p, tensor, phrase);
  if (inspect)
    inspect_fails(p, p, tensor, phrase);
}

Test(cli_errors, header_length_truncated) {
  const char *p = P("short.safetensors");
  cr_assert_eq(dsb_write_bytes(p, "\x10\x00\x00\x00\x00", 5), 0);
  both_fail(p, NULL, "truncated");
  cr_assert_eq(dsb_write_bytes(p, "", 0), 0); /* empty */
  both_fail(p, NULL, "truncated");
}

Test(cli_errors, header_length_beyond_file) {
  const char *p = P("beyond.safetensors");
  cr_assert_eq(dsb_write_raw(p, 1000, "{}      ", 8, NULL, 0), 0);
  both_fail(p, NULL, "header length 1000");
}

Test(cli_errors, header_length_over_limit) {
  const char *p = P("huge.safetensors");
  cr_assert_eq(dsb_write_raw(p, 100000001ull, "{}      ", 8, NULL, 0), 0);
  both_fail(p, NULL, "exceeds the limit");
}

Test(cli_errors, truncated_data) {
  const char *p = save(base(0), 0, "cut.safetensors");
  struct stat sb;
  cr_assert_eq(stat(p, &sb), 0);
  cr_assert_eq(truncate(p, sb.st_size - 4), 0);
  /* attention_mask is written last, so its bytes are the ones cut off */
  both_fail(p, "attention_mask", "out of bounds");
}

Test(cli_errors, offsets_out_of_bounds) {
  header_fails("oob.safetensors",
               "{" ATT4 "," E("attention_mask", "I64", "1,1", 4, 400) "}", 12,
               "attention_mask", "out of bounds", 0);
}

Test(cli_errors, overlapping_offsets) {
  header_fails("overlap.safetensors",
               "{" ATT4 "," E("attention_mask", "U8", "1,4", 2, 6) "}", 6, "attention_mask",
               "overlap", 0);
}

Test(cli_errors, unknown_dtype) {
  header_fails("dtype.safetensors", "{" E("attentions", "F31", "1,1,1,1,1", 0, 4) "}", 4,
               "attentions", "unknown dtype", 1);
}

Test(cli_errors, shape_product_overflow) {
  header_fails("overflow.safetensors",
               "{" E("attentions", "F32", "4294967296,4294967296,4,1,1", 0, 4) "}", 4,
               "attentions", "overflow", 0);
}

Test(cli_errors, trailing_bytes) {
  header_fails("trailing.safetensors", "{" ATT4 "}", 12, NULL, "trailing bytes", 0);
}

Test(cli_errors, header_not_utf8) {
  header_fails("utf8.safetensors",
               "{" E("atten\xff\xfetions", "F32", "1,1,1,1,1", 0, 4) "}", 4, NULL, "UTF-8",
               1);
}

Test(cli_errors, header_invalid_json) {
  header_fails("json.safetensors", "{\"attentions\":{\"dtype\":\"F32\",\"shape\":[1,", 0,
               NULL, "not valid JSON", 0);
}

Test(cli_errors, duplicate_tensor_names) {
  header_fails("dup.safetensors",
               "{" ATT4 "," E("attentions", "F32", "1,1,1,1,1", 4, 8) "}", 8, "attentions",
               "duplicate", 1);
}

/* ---- values --------------------------------------------------------------------- */
Test(cli_errors, nan_in_attention) {
  dsb_t *ds = base(0);
  *dsb_att(ds, 1, 1, 0, 2, 1) = NAN;
  const char *p = save(ds, 0, "nan.safetensors");
  analyze_fails(p, "attentions", "not finite");
  inspect_fails(p, p, "example 1", "not finite");
}

Test(cli_errors, nan_in_attention_f16) {
  dsb_spec_t s = spec();
  s.dtype = AM_DTYPE_F16;
  dsb_t *ds = build(s);
  *dsb_att(ds, 0, 2, 1, 4, 0) = NAN;
  analyze_fails(save(ds, 0, "nan16.safetensors"), "attentions", "not finite");
}

Test(cli_errors, negative_attention_weight) {
  dsb_t *ds = base(0);
  float *a = dsb_att(ds, 0, 0, 1, 3, 0); /* row sum kept at 1: only the sign is wrong */
  a[1] += a[2] + 0.25f;
  a[2] = -0.25f;
  both_fail(save(ds, 0, "neg.safetensors"), "attentions", "negative");
}

Test(cli_errors, row_not_summing_to_one) {
  dsb_t *ds = base(0);
  float *a = dsb_att(ds, 1, 2, 0, 0, 0);
  for (int j = 0; j < 5; j++)
    a[j] *= 0.9f;
  both_fail(save(ds, 0, "sum.safetensors"), "attentions", "does not sum to 1");
}

Test(cli_errors, nan_in_attention_grads) {
  dsb_t *ds = base(1);
  *dsb_grad(ds, 1, 0, 1, 5, 5) = NAN;
  both_fail(save(ds, 0, "gnan.safetensors"), "attention_grads", "not finite");
}

Test(cli_errors, non_finite_saliency_and_embedding_grads) {
  dsb_spec_t s = spec();
  s.saliency = 1;
  s.embed_dim = 3;
  dsb_t *ds = build(s);
  ds->sal[2 * 6 + 3] = INFINITY;
  analyze_fails(save(ds, 0, "salinf.safetensors"), "tensor saliency.ig:", "not finite");
  ds = build(s);
  ds->egrad[(1 * 6 + 2) * 3 + 1] = NAN;
  analyze_fails(save(ds, 0, "egrad.safetensors"), "inputs_embeds_grads", "not finite");
}

/* The message names the tensor as the file names it: `saliency`, not the map's name. */
Test(cli_errors, nan_in_bare_saliency) {
  dsb_spec_t s = spec();
  s.saliency = 1;
  dsb_t *ds = build(s);
  ds->sal[1] = NAN;
  int n = dsb_tensors(ds);
  snprintf(ds->names[dsb_find(ds, n, "saliency.ig")], sizeof ds->names[0], "saliency");
  analyze_fails(save(ds, n, "sal.safetensors"), "tensor saliency:", "not finite");
}

/* ---- shapes and roles ----------------------------------------------------------- */
Test(cli_errors, mask_length_differs_from_attention) {
  dsb_t *ds = base(0);
  int n = dsb_tensors(ds);
  int64_t wide[3 * 7];
  for (int i = 0; i < 3 * 7; i++)
    wide[i] = 1;
  am_tensor_t *t = &ds->list[dsb_find(ds, n, "attention_mask")].tensor;
  t->shape[1] = 7;
  t->data = wide;
  t->nbytes = sizeof wide;
  analyze_fails(save(ds, n, "maskT.safetensors"), "attention_mask", "expected shape");
}

Test(cli_errors, mask_value_two) {
  dsb_t *ds = base(0);
  ds->mask[1 * 6 + 2] = 2;
  both_fail(save(ds, 0, "mask2.safetensors"), "attention_mask", "not 0 or 1");
}

Test(cli_errors, layers_with_different_heads) {
  dsb_spec_t s = spec();
  s.per_layer = 1;
  dsb_t *a = build(s);
  s.H = 3;
  dsb_t *b = build(s);
  int n = dsb_tensors(a), nb = dsb_tensors(b);
  a->list[dsb_find(a, n, "attentions.1")].tensor =
      b->list[dsb_find(b, nb, "attentions.1")].tensor;
  const char *p = save(a, n, "heads.safetensors");
  dsb_free(b);
  analyze_fails(p, "attentions.1", "differs from layer 0");
}

Test(cli_errors, missing_attentions) {
  dsb_t *ds = base(1);
  int n = dsb_tensors(ds);
  n = dsb_remove(ds, n, dsb_find(ds, n, "attentions"));
  both_fail(save(ds, n, "noatt.safetensors"), "attentions", "not found");
}

Test(cli_errors, gap_in_layer_numbering) {
  dsb_spec_t s = spec();
  s.L = 3;
  s.per_layer = 1;
  dsb_t *ds = build(s);
  int n = dsb_tensors(ds);
  n = dsb_remove(ds, n, dsb_find(ds, n, "attentions.1"));
  analyze_fails(save(ds, n, "gap.safetensors"), "attentions", "without gaps");
}

/* attentions.01 and attentions.1 both parse as layer 1: two tensors, "0..1", no layer 0. */
Test(cli_errors, two_names_for_one_layer) {
  dsb_spec_t s = spec();
  s.per_layer = 1;
  dsb_t *ds = build(s);
  int n = dsb_tensors(ds);
  snprintf(ds->names[dsb_find(ds, n, "attentions.0")], sizeof ds->names[0],
           "attentions.01");
  both_fail(save(ds, n, "layer01.safetensors"), "attentions", NULL);
}

Test(cli_errors, zero_heads) {
  dsb_t *ds = base(0);
  int n = dsb_tensors(ds);
  am_tensor_t *t = &ds->list[dsb_find(ds, n, "attentions")].tensor;
  t->shape[2] = 0;
  t->nbytes = 0;
  both_fail(save(ds, n, "h0.safetensors"), "tensor attentions", NULL);
}

Test(cli_errors, grads_shape_differs_from_attentions) {
  dsb_t *a = base(1);
  dsb_spec_t s = a->spec;
  s.H = 3;
  dsb_t *b = build(s);
  int n = dsb_tensors(a), nb = dsb_tensors(b);
  a->list[dsb_find(a, n, "attention_grads")].tensor =
      b->list[dsb_find(b, nb, "attention_grads")].tensor;
  const char *p = save(a, n, "gshape.safetensors");
  dsb_free(b);
  both_fail(p, "attention_grads", "do not match");
}

Test(cli_errors, embeds_without_their_grads) {
  dsb_spec_t s = spec();
  s.embed_dim = 4;
  dsb_t *ds = build(s);
  int n = dsb_tensors(ds);
  n = dsb_remove(ds, n, dsb_find(ds, n, "inputs_embeds_grads"));
  both_fail(save(ds, n, "emb.safetensors"), "inputs_embeds", "without");
}

/* A directory of two shards, work/NAME/{a,b}.safetensors; fault in b's example 1: 1 NaN
 * attention, 2 mask value 3, 3 fewer layers. Returns b's path in bpath. */
static const char *shards(const char *name, int fault, char *bpath, size_t len) {
  static const int full[3] = {6, 6, 6};
  const char *dir = P(name);
  char a[600];
  cr_assert_eq(mkdir(dir, 0777), 0);
  dsb_spec_t s = spec();
  s.lengths = full;
  cr_assert_eq(dsb_make(&s, dsb_join(a, sizeof a, dir, "a.safetensors")), 0);
  s = spec();
  s.first = 3;
  s.L = fault == 3 ? 3 : 2;
  dsb_t *ds = build(s);
  if (fault == 1)
    *dsb_att(ds, 1, 1, 0, 3, 2) = NAN;
  if (fault == 2)
    ds->mask[1 * 6 + 5] = 3;
  cr_assert_eq(dsb_write(ds, dsb_join(bpath, len, dir, "b.safetensors")), 0);
  dsb_free(ds);
  return dir;
}

Test(cli_errors, shards_with_different_layers) {
  char b[600];
  const char *dir = shards("shards", 3, b, sizeof b);
  analyze_fails_at(dir, b, "attentions", "layers", NULL, NULL);
  inspect_fails(dir, b, "attentions", "layers");
}

/* Every per-example message counts examples the same way: the same row of the second
 * shard is "example K" whether its mask, its attention or the --target is at fault. */
static long example_in(const char *dir, const char *b, const char *target) {
  const char *run = P("run");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", dir, "-o", run, target ? "--target" : NULL,
                       target, NULL),
               0);
  check_failure(&r, b, NULL, "example ");
  check_no_run(run);
  const char *at = strstr(r.err, "example ");
  long k = at ? strtol(at + 8, NULL, 10) : -1;
  cli_result_free(&r);
  return k;
}

Test(cli_errors, example_numbers_agree_across_checks) {
  char b1[600], b2[600], b3[600];
  long nan = example_in(shards("nan", 1, b1, sizeof b1), b1, NULL);
  long mask = example_in(shards("mask", 2, b2, sizeof b2), b2, NULL);
  long target = example_in(shards("target", 0, b3, sizeof b3), b3, "4");
  cr_expect_eq(nan, mask, "attention check says example %ld, mask check %ld", nan, mask);
  cr_expect_eq(target, nan, "--target check says example %ld, attention check %ld", target,
               nan);
}

/* ---- options against the data --------------------------------------------------- */
Test(cli_errors, target_index_beyond_a_short_example) {
  /* example 1 has 4 valid tokens: index 4 exists in examples 0 and 2 but not there */
  const char *p = save(base(1), 0, "target.safetensors");
  analyze_fails_at(p, p, "attention_mask", "out of range", "--target", "4");
  analyze_fails_at(p, p, "example 1", "--target 4", "--target", "4");
}

/* ---- usage ----------------------------------------------------------------------- */
/* attnmap ARGS... fails as bad usage (and writes no work/run). */
static void usage_fails(const char *tensor, const char *phrase, const char *const *args) {
  cli_result_t r;
  cr_assert_eq(cli_runv(&r, NULL, args), 0);
  check_failure(&r, NULL, tensor, phrase);
  check_no_run(P("run"));
  cli_result_free(&r);
}

Test(cli_errors, bad_usage) {
  const char *p = save(base(0), 0, "ok.safetensors"), *run = P("run");
  usage_fails("--bogus", "unknown option",
              (const char *[]){"analyze", p, "-o", run, "--bogus", NULL});
  usage_fails(NULL, "-o RUN is required", (const char *[]){"analyze", p, NULL});
  usage_fails("--discard", "[0,1)",
              (const char *[]){"analyze", p, "-o", run, "--discard", "1.5", NULL});
  usage_fails(NULL, "unknown command", (const char *[]){"analyse", p, NULL});
  usage_fails(NULL, "no PATH", (const char *[]){"inspect", NULL});
  usage_fails(NULL, "no RUN", (const char *[]){"merge", "-o", run, NULL});
}

Test(cli_errors, missing_dataset_path) {
  both_fail(P("does-not-exist.safetensors"), NULL, "no such file");
}

Test(cli_errors, existing_output_without_force) {
  const char *p = save(base(0), 0, "ok.safetensors"), *run = P("run");
  char keep[600], made[600];
  cr_assert_eq(mkdir(run, 0777), 0);
  cr_assert_eq(dsb_write_bytes(dsb_join(keep, sizeof keep, run, "keep.txt"), "old run", 7),
               0);
  dsb_join(made, sizeof made, run, "examples.safetensors");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", p, "-o", run, NULL), 0);
  check_failure(&r, run, NULL, "already exists");
  cli_result_free(&r);
  size_t len = 0;
  char *text = dsb_read_file(keep, &len);
  cr_expect(text && len == 7 && memcmp(text, "old run", 7) == 0, "the old run was changed");
  free(text);
  cr_expect(!dsb_exists(made));
  cr_expect_eq(dsb_count_prefixed(run, ".tmp-"), 0);
  /* --force does not replace a folder attnmap did not write */
  cr_assert_eq(cli_run(&r, NULL, "analyze", p, "-o", run, "--force", "-q", NULL), 0);
  check_failure(&r, run, NULL, "not a run folder attnmap wrote");
  cli_result_free(&r);
  cr_expect(dsb_exists(keep) && !dsb_exists(made));
  /* it replaces a run folder attnmap wrote */
  cr_assert_eq(unlink(keep), 0);
  cr_assert_eq(rmdir(run), 0);
  cr_assert_eq(cli_run(&r, NULL, "analyze", p, "-o", run, "-q", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, NULL, "analyze", p, "-o", run, "--force", "-q", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect(dsb_exists(made));
  cr_expect_eq(dsb_count_prefixed(run, ".tmp-"), 0);
  cli_result_free(&r);
}

/* ---- merge ------------------------------------------------------------------------ */
static const char *analyzed(const char *name, int H, int T) {
  dsb_spec_t s = spec();
  s.H = H;
  s.T = T;
  s.grads = 1;
  char file[64];
  snprintf(file, sizeof file, "%s.safetensors", name);
  const char *p = P(file), *run = P(name);
  cr_assert_eq(dsb_make(&s, p), 0);
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", p, "-o", run, "-q", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  return run;
}

/* attnmap merge A B -o OUT fails naming `path`, never the temporary output. */
static void merge_fails(const char *a, const char *b, const char *path,
                        const char *phrase) {
  const char *out = P("merged");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "merge", a, b, "-o", out, NULL), 0);
  check_failure(&r, path, NULL, phrase);
  cr_expect(strstr(r.err, ".tmp-") == NULL, "names the temporary output: %s", r.err);
  check_no_run(out);
  cli_result_free(&r);
}

/* Runs of models with different heads cannot be concatenated, in either order; a run
 * that is not there cannot be read. */
Test(cli_errors, merge_of_runs_with_different_heads_or_missing) {
  char a[512], b[512];
  snprintf(a, sizeof a, "%s", analyzed("a", 2, 6));
  snprintf(b, sizeof b, "%s", analyzed("b", 3, 6));
  merge_fails(a, b, b, "heads");
  merge_fails(b, a, a, "heads");
  merge_fails(a, P("missing"), P("missing"), "cannot read");
}

/* A run given twice, or two runs over one file: its examples would be counted twice. */
Test(cli_errors, merge_of_a_run_with_itself_or_of_two_runs_of_one_file) {
  char a[512], again[512];
  snprintf(a, sizeof a, "%s", analyzed("a", 2, 6));
  snprintf(again, sizeof again, "%s", P("again"));
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", P("a.safetensors"), "-o", again, "-q", NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  merge_fails(a, a, a, "twice");
  merge_fails(a, again, again, "a.safetensors");
}

/* An output inside one of the runs (directly, or below a folder not made yet) would add a
 * folder to an input run, which is never modified: refused, nothing written. */
Test(cli_errors, merge_into_one_of_its_runs) {
  char a[512], b[512], inside[600], deeper[600];
  snprintf(a, sizeof a, "%s", analyzed("a", 2, 6));
  snprintf(b, sizeof b, "%s", analyzed("c", 2, 7));
  cli_result_t r;
  snprintf(inside, sizeof inside, "%s/merged", b);
  snprintf(deeper, sizeof deeper, "%s/x/y/merged", a);
  const char *outs[2] = {inside, deeper};
  for (int k = 0; k < 2; k++) {
    cr_assert_eq(cli_run(&r, NULL, "merge", a, b, "-o", outs[k], NULL), 0);
    check_failure(&r, outs[k], NULL, "inside the run folder");
    check_no_run(outs[k]);
    cli_result_free(&r);
  }
  struct stat sa, sb;
  snprintf(inside, sizeof inside, "%s/x", a);
  cr_expect(stat(inside, &sa) != 0, "a folder was made in %s", a);
  snprintf(inside, sizeof inside, "%s/merged", b);
  cr_expect(stat(inside, &sb) != 0, "a folder was made in %s", b);
}

/* A run folder edited by hand: summary.json says 2 tokens, examples.safetensors has 8. */
Test(cli_errors, merge_of_a_run_whose_summary_disagrees_with_its_examples) {
  char a[512], b[512], sj[600];
  snprintf(a, sizeof a, "%s", analyzed("a", 2, 6));
  snprintf(b, sizeof b, "%s", analyzed("b", 2, 8));
  json_t *doc = json_load_file(dsb_join(sj, sizeof sj, b, "summary.json"), 0, NULL);
  cr_assert_not_null(doc);
  json_object_set_new(json_object_get(doc, "dataset"), "max_tokens", json_integer(2));
  cr_assert_eq(json_dump_file(doc, sj, JSON_INDENT(1)), 0);
  json_decref(doc);
  merge_fails(a, b, b, NULL);
}
