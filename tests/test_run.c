/* test_run.c — the run folder end to end through the public API (docs/design.md §4): the
 * tensors
 * and metadata of examples.safetensors and the provenance of summary.json; results that do
 * not depend on padding side and amount, chunk size, thread count, or on running shards
 * separately and merging; padding and fully masked examples; and what the CLI prints. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support/dataset_builder.h"
#include "support/run_cli.h"

static char work[128]; /* this test's temporary folder */
static char paths[16][512];
static int next_path;

static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "run"), 0); }
static void teardown(void) { dsb_rmtree(work); }

TestSuite(run, .init = setup, .fini = teardown, .timeout = 120);

static const char *P(const char *name) {
  char *p = paths[next_path++ % 16];
  return dsb_join(p, sizeof paths[0], work, name);
}

static const char *stat_names[] = {"entropy",  "entropy_norm", "confidence",
                                   "to_first", "to_last",      "to_self",
                                   "to_prev",  "to_next",      "distance"};
static const char *metric_names[] = {"spearman",         "kendall",   "pearson",
                                     "cosine",           "jaccard@5", "feature_agreement@5",
                                     "rank_agreement@5", "jsd",       "tvd"};
/* clang-format off */
static const char *map_names[] = {"attention_last", "rollout", "grad_rollout", "saliency.ig",
    "saliency.grad_l2", "saliency.grad_x_input", "saliency.abs_grad_x_input"};
/* clang-format on */
#define NMAPS 7
#define NPAIRS (NMAPS * (NMAPS - 1) / 2)

/* ---- helpers ------------------------------------------------------------------------ */
static am_ctx_t *make_ctx(int threads) {
  am_ctx_options_t o = {.backend = "cpu", .threads = threads};
  am_ctx_t *ctx = NULL;
  char err[512] = "";
  cr_assert_eq(am_ctx_create(&o, &ctx, err, sizeof err), AM_STATUS_OK, "%s", err);
  return ctx;
}

/* Analyses the dataset at paths into run with the plan's chunk and the thread count. */
static void analyze(const char *const *inputs, int n, const char *run, int64_t chunk,
                    int threads) {
  am_ctx_t *ctx = make_ctx(threads);
  am_dataset_t *ds = NULL;
  am_status st = am_dataset_open(ctx, inputs, n, &ds);
  cr_assert_eq(st, AM_STATUS_OK, "open: %s", am_last_error(ctx));
  am_plan_t plan;
  am_plan_init(&plan);
  plan.chunk = chunk;
  am_run_options_t opts;
  am_run_options_init(&opts);
  st = am_run_analyze(ctx, ds, &plan, run, &opts);
  cr_assert_eq(st, AM_STATUS_OK, "analyze: %s", am_last_error(ctx));
  am_dataset_close(ds);
  am_ctx_destroy(ctx);
}

static void analyze1(const char *input, const char *run) { analyze(&input, 1, run, 0, 0); }

static am_file_t *open_examples(am_ctx_t *ctx, const char *run) {
  char path[600];
  am_file_t *f = NULL;
  cr_assert_eq(
      am_file_open(ctx, dsb_join(path, sizeof path, run, "examples.safetensors"), &f),
      AM_STATUS_OK, "%s", am_last_error(ctx));
  return f;
}

static json_t *load_summary(const char *run) {
  char path[600];
  json_error_t err;
  json_t *doc = json_load_file(dsb_join(path, sizeof path, run, "summary.json"), 0, &err);
  cr_assert_not_null(doc, "summary.json: %s", err.text);
  return doc;
}

static char *read_in(const char *run, const char *name, size_t *len) {
  char path[600];
  char *text = dsb_read_file(dsb_join(path, sizeof path, run, name), len);
  cr_assert_not_null(text, "%s", path);
  return text;
}

