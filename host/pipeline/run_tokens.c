/* run_tokens.c — see run_tokens.h. */
#define _POSIX_C_SOURCE 200809L
#include "pipeline/run_tokens.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/ctx.h"
#include "pipeline/summary.h"

/* Lines in the first `bytes` bytes of f (rewound); -1 when the file is shorter. */
static int64_t count_lines(FILE *f, uint64_t bytes) {
  char buf[65536];
  uint64_t left = bytes;
  int64_t lines = 0;
  rewind(f);
  while (left > 0) {
    size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
    size_t got = fread(buf, 1, want, f);
    if (got == 0)
      return -1;
    for (size_t i = 0; i < got; i++)
      lines += buf[i] == '\n';
    left -= got;
  }
  return lines;
}

am_status am_tokens_open(am_ctx_t *ctx, am_tokens_out_t *t, const char *dir,
                         uint64_t keep_bytes, int64_t keep_lines) {
  memset(t, 0, sizeof *t);
  snprintf(t->path, sizeof t->path, "%s/%s", dir, AM_TOKENS_FILE);
  t->f = fopen(t->path, keep_lines > 0 ? "r+b" : "wb");
  if (!t->f)
    return am_fail(ctx, keep_lines > 0 ? AM_STATUS_BAD_INPUT : AM_STATUS_IO,
                   "%s: cannot open: %s", t->path, strerror(errno));
  if (keep_lines > 0) {
    int64_t lines = count_lines(t->f, keep_bytes);
    if (lines != keep_lines || fflush(t->f) != 0 ||
        ftruncate(fileno(t->f), (off_t)keep_bytes) != 0 ||
        fseeko(t->f, (off_t)keep_bytes, SEEK_SET) != 0) {
      fclose(t->f);
      t->f = NULL;
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: does not hold the %lld lines of the checkpoint in its first %llu "
                     "bytes",
                     t->path, (long long)keep_lines, (unsigned long long)keep_bytes);
    }
  }
  t->bytes = keep_lines > 0 ? keep_bytes : 0;
  return AM_STATUS_OK;
}

am_status am_tokens_write_chunk(am_ctx_t *ctx, am_tokens_out_t *t, const am_chunk_t *c) {
  for (int e = 0; e < c->nex; e++) {
    const int32_t *idx = c->idx + (size_t)e * (size_t)c->Tcap;
    json_t *row = json_array();
    for (int i = 0; row && i < c->n[e]; i++) {
      const char *s = am_shard_token(c->sh, c->row0 + e, idx[i], i, c->n[e]);
      json_array_append_new(row, json_string(s ? s : ""));
    }
    char *text = row ? json_dumps(row, JSON_COMPACT) : NULL;
    json_decref(row);
    if (!text)
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory writing %s", t->path);
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, t->f) == n && fputc('\n', t->f) != EOF;
    free(text);
    if (!ok)
      return am_fail(ctx, AM_STATUS_IO, "%s: write failed: %s", t->path, strerror(errno));
    t->bytes += n + 1;
  }
  return AM_STATUS_OK;
}

am_status am_tokens_sync(am_ctx_t *ctx, am_tokens_out_t *t) {
  if (!t->f)
    return AM_STATUS_OK;
  if (fflush(t->f) != 0 || fdatasync(fileno(t->f)) != 0)
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot sync: %s", t->path, strerror(errno));
  return AM_STATUS_OK;
}

am_status am_tokens_close(am_ctx_t *ctx, am_tokens_out_t *t, int sync) {
  if (!t->f)
    return AM_STATUS_OK;
  am_status st = sync ? am_tokens_sync(ctx, t) : AM_STATUS_OK;
  if (fclose(t->f) != 0 && st == AM_STATUS_OK && sync)
    st = am_fail(ctx, AM_STATUS_IO, "%s: cannot close: %s", t->path, strerror(errno));
  t->f = NULL;
  return st;
}

/* The next line of f parsed (an array of strings), or NULL. */
static json_t *next_line(FILE *f, char **buf, size_t *cap) {
  ssize_t got = getline(buf, cap, f);
  if (got <= 0)
    return NULL;
  json_t *row = json_loadb(*buf, (size_t)got, JSON_REJECT_DUPLICATES, NULL);
  if (!json_is_array(row)) {
    json_decref(row);
    return NULL;
  }
  return row;
}

