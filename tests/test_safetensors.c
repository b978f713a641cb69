/* test_safetensors.c — the safetensors reader and writers (host/io/safetensors_*.c,
 * docs/design.md §2 and §6): round trips for every dtype, 0-d, zero-size and unaligned
 * tensors, the streaming writer, files written by the Python `safetensors` package
 * (fixtures/io/, made by fixtures/make_io_fixtures.py), and malformed files built here,
 * each of which must fail with AM_STATUS_BAD_INPUT and a message naming the file, the
 * tensor where there is one, and the problem. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"
#include "io/file.h"
#include "support/scratch_dir.h"

#define FIX ATTNMAP_FIXTURES "/io/"

static void setup(void) { scratch_setup("st"); }
static void teardown(void) { scratch_teardown(); }

TestSuite(safetensors, .init = setup, .fini = teardown);

/* 8-byte length (hlen_override when not 0), header[hlen], then ndata bytes 0,1,2,... */
static const char *make_st(const char *name, const char *header, size_t hlen,
                           uint64_t hlen_override, size_t ndata) {
  const char *path = tmp_path(name);
  size_t total = 8 + hlen + ndata;
  unsigned char *buf = malloc(total);
  uint64_t n = hlen_override ? hlen_override : hlen;
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)(n >> (8 * i));
  memcpy(buf + 8, header, hlen);
  for (size_t i = 0; i < ndata; i++)
    buf[8 + hlen + i] = (unsigned char)i;
  write_file(path, buf, total);
  free(buf);
  return path;
}

static void expect_bad(const char *label, const char *path, const char *phrase,
                       const char *tensor) {
  int before = open_resources();
  am_file_t *f = (am_file_t *)0x1;
  am_status st = am_file_open(ctx, path, &f);
  const char *msg = am_last_error(ctx);
  cr_expect_eq(st, AM_STATUS_BAD_INPUT, "%s: status %d (%s)", label, st, msg);
  cr_expect_null(f, "%s: out not NULL", label);
  cr_expect_not_null(strstr(msg, path), "%s: message lacks the path: %s", label, msg);
  cr_expect_not_null(strstr(msg, phrase), "%s: message lacks \"%s\": %s", label, phrase,
                     msg);
  if (tensor)
    cr_expect_not_null(strstr(msg, tensor), "%s: message lacks tensor %s: %s", label,
                       tensor, msg);
  cr_expect_null(strchr(msg, '\n'), "%s: message is not one line", label);
  cr_log_info("%s: %s", label, msg);
  am_file_close(st == AM_STATUS_OK ? f : NULL);
  cr_expect_eq(open_resources(), before, "%s: a descriptor or mapping leaked", label);
}

#define E(name, dtype, shape, b, e)                                                        \
  "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e \
  "]}"