static const am_tensor_t *need(const am_file_t *f, const char *name, am_dtype dtype,
                               int ndim, int64_t d0, int64_t d1, int64_t d2) {
  const am_tensor_t *t = am_file_find(f, name);
  cr_assert_not_null(t, "tensor %s missing", name);
  cr_expect_eq(t->dtype, dtype, "%s: dtype %s", name, am_dtype_name(t->dtype));
  cr_assert_eq(t->ndim, ndim, "%s: ndim %d", name, t->ndim);
  int64_t want[3] = {d0, d1, d2};
  for (int d = 0; d < ndim; d++)
    cr_assert_eq(t->shape[d], want[d], "%s: shape[%d] = %lld", name, d,
                 (long long)t->shape[d]);
  return t;
}

/* Element i of an F32, I32 or U8 tensor (the data need not be aligned). */
static double at(const am_tensor_t *t, size_t i) {
  const unsigned char *p = (const unsigned char *)t->data + i * am_dtype_size(t->dtype);
  float f;
  int32_t n;
  if (t->dtype == AM_DTYPE_U8)
    return *p;
  memcpy(t->dtype == AM_DTYPE_F32 ? (void *)&f : (void *)&n, p, 4);
  return t->dtype == AM_DTYPE_F32 ? f : n;
}
#define f32(t, i) ((float)at(t, i))
#define i32(t, i) ((int32_t)at(t, i))
#define u8(t, i) ((int)at(t, i))

/* Equal, both NaN, or within 1e-6 (relative above 1). */
static int close6(float a, float b) {
  if (isnan(a) || isnan(b))
    return isnan(a) && isnan(b);
  double scale = fmax(1.0, fmax(fabs(a), fabs(b)));
  return fabs((double)a - (double)b) <= 1e-6 * scale;
}

/* ---- (a) the run folder -------------------------------------------------------------- */
static const int lens_a[5] = {8, 5, 3, 8, 2};
static dsb_spec_t full_spec(int B, int T, const int *lengths) {
  dsb_spec_t s = {.L = 2, .H = 3, .B = B, .T = T, .lengths = lengths, .seed = 11};
  s.grads = s.saliency = s.labels = s.special = 1;
  s.embed_dim = 3;
  return s;
}

/* CRC-32C of the file at path bit by bit (polynomial 0x82F63B78, reflected), independent
 * of the library, as 8 hex digits; *len: the file's size. */
