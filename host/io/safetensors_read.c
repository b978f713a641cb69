/* safetensors_read.c — maps a .safetensors file and checks it as the reference Rust
 * implementation does: an 8-byte little-endian header length N <= 100,000,000, a file of
 * at least 8+N bytes, the header (safetensors_header.c), and tensors that, sorted by
 * data offsets, tile the data section exactly: from 0, no gaps, no overlaps, no trailing
 * bytes, each one's byte count equal to its shape times its dtype size. Tensor data is
 * served from the mapping and may be unaligned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/ctx.h"
#include "io/file.h"

static int compare_entries(const void *a, const void *b) {
  const am_st_entry_t *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return strcmp(x->name, y->name);
}

static void format_shape(char *buf, size_t len, const am_st_entry_t *e) {
  size_t used = (size_t)snprintf(buf, len, "[");
  for (int d = 0; d < e->ndim && used < len; d++)
    used += (size_t)snprintf(buf + used, len - used, d ? ",%lld" : "%lld",
                             (long long)e->shape[d]);
  if (used < len)
    snprintf(buf + used, len - used, "]");
}

/* Checks one entry (sorted order) against the data section and its predecessor. */
static am_status check_entry(am_ctx_t *ctx, const char *path, const am_st_entry_t *e,
                             const am_st_entry_t *prev, uint64_t data_size) {
  char shape[256];
  unsigned long long b = e->begin, en = e->end;
  int64_t need = am_tensor_byte_size(e->dtype, e->ndim, e->shape);
  if (need < 0) {
    format_shape(shape, sizeof shape, e);
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %.200s: shape %s of %s overflows",
                   path, e->name, shape, am_dtype_name(e->dtype));
  }
  if (e->end > data_size)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %.200s: data_offsets [%llu,%llu] out of bounds: the data "
                   "section has %llu bytes",
                   path, e->name, b, en, (unsigned long long)data_size);
  if (e->end - e->begin != (uint64_t)need) {
    format_shape(shape, sizeof shape, e);
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensor %.200s: data_offsets [%llu,%llu] hold %llu bytes but shape %s "
        "of %s needs %lld",
        path, e->name, b, en, en - b, shape, am_dtype_name(e->dtype), (long long)need);
  }
  uint64_t expected = prev ? prev->end : 0;
  if (e->begin < expected)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %.200s: data_offsets [%llu,%llu] overlap tensor %.200s "
                   "[%llu,%llu]",
                   path, e->name, b, en, prev->name, (unsigned long long)prev->begin,
                   (unsigned long long)prev->end);
  if (e->begin > expected)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %.200s: data_offsets [%llu,%llu] leave a gap of %llu bytes "
                   "after %s%.200s",
                   path, e->name, b, en, (unsigned long long)(e->begin - expected),
                   prev ? "tensor " : "the start of the data section",
                   prev ? prev->name : "");
  return AM_STATUS_OK;
}

static am_status check_layout(am_ctx_t *ctx, const char *path, am_st_header_t *h,
                              uint64_t data_size) {
  if (h->nentries > 1)
    qsort(h->entries, (size_t)h->nentries, sizeof *h->entries, compare_entries);
  for (int i = 0; i < h->nentries; i++) {
    am_status st =
        check_entry(ctx, path, &h->entries[i], i ? &h->entries[i - 1] : NULL, data_size);
    if (st != AM_STATUS_OK)
      return st;
  }
  uint64_t end = h->nentries ? h->entries[h->nentries - 1].end : 0;
  if (end != data_size)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: %llu trailing bytes after the last tensor (tensors end at %llu, the "
        "data section has %llu bytes)",
        path, (unsigned long long)(data_size - end), (unsigned long long)end,
        (unsigned long long)data_size);
  return AM_STATUS_OK;
}

/* Moves the checked entries and metadata of h into a new file object over map. */
static am_file_t *build_file(const char *path, am_st_header_t *h,
                             const unsigned char *data) {
  am_file_t *f = am_file_alloc(path, h->nentries);
  if (!f)
    return NULL;
  for (int i = 0; i < h->nentries; i++) {
    am_st_entry_t *e = &h->entries[i];
    am_tensor_t *t = &f->tensors[i];
    f->names[i] = e->name;
    e->name = NULL;
    t->dtype = e->dtype;
    t->ndim = e->ndim;
    memcpy(t->shape, e->shape, sizeof t->shape);
    t->data = data + e->begin;
    t->nbytes = (size_t)(e->end - e->begin);
  }
  f->nmeta = h->nmeta;
  f->meta_keys = h->meta_keys;
  f->meta_values = h->meta_values;
  h->nmeta = 0;
  h->meta_keys = h->meta_values = NULL;
  return f;
}

am_status am_safetensors_parse(am_ctx_t *ctx, const char *path, const void *buf,
                               size_t size, am_file_t **out) {
  am_st_header_t h = {0};
  const unsigned char *map = buf;
  am_file_t *f = NULL;
  am_status st = AM_STATUS_OK;
  *out = NULL;
  if (size < 8) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s: truncated: %zu bytes, shorter than the 8-byte header length", path,
                 size);
    goto done;
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--)
    n = n << 8 | map[i];
  if (n > AM_SAFETENSORS_MAX_HEADER) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s: header length %llu exceeds the limit of %llu", path,
                 (unsigned long long)n, AM_SAFETENSORS_MAX_HEADER);
    goto done;
  }
  if (n > size - 8) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s: truncated: header length %llu but only %zu bytes follow it", path,
                 (unsigned long long)n, size - 8);
    goto done;
  }
  st = am_st_header_parse(ctx, path, (const char *)map + 8, (size_t)n, &h);
  if (st != AM_STATUS_OK)
    goto done;
  st = check_layout(ctx, path, &h, size - 8 - n);
  if (st != AM_STATUS_OK)
    goto done;
  f = build_file(path, &h, map + 8 + n);
  if (!f) {
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    goto done;
  }
  *out = f;
done:
  am_st_header_free(&h);
  return st;
}

am_status am_safetensors_open(am_ctx_t *ctx, const char *path, am_file_t **out) {
  unsigned char *map = NULL;
  size_t size = 0;
  uint64_t id[3];
  *out = NULL;
  am_status st = am_io_map_id(ctx, path, (void **)&map, &size, id);
  if (st == AM_STATUS_OK)
    st = am_safetensors_parse(ctx, path, map, size, out);
  if (st == AM_STATUS_OK) {
    (*out)->map = map; /* the file object now owns the mapping */
    (*out)->map_size = size;
    (*out)->dev = id[0];
    (*out)->ino = id[1];
    (*out)->mtime_ns = id[2];
    (*out)->guard = am_io_guard_add(map, size);
  } else if (map) {
    munmap(map, size);
  }
  return st;
}