static const struct bad_case {
  const char *label, *header;
  size_t ndata;
  const char *phrase, *tensor;
} bad_cases[] = {
    {"not utf-8", "{\"a\xff\":{}}", 0, "not valid UTF-8", NULL},
    {"overlong utf-8", "{\"\xc0\xaf\":{}}", 0, "not valid UTF-8", NULL},
    {"surrogate utf-8", "{\"\xed\xa0\x80\":{}}", 0, "not valid UTF-8", NULL},
    {"invalid json", "{\"a\":{\"dtype\":", 0, "not valid JSON", NULL},
    {"trailing garbage", "{} x", 0, "not valid JSON", NULL},
    {"top-level array", "[]", 0, "not a JSON object", NULL},
    {"duplicate name",
     "{" E("attentions", "U8", "[1]", 0, 1) "," E("attentions", "U8", "[1]", 1, 2) "}", 2,
     "duplicate tensor name", "attentions"},
    {"duplicate long name",
     "{" E("attention_grads.11.long.name", "U8", "[1]", 0,
           1) "," E("attention_grads.11.long.name", "U8", "[1]", 1, 2) "}",
     2, "duplicate tensor name", "attention_grads.11.long.name"},
    {"unknown dtype", "{" E("w", "F4", "[1]", 0, 1) "}", 1, "unknown dtype", "w"},
    {"dtype not a string", "{\"w\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
     "dtype is not a string", "w"},
    {"negative shape", "{" E("w", "U8", "[-1]", 0, 1) "}", 1, "non-negative integer", "w"},
    {"non-integer shape", "{" E("w", "U8", "[1.5]", 0, 1) "}", 1, "non-negative integer",
     "w"},
    {"shape not array", "{" E("w", "U8", "3", 0, 3) "}", 3, "shape is not an array", "w"},
    {"too many dims", "{" E("w", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, "at most 8",
     "w"},
    {"shape overflow", "{" E("big", "F32", "[1099511627776,1099511627776]", 0, 4) "}", 4,
     "overflows", "big"},
    {"out of bounds", "{" E("w", "F32", "[4]", 0, 16) "}", 8, "out of bounds", "w"},
    {"overlap", "{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[2]", 4, 12) "}", 12,
     "overlap", "b"},
    {"gap", "{" E("a", "F32", "[1]", 0, 4) "," E("b", "F32", "[1]", 8, 12) "}", 12, "gap",
     "b"},
    {"gap at start", "{" E("a", "F32", "[1]", 4, 8) "}", 8, "gap", "a"},
    {"trailing bytes", "{" E("a", "F32", "[1]", 0, 4) "}", 7, "3 trailing bytes", NULL},
    {"begin > end", "{" E("a", "U8", "[0]", 4, 2) "}", 4, "begin > end", "a"},
    {"size mismatch", "{" E("a", "F32", "[1]", 0, 8) "}", 8, "needs 4", "a"},
    {"offsets not a pair",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1,
     "data_offsets is not", "a"},
    {"negative offset", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}",
     1, "data_offsets is not", "a"},
    {"missing offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1,
     "no \"data_offsets\"", "a"},
    {"entry not an object", "{\"a\":[1,2]}", 0, "entry is not an object", "a"},
    {"metadata value", "{\"__metadata__\":{\"model\":1}}", 0, "value is not a string",
     "model"},
    {"metadata not object", "{\"__metadata__\":[\"x\"]}", 0,
     "__metadata__ is not an object", NULL},
    {"integer too big", "{" E("a", "U8", "[99999999999999999999]", 0, 1) "}", 1,
     "not valid JSON", NULL},
    {"empty header", "", 0, "not valid JSON", NULL},
};

Test(safetensors, malformed_headers) {
  size_t n = sizeof bad_cases / sizeof bad_cases[0];
  cr_assert_geq(n, 25);
  for (size_t i = 0; i < n; i++) {
    const struct bad_case *c = &bad_cases[i];
    char name[64];
    snprintf(name, sizeof name, "bad%02zu.safetensors", i);
    const char *path = make_st(name, c->header, strlen(c->header), 0, c->ndata);
    expect_bad(c->label, path, c->phrase, c->tensor);
  }
}

Test(safetensors, malformed_lengths_and_files) {
  const char *h = "{" E("a", "U8", "[1]", 0, 1) "}";
  const char *p = tmp_path("empty.safetensors");
  write_file(p, "", 0);
  expect_bad("empty file", p, "truncated", NULL);
  p = tmp_path("short.safetensors");
  write_file(p, "\x05\0\0", 3);
  expect_bad("shorter than 8", p, "truncated", NULL);
  expect_bad("header above the cap", make_st("cap.safetensors", h, strlen(h), 100000001, 1),
             "exceeds the limit", NULL);
  expect_bad("header longer than the file",
             make_st("long.safetensors", h, strlen(h), strlen(h) + 2, 1), "truncated",
             NULL);
  expect_bad("length 2^64-1", make_st("huge.safetensors", h, strlen(h), UINT64_MAX, 1),
             "exceeds the limit", NULL);
  static const char nul[] =
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}\0 ";
  expect_bad("NUL byte", make_st("nul.safetensors", nul, sizeof nul - 1, 0, 1), "NUL byte",
             NULL);
  expect_bad("missing file", tmp_path("absent.safetensors"), "cannot open: No such file",
             NULL);
  expect_bad("directory", dir, "cannot open", NULL);
}

