/* faith_file.c — RUN/faithfulness.safetensors: the per-example scores of a faithfulness
 * run (docs/faithfulness.md, "Files"), written whole, read back for merges and checked
 * against the size and CRC-32C summary.json records and the section's N and metadata. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"
#include "io/file.h"
#include "pipeline/faith.h"
#include "pipeline/summary.h"

typedef struct slot {
  const char *name;
  size_t off; /* offsetof the row pointer in am_faith_t */
  int dims;   /* 1: [N], 2: [N,M], 3: [N,M,K], 4: [N,M,S] */
  am_dtype dtype;
} slot_t;

#define SLOT(n, field, d, t)                                                               \
  { "faithfulness." n, offsetof(am_faith_t, field), d, AM_DTYPE_##t }
static const slot_t slots[] = {
    SLOT("comprehensiveness", comp, 3, F32),
    SLOT("sufficiency", suff, 3, F32),
    SLOT("aopc_comprehensiveness", aopc_c, 2, F32),
    SLOT("aopc_sufficiency", aopc_s, 2, F32),
    SLOT("deletion", del, 4, F32),
    SLOT("insertion", ins, 4, F32),
    SLOT("deletion_area", del_area, 2, F32),
    SLOT("insertion_area", ins_area, 2, F32),
    SLOT("p_full", p_full, 1, F32),
    SLOT("target", target, 1, I32),
    SLOT("tokens", tokens, 1, I32),
};
#define NSLOTS ((int)(sizeof slots / sizeof slots[0]))

static void **field(const am_faith_t *f, int i) {
  return (void **)((char *)f + slots[i].off);
}

static am_tensor_t tensor_of(const am_faith_t *f, int i) {
  am_tensor_t t = {.dtype = slots[i].dtype, .ndim = slots[i].dims < 3 ? slots[i].dims : 3};
  t.shape[0] = f->N;
  t.shape[1] = f->M;
  t.shape[2] = slots[i].dims == 3 ? f->K : f->S;
  size_t n = 1;
  for (int d = 0; d < t.ndim; d++)
    n *= (size_t)t.shape[d];
  t.data = *field(f, i);
  t.nbytes = n * 4;
  return t;
}

am_status am_faith_file_write(am_ctx_t *ctx, const char *dir, const am_faith_t *f) {
  am_named_tensor_t ts[NSLOTS];
  for (int i = 0; i < NSLOTS; i++)
    ts[i] = (am_named_tensor_t){slots[i].name, tensor_of(f, i)};
  char *text = json_dumps(f->meta, JSON_COMPACT | JSON_SORT_KEYS);
  if (!text)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  const char *meta[2] = {AM_FAITH_META, text};
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, AM_FAITH_FILE);
  am_status st = am_safetensors_write(ctx, path, ts, NSLOTS, meta, 1);
  free(text);
  return st;
}

am_status am_faith_file_record(am_ctx_t *ctx, const char *dir, json_t *summary) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, AM_FAITH_FILE);
  json_t *rec = NULL;
  am_status st = am_summary_file_record(ctx, path, &rec);
  if (st != AM_STATUS_OK)
    return st;
  json_t *files = json_object_get(json_object_get(summary, "provenance"), "files");
  if (!json_is_object(files) || json_object_set_new(files, AM_FAITH_FILE, rec))
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory building summary.json");
  return AM_STATUS_OK;
}

/* The file is the one summary.json records (size and CRC-32C). */
static am_status check_record(am_ctx_t *ctx, const char *dir, const char *path,
                              const json_t *summary) {
  const json_t *want = json_object_get(
      json_object_get(json_object_get(summary, "provenance"), "files"), AM_FAITH_FILE);
  if (!json_is_string(json_object_get(want, "crc32c")) ||
      !json_is_integer(json_object_get(want, "bytes")))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s/summary.json: provenance.files.%s: no size and CRC-32C recorded",
                   dir, AM_FAITH_FILE);
  if (access(path, R_OK) != 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: %s", path, strerror(errno));
  json_t *have = NULL;
  am_status st = am_summary_file_record(ctx, path, &have);
  if (st == AM_STATUS_OK && !json_equal(have, want))
    st = am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: %lld bytes, CRC-32C %s, but %s/summary.json records %lld, %s: the file "
        "was changed",
        path, (long long)json_integer_value(json_object_get(have, "bytes")),
        json_string_value(json_object_get(have, "crc32c")), dir,
        (long long)json_integer_value(json_object_get(want, "bytes")),
        json_string_value(json_object_get(want, "crc32c")));
  json_decref(have);
  return st;
}

am_status am_faith_file_read(am_ctx_t *ctx, const char *dir, const json_t *summary,
                             int64_t N, am_faith_t *f) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, AM_FAITH_FILE);
  am_file_t *file = NULL;
  json_t *meta = NULL;
  am_status st = check_record(ctx, dir, path, summary);
  if (st == AM_STATUS_OK)
    st = am_file_open(ctx, path, &file);
  if (st == AM_STATUS_OK) {
    const char *text = am_file_metadata(file, AM_FAITH_META);
    meta = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    st = am_faith_meta_read(ctx, path, meta, NULL, 0, f);
  }
  if (st == AM_STATUS_OK) {
    f->N = N;
    st = am_faith_alloc(ctx, f);
  }
  for (int i = 0; i < NSLOTS && st == AM_STATUS_OK; i++) {
    am_tensor_t want = tensor_of(f, i);
    const am_tensor_t *t = am_file_find(file, slots[i].name);
    int ok =
        t && t->dtype == want.dtype && t->ndim == want.ndim && t->nbytes == want.nbytes;
    for (int d = 0; ok && d < want.ndim; d++)
      ok = t->shape[d] == want.shape[d];
    if (!ok)
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: missing or not %s [%lld,...] as the run's %lld examples "
                   "and metadata say",
                   path, slots[i].name, am_dtype_name(want.dtype), (long long)N,
                   (long long)N);
    else
      memcpy(*field(f, i), t->data, want.nbytes);
  }
  json_decref(meta);
  am_file_close(file);
  return st;
}
