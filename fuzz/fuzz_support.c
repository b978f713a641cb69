/* fuzz_support.c — helpers shared by the libFuzzer harnesses (fuzz_support.h). */
#define _XOPEN_SOURCE 700
#include "fuzz_support.h"

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"

static am_ctx_t *the_ctx;
static char the_dir[128];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  if (ftw->level > 0)
    remove(path);
  return 0;
}

void fuzz_clear(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static void remove_dir(void) {
  if (the_dir[0]) {
    fuzz_clear(the_dir);
    rmdir(the_dir);
  }
}

am_ctx_t *fuzz_ctx(void) {
  if (!the_ctx) {
    am_ctx_options_t o = {.backend = "cpu", .threads = 1};
    char err[256];
    if (am_ctx_create(&o, &the_ctx, err, sizeof err) != AM_STATUS_OK) {
      fprintf(stderr, "fuzz: cannot make a context: %s\n", err);
      abort();
    }
  }
  return the_ctx;
}

const char *fuzz_dir(void) {
  if (!the_dir[0]) {
    struct stat sb;
    const char *base = getenv("ATTNMAP_FUZZ_TMP"); /* scripts/fuzz.sh removes it after */
    if (!base || !base[0])
      base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(the_dir, sizeof the_dir, "%s/attnmap-fuzz-%ld", base, (long)getpid());
    fuzz_clear(the_dir);
    if (mkdir(the_dir, 0700) != 0 && access(the_dir, W_OK) != 0) {
      perror(the_dir);
      abort();
    }
    atexit(remove_dir);
  }
  return the_dir;
}

static const uint8_t *find_sep(const uint8_t *p, size_t n) {
  for (size_t i = 0; i + FUZZ_SEP_LEN <= n; i++)
    if (p[i] == (uint8_t)FUZZ_SEP[0] && memcmp(p + i, FUZZ_SEP, FUZZ_SEP_LEN) == 0)
      return p + i;
  return NULL;
}

int fuzz_split(const uint8_t *data, size_t size, fuzz_part_t *parts, int max) {
  int n = 0;
  const uint8_t *p = data, *end = data + size;
  while (n < max - 1) {
    const uint8_t *s = find_sep(p, (size_t)(end - p));
    if (!s)
      break;
    parts[n++] = (fuzz_part_t){p, (size_t)(s - p)};
    p = s + FUZZ_SEP_LEN;
  }
  parts[n++] = (fuzz_part_t){p, (size_t)(end - p)};
  return n;
}

int fuzz_write(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  int bad = n && fwrite(data, 1, n, f) != n;
  return (fclose(f) != 0 || bad) ? -1 : 0;
}

unsigned fuzz_touch_file(const am_file_t *f) {
  unsigned sum = (unsigned)strlen(am_file_path(f));
  for (int i = 0; i < am_file_tensor_count(f); i++) {
    const am_tensor_t *t = am_file_tensor(f, i);
    const char *name = am_file_tensor_name(f, i);
    if (!t || !name || am_file_find(f, name) == NULL || am_dtype_name(t->dtype) == NULL ||
        t->ndim < 0 || t->ndim > AM_MAX_DIMS)
      abort();
    int64_t want = 1;
    for (int d = 0; d < t->ndim; d++)
      want *= t->shape[d]; /* checked by the parser: cannot overflow */
    if ((uint64_t)want * am_dtype_size(t->dtype) != t->nbytes)
      abort();
    const unsigned char *p = t->data;
    for (size_t k = 0; k < t->nbytes; k++)
      sum += p[k];
    sum += (unsigned)strlen(name);
  }
  for (int i = 0; i < am_file_metadata_count(f); i++) {
    const char *k = am_file_metadata_key(f, i);
    sum += (unsigned)strlen(k) + (unsigned)strlen(am_file_metadata(f, k));
  }
  return sum;
}

void fuzz_check_message(am_ctx_t *ctx, am_status st) {
  const char *msg = am_last_error(ctx);
  if (st == AM_STATUS_OK)
    return;
  if (!msg || !msg[0] || strchr(msg, '\n')) {
    fprintf(stderr, "fuzz: status %d with message [%s]\n", (int)st, msg ? msg : "(null)");
    abort();
  }
}

void fuzz_fix_checksum(const char *dir) {
  char path[600], hex[16];
  snprintf(path, sizeof path, "%s/examples.safetensors", dir);
  FILE *f = fopen(path, "rb");
  if (!f)
    return;
  uint32_t crc = 0;
  long long bytes = 0;
  unsigned char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    crc = am_crc32c(crc, buf, n);
    bytes += (long long)n;
  }
  fclose(f);
  snprintf(path, sizeof path, "%s/summary.json", dir);
  json_t *doc = json_load_file(path, 0, NULL);
  json_t *prov = json_object_get(doc, "provenance");
  if (json_is_object(prov)) {
    snprintf(hex, sizeof hex, "%08x", crc);
    json_object_set_new(prov, "files",
                        json_pack("{s:{s:I,s:s}}", "examples.safetensors", "bytes",
                                  (json_int_t)bytes, "crc32c", hex));
    json_dump_file(doc, path, JSON_COMPACT);
  }
  json_decref(doc);
}

void fuzz_put_part(const char *dir, const char *name, const fuzz_part_t *part) {
  char path[300];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  const uint8_t *p = part->size ? part->data + 1 : part->data;
  if (fuzz_write(path, p, part->size ? part->size - 1 : 0) != 0)
    abort();
}

int fuzz_exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}