am_status am_tokens_replay_row(void *user, am_ctx_t *ctx, am_aggregates_t *a, int64_t row,
                               const am_agg_row_t *r) {
  char *buf = NULL;
  size_t cap = 0;
  json_t *line = next_line(user, &buf, &cap);
  free(buf);
  am_status st =
      line ? AM_STATUS_OK
           : am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: line %lld: missing or not a JSON array",
                     AM_TOKENS_FILE, (long long)row + 1);
  for (int i = 0; st == AM_STATUS_OK && r->ids && i < r->n; i++)
    st = am_agg_set_text(ctx, a, r->ids[i], json_string_value(json_array_get(line, i)));
  json_decref(line);
  return st;
}

/* Line-by-line check of the file against the run's lengths. */
static am_status check_lines(am_ctx_t *ctx, const am_run_t *rf, const char *path) {
  const am_tensor_t *len = am_file_find(rf->examples, "lengths");
  FILE *f = fopen(path, "rb");
  if (!f || !len)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: %s", path,
                   f ? "no lengths in the examples file" : strerror(errno));
  char *buf = NULL;
  size_t cap = 0;
  am_status st = AM_STATUS_OK;
  for (int64_t i = 0; st == AM_STATUS_OK && i < rf->lay.N; i++) {
    int32_t n;
    memcpy(&n, (const char *)len->data + 4 * i, 4);
    json_t *row = next_line(f, &buf, &cap);
    int ok = row && json_array_size(row) == (size_t)n;
    for (size_t k = 0; ok && k < json_array_size(row); k++)
      ok = json_is_string(json_array_get(row, k));
    if (!ok)
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: line %lld: expected a JSON array of the example's %d token strings",
                   path, (long long)i + 1, (int)n);
    json_decref(row);
  }
  if (st == AM_STATUS_OK && getline(&buf, &cap, f) > 0)
    st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: more lines than the run's %lld examples",
                 path, (long long)rf->lay.N);
  free(buf);
  fclose(f);
  return st;
}

am_status am_run_tokens_check(am_ctx_t *ctx, const am_run_t *rf) {
  char path[4200], have[16];
  snprintf(path, sizeof path, "%s/%s", rf->dir, AM_TOKENS_FILE);
  const json_t *rec = json_object_get(
      json_object_get(json_object_get(rf->summary, "provenance"), "files"), AM_TOKENS_FILE);
  struct stat sb;
  int exists = lstat(path, &sb) == 0;
  if (!rec && !exists)
    return AM_STATUS_OK;
  const char *want = json_string_value(json_object_get(rec, "crc32c"));
  const json_t *bytes = json_object_get(rec, "bytes");
  if (!exists || !want || !json_is_integer(bytes))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: %s, but %s/summary.json %s: the file and the summary are not one "
                   "run's",
                   path, exists ? "present" : "missing", rf->dir,
                   rec ? "records it" : "does not record it (provenance.files)");
  uint32_t crc = 0;
  am_status st =
      (json_int_t)sb.st_size == json_integer_value(bytes)
          ? am_file_crc32c(ctx, path, &crc)
          : am_fail(ctx, AM_STATUS_BAD_INPUT,
                    "%s: %lld bytes, but %s/summary.json records %lld", path,
                    (long long)sb.st_size, rf->dir, (long long)json_integer_value(bytes));
  snprintf(have, sizeof have, "%08x", crc);
  if (st == AM_STATUS_OK && strcmp(have, want) != 0)
    st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s: CRC-32C %s, but %s/summary.json records %.16s: the file was changed",
                 path, have, rf->dir, want);
  return st == AM_STATUS_OK ? check_lines(ctx, rf, path) : st;
}

am_status am_run_tokens_load(am_ctx_t *ctx, const char *dir, json_t **out) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, AM_TOKENS_FILE);
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return AM_STATUS_OK;
  json_t *rows = json_array();
  char *buf = NULL;
  size_t cap = 0;
  json_t *row;
  while (rows && (row = next_line(f, &buf, &cap)))
    json_array_append_new(rows, row);
  free(buf);
  fclose(f);
  if (!rows)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory reading %s", path);
  *out = rows;
  return AM_STATUS_OK;
}