/* The reference implementation accepts these; so does attnmap. */
Test(safetensors, lenient_where_the_reference_is) {
  const char *h = "  {\"__metadata__\":null," E(
      "b", "U8", "[2]", 0,
      2) ","
         "\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2],\"x\":1}," E(
             "c", "U8", "[0]", 2, 2) "," E("z", "U8", "[1]", 2, 3) "}   \t\n";
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(ctx, make_st("ok.st", h, strlen(h), 0, 3), &f), AM_STATUS_OK,
               "%s", am_last_error(ctx));
  /* by data offsets, ties by name; a file without the extension is sniffed */
  const char *order[] = {"b", "a", "c", "z"};
  cr_assert_eq(am_file_tensor_count(f), 4);
  for (int i = 0; i < 4; i++)
    cr_expect_str_eq(am_file_tensor_name(f, i), order[i]);
  cr_expect_eq(am_file_metadata_count(f), 0);
  cr_expect_eq(((const unsigned char *)am_file_find(f, "z")->data)[0], 2);
  am_file_close(f);
}

static void fill_pattern(unsigned char *p, size_t n, int seed) {
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(i * 7 + (size_t)seed * 13 + 1);
}

Test(safetensors, round_trip_every_dtype) {
  int resources = open_resources();
  am_named_tensor_t t[AM_DTYPE_COUNT];
  unsigned char *buf[AM_DTYPE_COUNT];
  char names[AM_DTYPE_COUNT][32];
  for (int d = 0; d < AM_DTYPE_COUNT; d++) {
    snprintf(names[d], sizeof names[d], "t.%s", am_dtype_name((am_dtype)d));
    am_tensor_t x = {.dtype = (am_dtype)d, .ndim = 2, .shape = {2, 3}};
    x.nbytes = 6 * am_dtype_size((am_dtype)d);
    buf[d] = malloc(x.nbytes);
    fill_pattern(buf[d], x.nbytes, d);
    x.data = buf[d];
    t[d] = (am_named_tensor_t){names[d], x};
  }
  const char *meta[] = {"model", "bert-tiny", "attnmap.tokens",
                        "[[\"[CLS]\",\"h\\u00e9\"]]"};
  const char *path = tmp_path("all.safetensors");
  cr_assert_eq(am_safetensors_write(ctx, path, t, AM_DTYPE_COUNT, meta, 2), AM_STATUS_OK,
               "%s", am_last_error(ctx));
  cr_expect_eq(count_files(), 1, "temporary file left behind");
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(ctx, path, &f), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_assert_eq(am_file_tensor_count(f), AM_DTYPE_COUNT);
  for (int d = 0; d < AM_DTYPE_COUNT; d++) {
    const am_tensor_t *r = am_file_tensor(f, d); /* data offsets follow the given order */
    cr_expect_str_eq(am_file_tensor_name(f, d), names[d]);
    cr_expect_eq(r->dtype, (am_dtype)d);
    cr_expect(r->ndim == 2 && r->shape[0] == 2 && r->shape[1] == 3);
    cr_expect_eq(r->nbytes, t[d].tensor.nbytes);
    cr_expect_eq(memcmp(r->data, buf[d], r->nbytes), 0, "data of %s", names[d]);
    cr_expect_eq(am_file_find(f, names[d]), r);
    free(buf[d]);
  }
  cr_expect_null(am_file_find(f, "absent"));
  cr_expect_eq(am_file_metadata_count(f), 2);
  cr_expect_str_eq(am_file_metadata_key(f, 0), "model");
  cr_expect_str_eq(am_file_metadata(f, "model"), "bert-tiny");
  cr_expect_str_eq(am_file_metadata(f, "attnmap.tokens"), meta[3]);
  cr_expect_null(am_file_metadata(f, "absent"));
  cr_expect_null(am_file_tensor(f, -1));
  cr_expect_null(am_file_tensor_name(f, AM_DTYPE_COUNT));
  cr_expect_str_eq(am_file_path(f), path);
  /* 8 + N is a multiple of 8, padded with spaces */
  cr_expect_eq(
      ((const unsigned char *)am_file_tensor(f, 0)->data - (unsigned char *)f->map) % 8, 0);
  am_file_close(f);
  am_file_close(NULL);
  cr_expect_eq(open_resources(), resources, "a descriptor or mapping leaked");
}