static void bitwise_crc(const char *path, char want[16], size_t *len) {
  char *data = dsb_read_file(path, len);
  cr_assert_not_null(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < *len; i++) {
    c ^= (unsigned char)data[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  snprintf(want, 16, "%08x", ~c);
  free(data);
}

Test(run, folder_has_every_tensor_and_the_provenance) {
  dsb_spec_t s = full_spec(5, 8, lens_a);
  const char *ds = P("ds.safetensors"), *run = P("run");
  cr_assert_eq(dsb_make(&s, ds), 0);
  analyze1(ds, run);
  am_ctx_t *ctx = make_ctx(1);
  am_file_t *f = open_examples(ctx, run);
  need(f, "mask", AM_DTYPE_U8, 2, 5, 8, 0);
  need(f, "lengths", AM_DTYPE_I32, 1, 5, 0, 0);
  for (int m = 0; m < NMAPS; m++)
    need(f, map_names[m], AM_DTYPE_F32, 2, 5, 8, 0);
  char name[96];
  for (int k = 0; k < 9; k++) {
    snprintf(name, sizeof name, "head.%s", stat_names[k]);
    need(f, name, AM_DTYPE_F32, 3, 5, 2, 3);
    snprintf(name, sizeof name, "agreement.%s", metric_names[k]);
    need(f, name, AM_DTYPE_F32, 2, 5, NPAIRS, 0);
  }
  need(f, "head.importance", AM_DTYPE_F32, 3, 5, 2, 3);
  /* every pair of maps, in map order */
  const char *pairs_text = am_file_metadata(f, "attnmap.pairs");
  json_t *pairs = pairs_text ? json_loads(pairs_text, 0, NULL) : NULL;
  cr_assert(json_array_size(pairs) == NPAIRS, "attnmap.pairs: %s", pairs_text);
  for (int x = 0, k = 0; x < NMAPS; x++)
    for (int y = x + 1; y < NMAPS; y++, k++) {
      const char *got = json_string_value(json_array_get(pairs, (size_t)k));
      snprintf(name, sizeof name, "%s~%s", map_names[x], map_names[y]);
      cr_expect(got && !strcmp(got, name), "pair %d: %s, not %s", k, got, name);
    }
  json_decref(pairs);
  am_file_close(f);
  am_ctx_destroy(ctx);

  json_t *doc = load_summary(run), *options = NULL;
  const char *version = "", *backend = "", *path = "", *crc = "";
  json_int_t bytes = 0;
  double total = -1;
  json_t *prov = json_object_get(doc, "provenance");
  cr_assert_eq(json_unpack(prov, "{s:s,s:s,s:o,s:{s:F},s:[{s:s,s:I,s:s}]}", "version",
                           &version, "backend", &backend, "options", &options, "timings",
                           "total_s", &total, "inputs", "path", &path, "bytes", &bytes,
                           "crc32c", &crc),
               0, "provenance lacks a field");
  cr_expect_str_eq(version, am_version());
  cr_expect_str_eq(backend, "cpu");
  cr_expect(json_is_object(options) && total >= 0);
  cr_expect_eq(json_array_size(json_object_get(prov, "inputs")), 1);
  size_t len = 0;
  char want[16];
  bitwise_crc(ds, want, &len);
  cr_expect_str_eq(path, ds);
  cr_expect_eq(bytes, (json_int_t)len);
  cr_expect_str_eq(crc, want);
  json_decref(doc);
}

/* ---- (e) masks, lengths and padding ------------------------------------------ */
/* Padded positions hold 0 in every map, lengths are the mask sums, and the mask is the
 * input's attention_mask (0 beyond the input's T). */
static void check_masking(const char *run, const dsb_t *in) {
  am_ctx_t *ctx = make_ctx(1);
  am_file_t *f = open_examples(ctx, run);
  const am_tensor_t *mask = am_file_find(f, "mask"), *lengths = am_file_find(f, "lengths");
  cr_assert(mask && lengths);
  int64_t N = mask->shape[0], T = mask->shape[1];
  for (int64_t b = 0; b < N; b++) {
    int sum = 0;
    for (int64_t p = 0; p < T; p++) {
      int want = p < in->spec.T ? (int)in->mask[b * in->spec.T + p] : 0;
      cr_expect_eq(u8(mask, (size_t)(b * T + p)), want, "mask[%lld,%lld]", (long long)b,
                   (long long)p);
      sum += u8(mask, (size_t)(b * T + p));
    }
    cr_expect_eq(i32(lengths, (size_t)b), sum, "lengths[%lld]", (long long)b);
    cr_expect_eq(sum, in->len[b]);
  }
  for (int i = 0; i < am_file_tensor_count(f); i++) {
    const am_tensor_t *t = am_file_tensor(f, i);
    const char *name = am_file_tensor_name(f, i);
    if (t->dtype != AM_DTYPE_F32 || t->ndim != 2 || t->shape[1] != T ||
        !strncmp(name, "agreement.", 10))
      continue;
    for (int64_t k = 0; k < N * T; k++)
      if (!u8(mask, (size_t)k))
        cr_expect_eq(f32(t, (size_t)k), 0.0f, "%s[%lld] is padding", name, (long long)k);
  }
  am_file_close(f);
  am_ctx_destroy(ctx);
}

Test(run, padded_positions_are_zero_and_lengths_match_the_mask) {
  dsb_spec_t s = full_spec(5, 8, lens_a);
  const char *zero = P("z.safetensors"), *nan = P("n.safetensors"),
             *left = P("l.safetensors");
  cr_assert_eq(dsb_make(&s, zero), 0);
  s.pad_junk = 2; /* NaN in every padded cell */
  dsb_t *n = dsb_build(&s);
  s.pad_junk = 1;
  s.left_pad = 1;
  dsb_t *l = dsb_build(&s);
  cr_assert(n && l);
  cr_assert_eq(dsb_write(n, nan), 0);
  cr_assert_eq(dsb_write(l, left), 0);
  analyze1(zero, P("run-z"));
  analyze1(nan, P("run-n"));
  analyze1(left, P("run-l"));
  check_masking(P("run-n"), n);
  check_masking(P("run-l"), l);
  size_t lz = 0, ln = 0; /* what padding holds does not matter, not even NaN */
  char *bz = read_in(P("run-z"), "examples.safetensors", &lz);
  char *bn = read_in(P("run-n"), "examples.safetensors", &ln);
  cr_expect(lz == ln && memcmp(bz, bn, lz) == 0,
            "NaN padding changed examples.safetensors");
  free(bz);
  free(bn);
  dsb_free(n);
  dsb_free(l);
}

/* ---- (b) padding invariance --------------------------------------------------------- */
Test(run, results_do_not_depend_on_padding_side_or_amount) {
  static const int lens[6] = {10, 7, 4, 1, 6, 9};
  dsb_spec_t s = full_spec(6, 10, lens);
  const char *right = P("right.safetensors"), *left = P("left.safetensors");
  cr_assert_eq(dsb_make(&s, right), 0);
  s.T = 13; /* more padding, on the other side, and junk in it */
  s.left_pad = 1;
  s.pad_junk = 1;
  cr_assert_eq(dsb_make(&s, left), 0);
  const char *rr = P("run-right"), *rl = P("run-left");
  analyze1(right, rr);
  analyze1(left, rl);
  am_ctx_t *ctx = make_ctx(1);
  am_file_t *a = open_examples(ctx, rr), *b = open_examples(ctx, rl);
  cr_assert_eq(am_file_tensor_count(a), am_file_tensor_count(b));
  const am_tensor_t *ma = am_file_find(a, "mask"), *mb = am_file_find(b, "mask");
  cr_assert(ma && mb && ma->shape[1] == 10 && mb->shape[1] == 13);
  int compared = 0;
  for (int i = 0; i < am_file_tensor_count(a); i++) {
    const char *name = am_file_tensor_name(a, i);
    const am_tensor_t *ta = am_file_tensor(a, i), *tb = am_file_find(b, name);
    cr_assert_not_null(tb, "%s missing in the left-padded run", name);
    if (ta->dtype != AM_DTYPE_F32)
      continue;
    if (ta->ndim == 2 && ta->shape[1] == 10 && strncmp(name, "agreement.", 10) != 0) {
      for (int e = 0; e < 6; e++) { /* valid positions, in order */
        int pa = 0, pb = 0;
        for (int k = 0; k < lens[e]; k++, pa++, pb++) {
          while (!u8(ma, (size_t)(e * 10 + pa)))
            pa++;
          while (!u8(mb, (size_t)(e * 13 + pb)))
            pb++;
          float x = f32(ta, (size_t)(e * 10 + pa)), y = f32(tb, (size_t)(e * 13 + pb));
          cr_expect(close6(x, y), "%s example %d token %d: %.9g vs %.9g", name, e, k, x, y);
        }
      }
    } else {
      cr_assert_eq(ta->nbytes, tb->nbytes, "%s", name);
      for (size_t k = 0; k < ta->nbytes / 4; k++)
        cr_expect(close6(f32(ta, k), f32(tb, k)), "%s[%zu]: %.9g vs %.9g", name, k,
                  f32(ta, k), f32(tb, k));
    }
    compared++;
  }
  cr_expect_eq(compared, NMAPS + 10 + 9, "maps, head tensors and agreement compared");
  am_file_close(a);
  am_file_close(b);
  am_ctx_destroy(ctx);
}

/* ---- (c) chunk size and threads ---------------------------------------------------- */
static const int lens_sa[7] = {9, 4, 7, 1, 9, 6, 3}, lens_sb[5] = {12, 2, 8, 11, 5};

/* shards/a.safetensors (7 examples, T=9) and shards/b.safetensors (5, T=12, left pad). */
static const char *make_shards(char *a, char *b, size_t len) {
  const char *shards = P("shards");
  cr_assert_eq(mkdir(shards, 0777), 0);
  dsb_spec_t s = full_spec(7, 9, lens_sa);
  cr_assert_eq(dsb_make(&s, dsb_join(a, len, shards, "a.safetensors")), 0);
  s = full_spec(5, 12, lens_sb);
  s.first = 7;
  s.left_pad = 1;
  cr_assert_eq(dsb_make(&s, dsb_join(b, len, shards, "b.safetensors")), 0);
  return shards;
}

static json_t *summary_without_provenance(const char *run) {
  json_t *doc = load_summary(run);
  json_object_del(doc, "provenance");
  return doc;
}

Test(run, results_do_not_depend_on_chunk_size_or_threads) {
  char a[600], b[600];
  const char *shards = make_shards(a, b, sizeof a);
  const char *base = P("run-base");
  analyze(&shards, 1, base, 0, 1);
  size_t base_len = 0;
  char *base_bytes = read_in(base, "examples.safetensors", &base_len);
  json_t *base_doc = summary_without_provenance(base);
  static const int64_t chunks[] = {1, 3, 0, 1, 3, 5};
  static const int threads[] = {1, 1, 2, 2, 2, 2};
  for (int c = 0; c < 6; c++) {
    char name[32];
    const char *run = P((snprintf(name, sizeof name, "run-%d", c), name));
    analyze(&shards, 1, run, chunks[c], threads[c]);
    size_t len = 0;
    char *bytes = read_in(run, "examples.safetensors", &len);
    cr_expect(len == base_len && memcmp(bytes, base_bytes, len) == 0,
              "--chunk %lld --threads %d: examples.safetensors differs",
              (long long)chunks[c], threads[c]);
    free(bytes);
    json_t *doc = summary_without_provenance(run);
    cr_expect(json_equal(doc, base_doc), "--chunk %lld --threads %d: summary.json differs",
              (long long)chunks[c], threads[c]);
    json_decref(doc);
    /* the checksums come from the chunks' pages, pieces combined: still the whole file's */
    json_t *whole = load_summary(run);
    json_t *inputs = json_object_get(json_object_get(whole, "provenance"), "inputs");
    cr_assert_eq(json_array_size(inputs), 2);
    for (size_t k = 0; k < 2; k++) {
      char want[16];
      size_t len = 0;
      bitwise_crc(k ? b : a, want, &len);
      const char *got =
          json_string_value(json_object_get(json_array_get(inputs, k), "crc32c"));
      cr_expect(got && !strcmp(got, want),
                "--chunk %lld --threads %d: %s crc32c %s, not %s", (long long)chunks[c],
                threads[c], k ? b : a, got, want);
    }
    json_decref(whole);
  }
  free(base_bytes);
  json_decref(base_doc);
}

/* ---- (d) merge ---------------------------------------------------------------- */
/* Numbers within `rel` relative, all else equal; where: the path to the first difference */
static int json_close(const json_t *x, const json_t *y, double rel, char *where,
                      size_t len) {
  char in[512] = "";
  if (json_is_number(x) && json_is_number(y)) {
    double a = json_number_value(x), b = json_number_value(y);
    snprintf(where, len, ": %.17g vs %.17g", a, b);
    return a == b || fabs(a - b) <= rel * fmax(fabs(a), fabs(b));
  }
  int objects = json_is_object(x) && json_is_object(y);
  int arrays = json_is_array(x) && json_is_array(y);
  size_t n = objects ? json_object_size(x) : json_array_size(x);
  if (!(objects || arrays) || n != (objects ? json_object_size(y) : json_array_size(y))) {
    snprintf(where, len, ": differs");
    return json_equal(x, y);
  }
  void *it = objects ? json_object_iter((json_t *)x) : NULL;
  for (size_t i = 0; i < n; i++) {
    const char *key = objects ? json_object_iter_key(it) : NULL;
    const json_t *u = objects ? json_object_iter_value(it) : json_array_get(x, i);
    const json_t *v = objects ? json_object_get(y, key) : json_array_get(y, i);
    if (!json_close(u, v, rel, in, sizeof in)) {
      if (objects)
        snprintf(where, len, "/%s%s", key, in);
      else
        snprintf(where, len, "[%zu]%s", i, in);
      return 0;
    }
    it = objects ? json_object_iter_next((json_t *)x, it) : NULL;
  }
  return 1;
}

Test(run, merging_shard_runs_equals_one_run_over_both) {
  char a[600], b[600];
  const char *shards = make_shards(a, b, sizeof a);
  const char *all = P("run-all"), *ra = P("run-a"), *rb = P("run-b"), *merged = P("merged");
  analyze(&shards, 1, all, 0, 0);
  analyze1(a, ra);
  analyze1(b, rb);
  am_ctx_t *ctx = make_ctx(1);
  const char *runs[2] = {ra, rb};
  am_run_options_t opts;
  am_run_options_init(&opts);
  cr_assert_eq(am_run_merge(ctx, runs, 2, merged, &opts), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_file_t *x = open_examples(ctx, all), *y = open_examples(ctx, merged);
  cr_assert_eq(am_file_tensor_count(x), am_file_tensor_count(y));
  for (int i = 0; i < am_file_tensor_count(x); i++) {
    const char *name = am_file_tensor_name(x, i);
    const am_tensor_t *tx = am_file_tensor(x, i), *ty = am_file_find(y, name);
    cr_assert_not_null(ty, "%s missing after merge", name);
    cr_expect(tx->dtype == ty->dtype && tx->ndim == ty->ndim && tx->nbytes == ty->nbytes &&
                  memcmp(tx->data, ty->data, tx->nbytes) == 0,
              "%s differs after merge", name);
  }
  cr_expect_str_eq(am_file_metadata(y, "attnmap.pairs"),
                   am_file_metadata(x, "attnmap.pairs"));
  am_file_close(x);
  am_file_close(y);
  am_ctx_destroy(ctx);
  /* A merge recomputes the aggregates from the stored rows in input order, the same
   * additions in the same order as one run: the summaries are equal bit for bit. */
  json_t *one = summary_without_provenance(all), *two = summary_without_provenance(merged);
  char where[1024] = "";
  cr_expect(json_close(one, two, 0.0, where, sizeof where), "summary differs at %s", where);
  cr_expect(json_equal(one, two), "summaries are not identical");
  json_decref(one);
  json_decref(two);
}

/* ---- (f) a fully masked example ----------------------------------------------------- */
Test(run, fully_masked_example_gives_zeros_and_nan_agreement) {
  static const int lens[3] = {5, 0, 3};
  dsb_spec_t s = {.L = 2, .H = 2, .B = 3, .T = 6, .lengths = lens, .seed = 5};
  s.grads = s.saliency = s.pad_junk = 1;
  s.embed_dim = 2;
  const char *ds = P("masked.safetensors"), *run = P("run");
  cr_assert_eq(dsb_make(&s, ds), 0);
  analyze1(ds, run);
  am_ctx_t *ctx = make_ctx(1);
  am_file_t *f = open_examples(ctx, run);
  const am_tensor_t *lengths = am_file_find(f, "lengths"), *mask = am_file_find(f, "mask");
  cr_assert(lengths && mask);
  cr_expect_eq(i32(lengths, 1), 0);
  int agreements = 0, finite0 = 0;
  for (int i = 0; i < am_file_tensor_count(f); i++) {
    const am_tensor_t *t = am_file_tensor(f, i);
    const char *name = am_file_tensor_name(f, i);
    if (!strcmp(name, "mask"))
      for (int p = 0; p < 6; p++)
        cr_expect_eq(u8(t, 6 + (size_t)p), 0);
    if (!strncmp(name, "agreement.", 10)) {
      int64_t P_ = t->shape[1];
      for (int64_t p = 0; p < P_; p++) {
        cr_expect(isnan(f32(t, (size_t)(P_ + p))), "%s[1,%lld] = %g, not NaN", name,
                  (long long)p, f32(t, (size_t)(P_ + p)));
        finite0 += isfinite(f32(t, (size_t)p));
      }
      agreements++;
    } else if (t->dtype == AM_DTYPE_F32 && t->ndim == 2 && t->shape[1] == 6) {
      for (int p = 0; p < 6; p++)
        cr_expect_eq(f32(t, 6 + (size_t)p), 0.0f, "%s[1,%d]", name, p);
    }
  }
  cr_expect_eq(agreements, 9);
  cr_expect_gt(finite0, 0, "example 0 has defined agreement values");
  am_file_close(f);
  am_ctx_destroy(ctx);
  json_decref(load_summary(run));
}

/* ---- (g) what the CLI prints -------------------------------------------------------- */
static const char *small_dataset(const char *name, uint64_t seed) {
  static const int lens[4] = {6, 3, 5, 6};
  dsb_spec_t s = {
      .L = 2, .H = 2, .B = 4, .T = 6, .lengths = lens, .grads = 1, .seed = seed};
  const char *ds = P(name);
  cr_assert_eq(dsb_make(&s, ds), 0);
  return ds;
}

/* Into a pipe: no progress line, and nothing at all with --quiet. On a terminal (a
 * pseudo-terminal, where one can be opened): progress, and still nothing with --quiet. */
Test(run, cli_prints_progress_only_on_a_terminal_and_nothing_with_quiet) {
  const char *ds = small_dataset("small.safetensors", 3), *run = P("run"),
             *quiet = P("run-quiet");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds, "-o", run, "--chunk", "1", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect_eq(r.out_len, 0, "stdout: %s", r.out);
  cr_expect(strchr(r.err, '\r') == NULL && strstr(r.err, "examples/s") == NULL,
            "progress in a pipe: %s", r.err);
  cr_expect_leq(cli_count_lines(r.err), 1, "stderr: %s", r.err);
  cli_result_free(&r);
  /* another shard: runs over the same file cannot be merged */
  const char *ds2 = small_dataset("small2.safetensors", 4);
  cr_assert_eq(cli_run(&r, NULL, "analyze", ds2, "-o", quiet, "--quiet", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect_eq(r.out_len + r.err_len, 0, "--quiet printed: [%s] [%s]", r.out, r.err);
  cli_result_free(&r);
  const char *merged = P("merged");
  cr_assert_eq(cli_run(&r, NULL, "merge", run, quiet, "-o", merged, "--quiet", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect_eq(r.out_len + r.err_len, 0, "merge --quiet printed: [%s] [%s]", r.out, r.err);
  cli_result_free(&r);
  cli_options_t tty = {.stderr_tty = 1};
  if (cli_run(&r, &tty, "analyze", ds, "-o", P("run-tty"), "--chunk", "1", NULL) != 0)
    cr_skip_test("no pseudo-terminal here (the pipe checks passed)");
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect(strstr(r.err, "examples") != NULL && strchr(r.err, '\r') != NULL,
            "no progress on a terminal: [%s]", r.err);
  cli_result_free(&r);
  cr_assert_eq(cli_run(&r, &tty, "analyze", ds, "-o", P("run-tty-q"), "-q", NULL), 0);
  cr_expect_eq(r.exit_code, 0, "stderr: %s", r.err);
  cr_expect_eq(r.err_len, 0, "--quiet printed on a terminal: [%s]", r.err);
  cli_result_free(&r);
}
