/* test_npy.c — the .npy reader and writer (host/io/npy_*.c, docs/design.md §2 and §6):
 * files written by numpy (fixtures/io/, made by fixtures/make_io_fixtures.py: C and Fortran
 * order, big-endian, format versions 1.0, 2.0 and 3.0, bool, int64, 0-d, zero-size),
 * round trips for every dtype numpy has, headers byte-identical to numpy's, and malformed
 * files built here, each of which must fail with AM_STATUS_BAD_INPUT and a message naming
 * the file and the problem. */
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

static void setup(void) { scratch_setup("npy"); }
static void teardown(void) { scratch_teardown(); }

TestSuite(npy, .init = setup, .fini = teardown);

/* A .npy file: magic, version major.0, the dict padded with spaces and '\n' to a multiple
 * of 64 (hlen_override, when not 0, replaces the length field), then ndata bytes. */
static const char *make_npy(const char *name, int major, const char *dict,
                            uint32_t hlen_override, size_t ndata) {
  const char *path = tmp_path(name);
  size_t pre = major == 1 ? 10 : 12, n = strlen(dict) + 1;
  size_t hlen = n + (64 - (pre + n) % 64) % 64;
  size_t total = pre + hlen + ndata;
  unsigned char *buf = calloc(1, total);
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major;
  uint32_t len = hlen_override ? hlen_override : (uint32_t)hlen;
  for (size_t i = 0; i < pre - 8; i++)
    buf[8 + i] = (unsigned char)(len >> (8 * i));
  memset(buf + pre, ' ', hlen);
  memcpy(buf + pre, dict, strlen(dict));
  buf[pre + hlen - 1] = '\n';
  write_file(path, buf, total);
  free(buf);
  return path;
}

static void expect_bad(const char *label, const char *path, const char *phrase) {
  int before = open_resources();
  am_file_t *f = (am_file_t *)0x1;
  am_status st = am_file_open(ctx, path, &f);
  const char *msg = am_last_error(ctx);
  cr_log_info("%s: %s", label, msg);
  cr_expect_eq(st, AM_STATUS_BAD_INPUT, "%s: status %d (%s)", label, st, msg);
  cr_expect_null(f, "%s: out not NULL", label);
  cr_expect_not_null(strstr(msg, path), "%s: message lacks the path: %s", label, msg);
  cr_expect_not_null(strstr(msg, phrase), "%s: message lacks \"%s\": %s", label, phrase,
                     msg);
  am_file_close(st == AM_STATUS_OK ? f : NULL);
  cr_expect_eq(open_resources(), before, "%s: a descriptor or mapping leaked", label);
}

#define D(descr, fortran, shape)                                                           \
  "{'descr': '" descr "', 'fortran_order': " fortran ", 'shape': " shape ", }"