Test(safetensors, zero_size_and_scalar) {
  double s = -0.25;
  am_named_tensor_t t[] = {
      {"scalar", {.dtype = AM_DTYPE_F64, .ndim = 0, .data = &s, .nbytes = 8}},
      {"empty", {.dtype = AM_DTYPE_F32, .ndim = 2, .shape = {0, 3}}},
      {"empty3", {.dtype = AM_DTYPE_I8, .ndim = 3, .shape = {4, 0, 2}}},
  };
  const char *path = tmp_path("edge.safetensors");
  cr_assert_eq(am_safetensors_write(ctx, path, t, 3, NULL, 0), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(ctx, path, &f), AM_STATUS_OK, "%s", am_last_error(ctx));
  const am_tensor_t *r = am_file_find(f, "scalar");
  double got;
  memcpy(&got, r->data, 8);
  cr_expect(r->ndim == 0 && r->nbytes == 8 && got == -0.25);
  cr_expect_eq(am_tensor_elements(r), 1);
  r = am_file_find(f, "empty3");
  cr_expect(r->ndim == 3 && r->shape[1] == 0 && r->nbytes == 0);
  cr_expect_eq(am_tensor_elements(r), 0);
  cr_expect_eq(am_file_find(f, "empty")->nbytes, 0);
  am_file_close(f);
  /* no tensors at all */
  cr_assert_eq(am_safetensors_write(ctx, path, NULL, 0, NULL, 0), AM_STATUS_OK);
  cr_assert_eq(am_file_open(ctx, path, &f), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_expect_eq(am_file_tensor_count(f), 0);
  am_file_close(f);
}

Test(safetensors, unaligned_data) {
  unsigned char u[3] = {1, 2, 3};
  float v[5] = {1.5f, -2.0f, 3.25f, 1e-3f, 7.0f};
  am_named_tensor_t t[] = {
      {"ids", {.dtype = AM_DTYPE_U8, .ndim = 1, .shape = {3}, .data = u, .nbytes = 3}},
      {"att", {.dtype = AM_DTYPE_F32, .ndim = 1, .shape = {5}, .data = v, .nbytes = 20}},
  };
  const char *path = tmp_path("unaligned.safetensors");
  cr_assert_eq(am_safetensors_write(ctx, path, t, 2, NULL, 0), AM_STATUS_OK);
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(ctx, path, &f), AM_STATUS_OK, "%s", am_last_error(ctx));
  const am_tensor_t *r = am_file_find(f, "att");
  cr_assert_eq((uintptr_t)r->data % 2, 1, "the F32 data should sit at an odd address");
  for (int i = 0; i < 5; i++) {
    float x;
    memcpy(&x, (const unsigned char *)r->data + 4 * i, 4);
    cr_expect_eq(x, v[i]);
  }
  am_file_close(f);
}

