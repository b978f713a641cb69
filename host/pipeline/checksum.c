/* checksum.c — see checksum.h. Reading the file a second time with pread for its CRC cost
 * more than the whole analysis on the development machine (issue 16: 1.7 s of system
 * time copying 2.4 GB of page cache, against 0.28 s for the pass); the mapped pages cost
 * no copy, and a chunk's rows are checksummed just before the pass reads them. */
#include "pipeline/checksum.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/crc32c.h"
#include "core/ctx.h"
#include "io/file.h"
#include "pipeline/summary.h"

/* Largest piece one thread checksums at a time: small enough to spread a chunk over the
 * threads, large enough that combining costs nothing (~1 us per piece). */
#define PIECE (4u << 20)

am_status am_checksums_init(am_ctx_t *ctx, am_checksums_t *cs, const am_dataset_t *ds) {
  memset(cs, 0, sizeof *cs);
  size_t n = 0;
  for (int s = 0; s < ds->nshards; s++)
    n += (size_t)ds->shards[s].nfiles;
  cs->files = calloc(n + 1, sizeof *cs->files);
  cs->shard_file0 = calloc((size_t)ds->nshards + 1, sizeof(int));
  if (!cs->files || !cs->shard_file0) {
    am_checksums_free(cs);
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  for (int s = 0; s < ds->nshards; s++) {
    cs->shard_file0[s] = cs->nfiles;
    for (int f = 0; f < ds->shards[s].nfiles; f++)
      cs->files[cs->nfiles++] = ds->shards[s].files[f];
  }
  return AM_STATUS_OK;
}

void am_checksums_free(am_checksums_t *cs) {
  free(cs->files);
  free(cs->shard_file0);
  free(cs->pieces);
  memset(cs, 0, sizeof *cs);
}

/* Appends [off, off+len) of file k cut into PIECE-sized pieces (crc still to compute). */
/* Room for one more piece; -1 when out of memory. */
static int reserve(am_checksums_t *cs) {
  if (cs->npieces == cs->cap) {
    size_t cap = cs->cap ? 2 * cs->cap : 256;
    am_crc_piece_t *grown = realloc(cs->pieces, cap * sizeof *grown);
    if (!grown)
      return -1;
    cs->pieces = grown;
    cs->cap = cap;
  }
  return 0;
}

static int add_range(am_checksums_t *cs, int k, uint64_t off, uint64_t len) {
  for (uint64_t end = off + len; off < end; off += PIECE) {
    if (reserve(cs))
      return -1;
    uint64_t n = end - off < PIECE ? end - off : PIECE;
    cs->pieces[cs->npieces++] = (am_crc_piece_t){k, off, n, 0};
  }
  return 0;
}

/* The CRCs of pieces [from, npieces), on the context's threads. */
static void compute(const am_ctx_t *ctx, am_checksums_t *cs, size_t from) {
  int64_t n = (int64_t)(cs->npieces - from);
  uint64_t bytes = 0;
  for (size_t i = from; i < cs->npieces; i++)
    bytes += cs->pieces[i].len;
    /* below a piece's worth (~0.3 ms) waking the team costs more than it saves */
#pragma omp parallel for num_threads(ctx->threads) schedule(dynamic, 1) if (bytes > PIECE)
  for (int64_t i = 0; i < n; i++) {
    am_crc_piece_t *p = &cs->pieces[from + (size_t)i];
    const unsigned char *map = cs->files[p->file]->map;
    p->crc = am_crc32c(0, map + p->off, (size_t)p->len);
  }
}

/* The byte range of a tensor's data inside its file's mapping, or 0 when it lies outside
 * (converted npy data). */
static int in_map(const am_file_t *f, const am_tensor_t *t, uint64_t *off, uint64_t *len) {
  int64_t bytes = am_tensor_byte_size(t->dtype, t->ndim, t->shape);
  const unsigned char *map = f->map, *p = t->data;
  if (!map || bytes <= 0 || p < map || p - map > (ptrdiff_t)f->map_size ||
      (uint64_t)bytes > f->map_size - (uint64_t)(p - map))
    return 0;
  *off = (uint64_t)(p - map);
  *len = (uint64_t)bytes;
  return 1;
}

am_status am_checksums_rows(am_ctx_t *ctx, am_checksums_t *cs, const am_dataset_t *ds,
                            int s, int64_t row0, int64_t nex) {
  double t0 = am_now_seconds();
  const am_shard_t *sh = &ds->shards[s];
  size_t from = cs->npieces;
  uint64_t B = (uint64_t)sh->B;
  for (int f = 0; f < sh->nfiles && B > 0; f++) {
    const am_file_t *file = sh->files[f];
    int k = cs->shard_file0[s] + f;
    for (int i = 0; i < file->ntensors; i++) {
      const am_tensor_t *t = &file->tensors[i];
      uint64_t off, len;
      if (!in_map(file, t, &off, &len))
        continue;
      /* stacked [L,B,...] attentions or gradients: one range of rows per layer */
      int stacked = (sh->att.stacked && t == sh->att.layer[0]) ||
                    (sh->grad.stacked && sh->grad.layer && t == sh->grad.layer[0]);
      uint64_t groups = stacked ? (uint64_t)t->shape[0] : 1;
      if ((!stacked && (t->ndim < 1 || (uint64_t)t->shape[0] != B)) || len % (groups * B))
        continue; /* not per example: read whole at the end */
      uint64_t row = len / (groups * B);
      for (uint64_t g = 0; g < groups; g++)
        if (add_range(cs, k, off + (g * B + (uint64_t)row0) * row, (uint64_t)nex * row))
          return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    }
  }
  compute(ctx, cs, from);
  cs->seconds += am_now_seconds() - t0;
  return AM_STATUS_OK;
}

static int by_file_offset(const void *a, const void *b) {
  const am_crc_piece_t *x = a, *y = b;
  if (x->file != y->file)
    return x->file < y->file ? -1 : 1;
  return (x->off > y->off) - (x->off < y->off);
}

/* Adds the bytes of every mapped file that no piece covers (sorted pieces in [0, n)), and
 * drops every piece of a file whose pieces overlap (then read whole). */
static int add_gaps(am_checksums_t *cs, size_t n) {
  for (size_t i = 0, j; i <= n; i = j) {
    int k = i < n ? cs->pieces[i].file : cs->nfiles;
    for (int g = i == 0 ? 0 : cs->pieces[i - 1].file + 1; g < k; g++)
      if (cs->files[g]->map && add_range(cs, g, 0, cs->files[g]->map_size))
        return -1; /* files no piece touched */
    if (i == n)
      break;
    uint64_t pos = 0;
    int overlap = 0;
    for (j = i; j < n && cs->pieces[j].file == k; j++) {
      overlap |= cs->pieces[j].off < pos;
      if (cs->pieces[j].off > pos && add_range(cs, k, pos, cs->pieces[j].off - pos))
        return -1;
      pos = cs->pieces[j].off + cs->pieces[j].len;
    }
    if (overlap) { /* cannot happen for files the readers accepted; stay correct anyway */
      for (size_t q = i; q < j; q++)
        cs->pieces[q].len = 0;
      pos = 0;
    }
    if (pos < cs->files[k]->map_size && add_range(cs, k, pos, cs->files[k]->map_size - pos))
      return -1;
  }
  return 0;
}

/* pieces is NULL while no chunk has read anything (a run stopped early, a resume with all
 * rows done): qsort(NULL, 0, ...) is undefined behaviour, and UBSan says so */
static void sort_pieces(am_checksums_t *cs) {
  if (cs->npieces > 1)
    qsort(cs->pieces, cs->npieces, sizeof *cs->pieces, by_file_offset);
}

am_status am_checksums_finish(am_ctx_t *ctx, am_checksums_t *cs, uint32_t *crc) {
  double t0 = am_now_seconds();
  for (int k = 0; k < cs->nfiles; k++) {
    am_status st = am_file_check_unchanged(ctx, cs->files[k]);
    if (st != AM_STATUS_OK)
      return st;
  }
  sort_pieces(cs);
  size_t n = cs->npieces;
  if (add_gaps(cs, n))
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  compute(ctx, cs, n);
  /* the pages read at the end may have changed since the check above */
  for (int k = 0; k < cs->nfiles; k++) {
    am_status st = am_file_check_unchanged(ctx, cs->files[k]);
    if (st != AM_STATUS_OK)
      return st;
  }
  sort_pieces(cs);
  for (int k = 0; k < cs->nfiles; k++)
    crc[k] = 0;
  for (size_t i = 0; i < cs->npieces; i++) {
    const am_crc_piece_t *p = &cs->pieces[i];
    if (p->len > 0)
      crc[p->file] = am_crc32c_combine(crc[p->file], p->crc, p->len);
  }
  for (int k = 0; k < cs->nfiles; k++) {
    if (cs->files[k]->map || cs->files[k]->map_size != 0)
      continue;
    struct stat sb; /* no mapping: an empty file (CRC 0) or converted npy data */
    const char *path = am_file_path(cs->files[k]);
    am_status st = stat(path, &sb) == 0 && sb.st_size == 0
                       ? AM_STATUS_OK
                       : am_file_crc32c(ctx, path, &crc[k]);
    if (st != AM_STATUS_OK)
      return st;
  }
  cs->seconds += am_now_seconds() - t0;
  return AM_STATUS_OK;
}

json_t *am_checksums_to_json(am_checksums_t *cs) {
  sort_pieces(cs);
  json_t *arr = json_array();
  for (size_t i = 0, j; arr && i < cs->npieces; i = j) {
    am_crc_piece_t run = cs->pieces[i];
    for (j = i + 1; j < cs->npieces && cs->pieces[j].file == run.file &&
                    cs->pieces[j].off == run.off + run.len;
         j++) {
      run.crc = am_crc32c_combine(run.crc, cs->pieces[j].crc, cs->pieces[j].len);
      run.len += cs->pieces[j].len;
    }
    if (json_array_append_new(arr, json_pack("[i,I,I,I]", run.file, (json_int_t)run.off,
                                             (json_int_t)run.len, (json_int_t)run.crc))) {
      json_decref(arr);
      arr = NULL;
    }
  }
  return arr;
}

am_status am_checksums_add_json(am_ctx_t *ctx, am_checksums_t *cs, const json_t *pieces) {
  for (size_t i = 0; i < json_array_size(pieces); i++) {
    json_t *p = json_array_get(pieces, i);
    json_int_t k = json_integer_value(json_array_get(p, 0));
    json_int_t off = json_integer_value(json_array_get(p, 1));
    json_int_t len = json_integer_value(json_array_get(p, 2));
    json_int_t crc = json_integer_value(json_array_get(p, 3));
    if (json_array_size(p) != 4 || k < 0 || k >= cs->nfiles || off < 0 || len <= 0 ||
        crc < 0 || crc > 0xffffffffll || !cs->files[k]->map ||
        (uint64_t)off > cs->files[k]->map_size ||
        (uint64_t)len > cs->files[k]->map_size - (uint64_t)off)
      continue;
    if (reserve(cs))
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    cs->pieces[cs->npieces++] =
        (am_crc_piece_t){(int)k, (uint64_t)off, (uint64_t)len, (uint32_t)crc};
  }
  return AM_STATUS_OK;
}