static const struct bad_case {
  const char *label, *dict;
  size_t ndata;
  const char *phrase;
} bad_cases[] = {
    {"object dtype", D("|O", "False", "(2,)"), 16, "object arrays"},
    {"unknown descr", D("<c8", "False", "(2,)"), 16, "unsupported descr '<c8'"},
    {"string descr", D("<U5", "False", "(1,)"), 20, "unsupported descr"},
    {"structured dtype",
     "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4, "structured"},
    {"truncated data", D("<f4", "False", "(3, 4)"), 47, "truncated: 47 data bytes"},
    {"trailing bytes", D("<f4", "False", "(2,)"), 9, "1 trailing bytes"},
    {"negative dim", D("<f4", "False", "(-1,)"), 0, "negative dimension"},
    {"shape overflow", D("<f8", "False", "(4294967296, 4294967296)"), 0, "overflows"},
    {"dim too large", D("<f8", "False", "(99999999999999999999,)"), 0, "too large"},
    {"shape not a tuple", D("<f4", "False", "(2)"), 8, "not a tuple"},
    {"shape a list", D("<f4", "False", "[2]"), 8, "not a tuple"},
    {"too many dims", D("<f4", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4, "more than 8"},
    {"fortran_order value", D("<f4", "1", "(1,)"), 4, "not True or False"},
    {"missing key", "{'descr': '<f4', 'fortran_order': False, }", 4, "missing key 'shape'"},
    {"unexpected key", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4,
     "unexpected key 'x'"},
    {"duplicate key",
     "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4,
     "appears twice"},
    {"escaped string", D("<f\\x34", "False", "(1,)"), 4, "escape"},
    {"text after dict", D("<f4", "False", "(1,)") " 1", 4, "unexpected text"},
    {"not a dict", "['descr']", 0, "expected '{'"},
    {"unterminated", "{'descr': '<f4", 0, "unterminated"},
};

Test(npy, malformed) {
  size_t n = sizeof bad_cases / sizeof bad_cases[0];
  for (size_t i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "bad%02zu.npy", i);
    const char *path = make_npy(name, 1, bad_cases[i].dict, 0, bad_cases[i].ndata);
    expect_bad(bad_cases[i].label, path, bad_cases[i].phrase);
  }
  const char *d = D("<f4", "False", "(1,)");
  expect_bad("header above the cap", make_npy("cap.npy", 2, d, 10001, 4),
             "exceeds the limit");
  expect_bad("header longer than the file", make_npy("long.npy", 1, d, 200, 4),
             "truncated: npy header length 200");
  const char *p = make_npy("v4.npy", 1, d, 0, 4);
  FILE *f = fopen(p, "r+b");
  fseek(f, 6, SEEK_SET);
  fputc(4, f);
  fclose(f);
  expect_bad("version 4.0", p, "unsupported npy format version 4.0");
  p = tmp_path("magic.npy");
  write_file(p, "\x93NUMPZ\x01\x00\x10\x00{}", 12);
  expect_bad("bad magic", p, "bad magic");
  p = tmp_path("empty.npy");
  write_file(p, "", 0);
  expect_bad("empty file", p, "truncated");
  p = tmp_path("short.npy");
  write_file(p, "\x93NUMPY\x01", 7);
  expect_bad("no version", p, "truncated");
  expect_bad("missing file", tmp_path("absent.npy"), "cannot open: No such file");
}

static const am_file_t *open_ok(const char *path, am_file_t **f) {
  cr_assert_eq(am_file_open(ctx, path, f), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_assert_eq(am_file_tensor_count(*f), 1);
  return *f;
}

static void expect_f32(const am_tensor_t *t, int i, float want) {
  float v;
  memcpy(&v, (const char *)t->data + 4 * i, 4);
  cr_expect_eq(v, want, "element %d: %g, want %g", i, v, want);
}

/* Values restate fixtures/make_io_fixtures.py. */
Test(npy, numpy_fixtures_c_order) {
  int resources = open_resources();
  am_file_t *f;
  open_ok(FIX "npy_c.npy", &f); /* np.arange(12, dtype=np.float32).reshape(3, 4) */
  const am_tensor_t *t = am_file_tensor(f, 0);
  cr_expect_str_eq(am_file_tensor_name(f, 0), "npy_c");
  cr_expect(t->dtype == AM_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 3 &&
            t->shape[1] == 4);
  for (int i = 0; i < 12; i++)
    expect_f32(t, i, (float)i);
  cr_expect(f->map != NULL && f->owned == NULL, "C-order little-endian data is mapped");
  am_file_close(f);
  open_ok(FIX "attentions.3.npy", &f); /* np.full((1, 1, 2, 2), 0.5, np.float32) */
  cr_expect_str_eq(am_file_tensor_name(f, 0), "attentions.3");
  cr_expect_not_null(am_file_find(f, "attentions.3"));
  cr_expect_eq(am_file_tensor(f, 0)->ndim, 4);
  expect_f32(am_file_tensor(f, 0), 3, 0.5f);
  am_file_close(f);
  open_ok(FIX "npy_bool.npy", &f); /* [[True, False], [False, True]] */
  cr_expect_eq(am_file_tensor(f, 0)->dtype, AM_DTYPE_BOOL);
  cr_expect_eq(memcmp(am_file_tensor(f, 0)->data, "\1\0\0\1", 4), 0);
  am_file_close(f);
  open_ok(FIX "npy_i64.npy", &f); /* [-1, 0, 1, 2**62] */
  static const int64_t i64[4] = {-1, 0, 1, 1ll << 62};
  cr_expect_eq(am_file_tensor(f, 0)->dtype, AM_DTYPE_I64);
  cr_expect_eq(memcmp(am_file_tensor(f, 0)->data, i64, 32), 0);
  am_file_close(f);
  open_ok(FIX "npy_0d.npy", &f); /* np.array(3.5, np.float32) */
  cr_expect(am_file_tensor(f, 0)->ndim == 0 && am_file_tensor(f, 0)->nbytes == 4);
  expect_f32(am_file_tensor(f, 0), 0, 3.5f);
  am_file_close(f);
  open_ok(FIX "npy_empty.npy", &f); /* np.zeros((0, 3), np.float32) */
  t = am_file_tensor(f, 0);
  cr_expect(t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->nbytes == 0);
  am_file_close(f);
  cr_expect_eq(open_resources(), resources, "a descriptor or mapping leaked");
}

Test(npy, numpy_fixtures_converted_and_versions) {
  int resources = open_resources();
  am_file_t *f;
  open_ok(FIX "npy_fortran.npy", &f); /* asfortranarray(arange(24, f8).reshape(2, 3, 4)) */
  const am_tensor_t *t = am_file_tensor(f, 0);
  cr_expect(t->dtype == AM_DTYPE_F64 && t->ndim == 3 && t->shape[2] == 4);
  cr_expect(f->owned != NULL && t->data == f->owned, "Fortran data is converted");
  for (int i = 0; i < 24; i++) {
    double v;
    memcpy(&v, (const char *)t->data + 8 * i, 8);
    cr_expect_eq(v, (double)i, "element %d", i);
  }
  am_file_close(f);
  open_ok(FIX "npy_be.npy", &f); /* np.arange(6, dtype='>f4').reshape(2, 3) */
  for (int i = 0; i < 6; i++)
    expect_f32(am_file_tensor(f, 0), i, (float)i);
  am_file_close(f);
  open_ok(FIX "npy_be_fortran.npy",
          &f); /* asfortranarray((arange(6).reshape(2,3)-2) '>i4') */
  t = am_file_tensor(f, 0);
  cr_expect(t->dtype == AM_DTYPE_I32 && t->shape[0] == 2 && t->shape[1] == 3);
  for (int i = 0; i < 6; i++) {
    int32_t v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    cr_expect_eq(v, i - 2, "element %d", i);
  }
  am_file_close(f);
  open_ok(FIX "npy_v2.npy", &f); /* format 2.0: np.arange(5, dtype=np.float16) */
  static const uint16_t f16[5] = {0x0000, 0x3C00, 0x4000, 0x4200, 0x4400};
  cr_expect_eq(am_file_tensor(f, 0)->dtype, AM_DTYPE_F16);
  cr_expect_eq(memcmp(am_file_tensor(f, 0)->data, f16, 10), 0);
  am_file_close(f);
  open_ok(FIX "npy_v3.npy", &f); /* format 3.0: np.arange(4, dtype=np.uint16) * 1000 */
  static const uint16_t u16[4] = {0, 1000, 2000, 3000};
  cr_expect_eq(am_file_tensor(f, 0)->dtype, AM_DTYPE_U16);
  cr_expect_eq(memcmp(am_file_tensor(f, 0)->data, u16, 8), 0);
  am_file_close(f);
  cr_expect_eq(open_resources(), resources, "a descriptor or mapping leaked");
}

/* Hand-made variants numpy also reads: '=' and missing byte orders, Python 2 'L' dims,
 * double quotes, no trailing comma, a big-endian Fortran 3-d array. */
Test(npy, header_variants) {
  am_file_t *f;
  open_ok(make_npy("a.npy", 1,
                   "{\"descr\": \"=f4\", \"fortran_order\": False, "
                   "\"shape\": (2L, 1L)}",
                   0, 8),
          &f);
  cr_expect(am_file_tensor(f, 0)->shape[0] == 2 &&
            am_file_tensor(f, 0)->dtype == AM_DTYPE_F32);
  am_file_close(f);
  static const unsigned char be[12] = {0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3};
  const char *p = make_npy("b.npy", 1, D(">u4", "True", "(1, 3, 1)"), 0, 0);
  FILE *fp = fopen(p, "ab");
  fwrite(be, 1, sizeof be, fp);
  fclose(fp);
  open_ok(p, &f);
  for (uint32_t i = 0; i < 3; i++) {
    uint32_t v;
    memcpy(&v, (const char *)am_file_tensor(f, 0)->data + 4 * i, 4);
    cr_expect_eq(v, i + 1);
  }
  am_file_close(f);
}

Test(npy, round_trip_every_dtype) {
  int resources = open_resources();
  for (int d = 0; d < AM_DTYPE_COUNT; d++) {
    am_tensor_t t = {.dtype = (am_dtype)d, .ndim = 3, .shape = {2, 1, 3}};
    unsigned char buf[48];
    t.nbytes = 6 * am_dtype_size((am_dtype)d);
    for (size_t i = 0; i < t.nbytes; i++)
      buf[i] = (unsigned char)(i * 5 + (size_t)d);
    if (d == AM_DTYPE_BOOL)
      for (size_t i = 0; i < t.nbytes; i++)
        buf[i] &= 1;
    t.data = buf;
    char name[32];
    snprintf(name, sizeof name, "x.%s.npy", am_dtype_name((am_dtype)d));
    const char *path = tmp_path(name);
    am_status st = am_npy_write(ctx, path, &t);
    if (d == AM_DTYPE_BF16 || d == AM_DTYPE_F8_E4M3 || d == AM_DTYPE_F8_E5M2) {
      cr_expect_eq(st, AM_STATUS_UNSUPPORTED, "%s", name);
      cr_expect_not_null(strstr(am_last_error(ctx), am_dtype_name((am_dtype)d)));
      cr_expect_neq(access(path, F_OK), 0, "no file for an unsupported dtype");
      continue;
    }
    cr_assert_eq(st, AM_STATUS_OK, "%s: %s", name, am_last_error(ctx));
    am_file_t *f;
    open_ok(path, &f);
    const am_tensor_t *r = am_file_tensor(f, 0);
    cr_expect(r->dtype == t.dtype && r->ndim == 3 && r->shape[2] == 3, "%s", name);
    cr_expect(r->nbytes == t.nbytes && memcmp(r->data, buf, t.nbytes) == 0, "%s", name);
    cr_expect_eq(((const unsigned char *)r->data - (unsigned char *)f->map) % 64, 0);
    am_file_close(f);
  }
  cr_expect_eq(open_resources(), resources, "a descriptor or mapping leaked");
}

/* attnmap writes the bytes numpy.save writes (header included). */
Test(npy, same_bytes_as_numpy) {
  static const struct {
    const char *fixture;
    am_tensor_t t;
  } cases[] = {
      {"npy_c.npy", {AM_DTYPE_F32, 2, {3, 4}, NULL, 48}},
      {"npy_i64.npy", {AM_DTYPE_I64, 1, {4}, NULL, 32}},
      {"npy_0d.npy", {AM_DTYPE_F32, 0, {0}, NULL, 4}},
      {"npy_bool.npy", {AM_DTYPE_BOOL, 2, {2, 2}, NULL, 4}},
      {"npy_empty.npy", {AM_DTYPE_F32, 2, {0, 3}, NULL, 0}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    unsigned char want[512], got[512];
    char fix[512];
    snprintf(fix, sizeof fix, FIX "%s", cases[i].fixture);
    size_t nw = read_file(fix, want, sizeof want);
    am_tensor_t t = cases[i].t;
    t.data = want + nw - t.nbytes; /* numpy's own data bytes */
    const char *path = tmp_path("same.npy");
    cr_assert_eq(am_npy_write(ctx, path, &t), AM_STATUS_OK, "%s", am_last_error(ctx));
    size_t ng = read_file(path, got, sizeof got);
    cr_expect(ng == nw && memcmp(got, want, nw) == 0, "%s differs from numpy's",
              cases[i].fixture);
  }
}

Test(npy, writer_errors) {
  int resources = open_resources();
  float x[2] = {1, 2};
  am_tensor_t t = {.dtype = AM_DTYPE_F32, .ndim = 1, .shape = {3}, .data = x, .nbytes = 8};
  const char *path = tmp_path("w.npy");
  cr_expect_eq(am_npy_write(ctx, path, &t), AM_STATUS_INVALID_ARGUMENT);
  t.shape[0] = -2;
  cr_expect_eq(am_npy_write(ctx, path, &t), AM_STATUS_INVALID_ARGUMENT);
  t.shape[0] = 2;
  cr_expect_eq(am_npy_write(ctx, tmp_path("no/dir/w.npy"), &t), AM_STATUS_IO);
  cr_expect_not_null(strstr(am_last_error(ctx), "no/dir/w.npy"), "%s", am_last_error(ctx));
  cr_expect_neq(access(path, F_OK), 0);
  /* a .npy without its extension is recognised by its magic */
  cr_assert_eq(am_npy_write(ctx, path, &t), AM_STATUS_OK);
  const char *plain = tmp_path("plain");
  cr_assert_eq(rename(path, plain), 0);
  am_file_t *f;
  open_ok(plain, &f);
  cr_expect_str_eq(am_file_tensor_name(f, 0), "plain");
  am_file_close(f);
  cr_expect_eq(open_resources(), resources, "a descriptor or mapping leaked");
}