Test(safetensors, streaming_writer_any_order) {
  am_tensor_spec_t specs[] = {{"a", AM_DTYPE_I32, 1, {6}}, {"b", AM_DTYPE_U8, 2, {2, 2}}};
  const char *meta[] = {"k", "v"};
  const char *path = tmp_path("stream.safetensors");
  am_st_writer_t *w = NULL;
  cr_assert_eq(am_st_writer_open(ctx, path, specs, 2, meta, 1, &w), AM_STATUS_OK);
  int32_t a[6] = {10, 20, 30, 40, 50, 60};
  unsigned char b[4] = {9, 8, 7, 6};
  cr_assert_eq(am_st_writer_put(w, 1, 0, b, 4), AM_STATUS_OK);
  cr_assert_eq(am_st_writer_put(w, 0, 12, a + 3, 12), AM_STATUS_OK);
  cr_assert_eq(am_st_writer_put(w, 0, 0, a, 12), AM_STATUS_OK);
  cr_expect_eq(am_st_writer_put(w, 0, 16, a, 12), AM_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(am_st_writer_put(w, 2, 0, a, 1), AM_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(am_st_writer_put(w, 0, UINT64_MAX, a, 1), AM_STATUS_INVALID_ARGUMENT);
  cr_assert_eq(am_st_writer_close(w, 0), AM_STATUS_OK);
  cr_expect_eq(am_st_writer_close(NULL, 0), AM_STATUS_OK);
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(ctx, path, &f), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_expect_eq(memcmp(am_file_find(f, "a")->data, a, 24), 0);
  cr_expect_eq(memcmp(am_file_find(f, "b")->data, b, 4), 0);
  cr_expect_str_eq(am_file_metadata(f, "k"), "v");
  am_file_close(f);
}

Test(safetensors, writer_rejects_bad_tensors) {
  int resources = open_resources();
  float x[2] = {0};
  const char *path = tmp_path("bad.safetensors");
  am_named_tensor_t dup[] = {
      {"a", {.dtype = AM_DTYPE_F32, .ndim = 1, .shape = {2}, .data = x, .nbytes = 8}},
      {"a", {.dtype = AM_DTYPE_F32, .ndim = 1, .shape = {2}, .data = x, .nbytes = 8}}};
  cr_expect_eq(am_safetensors_write(ctx, path, dup, 2, NULL, 0),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect_not_null(strstr(am_last_error(ctx), "duplicate"), "%s", am_last_error(ctx));
  am_named_tensor_t noname[] = {
      {"", {.dtype = AM_DTYPE_F32, .ndim = 1, .shape = {2}, .data = x, .nbytes = 8}}};
  cr_expect_eq(am_safetensors_write(ctx, path, noname, 1, NULL, 0),
               AM_STATUS_INVALID_ARGUMENT);
  am_named_tensor_t overflow[] = {
      {"o",
       {.dtype = AM_DTYPE_F32, .ndim = 2, .shape = {1ll << 40, 1ll << 40}, .data = x}}};
  cr_expect_eq(am_safetensors_write(ctx, path, overflow, 1, NULL, 0),
               AM_STATUS_INVALID_ARGUMENT);
  am_named_tensor_t mismatch[] = {
      {"m", {.dtype = AM_DTYPE_F32, .ndim = 1, .shape = {3}, .data = x, .nbytes = 8}}};
  cr_expect_eq(am_safetensors_write(ctx, path, mismatch, 1, NULL, 0),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect_not_null(strstr(am_last_error(ctx), "tensor m"), "%s", am_last_error(ctx));
  const char *meta[] = {"k", "1", "k", "2"};
  cr_expect_eq(am_safetensors_write(ctx, path, NULL, 0, meta, 2),
               AM_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(count_files(), 0, "a failed write left a file behind");
  cr_expect_eq(am_tensor_byte_size(AM_DTYPE_F32, 2, (int64_t[]){-1, 2}), -1);
  cr_expect_eq(am_tensor_byte_size(AM_DTYPE_F32, 2, (int64_t[]){1ll << 62, 0}), 0);
  cr_expect_eq(open_resources(), resources, "a descriptor or mapping leaked");
}

Test(safetensors, write_errors_name_the_path) {
  int resources = open_resources();
  float x[2] = {1, 2};
  am_named_tensor_t t[] = {
      {"a", {.dtype = AM_DTYPE_F32, .ndim = 1, .shape = {2}, .data = x, .nbytes = 8}}};
  const char *path = tmp_path("no/such/dir/out.safetensors");
  cr_expect_eq(am_safetensors_write(ctx, path, t, 1, NULL, 0), AM_STATUS_IO);
  cr_expect_not_null(strstr(am_last_error(ctx), path), "%s", am_last_error(ctx));
  if (access("/dev/full", W_OK) != 0)
    goto done;
  am_st_writer_t *w = NULL;
  am_tensor_spec_t spec = {"a", AM_DTYPE_F32, 1, {2}};
  cr_expect_eq(am_st_writer_open(ctx, "/dev/full", &spec, 1, NULL, 0, &w), AM_STATUS_IO);
  cr_expect_null(w);
  cr_expect_not_null(strstr(am_last_error(ctx), "/dev/full: cannot write: No space left"),
                     "%s", am_last_error(ctx));
done:
  cr_expect_eq(open_resources(), resources, "a descriptor or mapping leaked");
}

/* Written by the Python safetensors package (fixtures/make_io_fixtures.py). */
Test(safetensors, python_fixtures) {
  int resources = open_resources();
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(ctx, FIX "st_mixed.safetensors", &f), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  cr_expect_eq(am_file_tensor_count(f), 5);
  cr_expect_str_eq(am_file_metadata(f, "model"), "tiny-test");
  cr_expect_eq(am_file_metadata_count(f), 1);
  const am_tensor_t *t = am_file_find(f, "f32"); /* (np.arange(6) * 0.5).reshape(2, 3) */
  cr_assert(t && t->dtype == AM_DTYPE_F32 && t->ndim == 2 && t->shape[1] == 3);
  for (int i = 0; i < 6; i++) {
    float v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    cr_expect_eq(v, 0.5f * (float)i);
  }
  t = am_file_find(f, "f16"); /* np.arange(4, dtype=np.float16) - 1.5 */
  static const uint16_t f16[4] = {0xBE00, 0xB800, 0x3800, 0x3E00};
  cr_assert(t && t->dtype == AM_DTYPE_F16 && t->nbytes == 8);
  cr_expect_eq(memcmp(t->data, f16, 8), 0);
  t = am_file_find(f, "i64"); /* [-3, 0, 2**40, 7] */
  static const int64_t i64[4] = {-3, 0, 1ll << 40, 7};
  cr_assert(t && t->dtype == AM_DTYPE_I64 && t->shape[0] == 4);
  cr_expect_eq(memcmp(t->data, i64, 32), 0);
  t = am_file_find(f, "u8"); /* np.arange(5) * 50 */
  cr_assert(t && t->dtype == AM_DTYPE_U8);
  cr_expect_eq(memcmp(t->data, "\x00\x32\x64\x96\xc8", 5), 0);
  t = am_file_find(f, "mask"); /* [True, False, True] */
  cr_assert(t && t->dtype == AM_DTYPE_BOOL);
  cr_expect_eq(memcmp(t->data, "\x01\x00\x01", 3), 0);
  am_file_close(f);

  cr_assert_eq(am_file_open(ctx, FIX "st_bf16.safetensors", &f), AM_STATUS_OK);
  t = am_file_find(f, "bf"); /* bfloat16 [[1, -2, 0.5], [3, 0, -0.125]] */
  static const uint16_t bf[6] = {0x3F80, 0xC000, 0x3F00, 0x4040, 0x0000, 0xBE00};
  cr_assert(t && t->dtype == AM_DTYPE_BF16 && t->ndim == 2 && t->shape[0] == 2);
  cr_expect_eq(memcmp(t->data, bf, 12), 0);
  am_file_close(f);

  cr_assert_eq(am_file_open(ctx, FIX "st_edge.safetensors", &f), AM_STATUS_OK);
  t = am_file_find(f, "scalar"); /* np.array(2.5) */
  cr_assert(t && t->ndim == 0 && t->dtype == AM_DTYPE_F64);
  cr_expect_eq(memcmp(t->data, &(double){2.5}, 8), 0);
  t = am_file_find(f, "empty"); /* np.zeros((0, 3)) */
  cr_assert(t && t->ndim == 2 && t->shape[0] == 0 && t->nbytes == 0);
  am_file_close(f);
  cr_expect_eq(open_resources(), resources, "a descriptor or mapping leaked");
}

/* One tensor with metadata: attnmap's writer produces the reference writer's bytes. */
Test(safetensors, same_bytes_as_the_reference_writer) {
  float x[6] = {0, 1, 2, 3, 4, 5};
  am_named_tensor_t t[] = {
      {"x", {.dtype = AM_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = x, .nbytes = 24}}};
  const char *meta[] = {"k", "v"};
  const char *path = tmp_path("single.safetensors");
  cr_assert_eq(am_safetensors_write(ctx, path, t, 1, meta, 1), AM_STATUS_OK);
  char a[512], b[512];
  FILE *fa = fopen(path, "rb"), *fb = fopen(FIX "st_single.safetensors", "rb");
  cr_assert(fa && fb);
  size_t na = fread(a, 1, sizeof a, fa), nb = fread(b, 1, sizeof b, fb);
  fclose(fa);
  fclose(fb);
  cr_expect_eq(na, nb);
  cr_expect_eq(memcmp(a, b, na < nb ? na : nb), 0);
}
