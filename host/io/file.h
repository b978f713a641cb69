/* file.h — the insides of am_file_t and the internal tensor-file functions:
 * safetensors reader (host/io/safetensors_read.c), npy reader (host/io/npy_read.c),
 * streaming safetensors writer (host/io/safetensors_write.c), npy writer (npy_write.c). */
#ifndef AM_IO_FILE_H
#define AM_IO_FILE_H

#include <stdint.h>
#include <stdio.h>

#include "attnmap.h"

struct am_file {
  char *path;
  void *map; /* read-only mapping of the whole file (NULL when none) */
  size_t map_size;
  uint64_t dev, ino; /* the mapped file's identity (0, 0 when not mapped) */
  uint64_t mtime_ns; /* its modification time when it was mapped */
  int guard;         /* its slot in host/io/sigbus.c, or -1 */
  void *owned;       /* data converted to C order / little endian (npy), else NULL */
  int ntensors;
  char **names;         /* [ntensors] */
  am_tensor_t *tensors; /* [ntensors]; data points into map or owned */
  int nmeta;
  char **meta_keys;   /* [nmeta] */
  char **meta_values; /* [nmeta] */
};

/* Largest safetensors header accepted (the reference implementation's limit). */
#define AM_SAFETENSORS_MAX_HEADER 100000000ull
/* Largest npy header accepted (numpy's own limit for safe loading). */
#define AM_NPY_MAX_HEADER 10000u

am_status am_safetensors_open(am_ctx_t *ctx, const char *path, am_file_t **out);
/* A .npy file becomes one tensor named after the file's name without ".npy".
 * C-order little-endian data is mapped, other layouts are converted into `owned`. */
am_status am_npy_open(am_ctx_t *ctx, const char *path, am_file_t **out);
/* The same checks on a file image held in memory (the fuzz harnesses' entry points;
 * path only names it in messages). The file object borrows buf: its tensors may point
 * into it, so buf must outlive the object, which then owns no mapping. */
am_status am_safetensors_parse(am_ctx_t *ctx, const char *path, const void *buf,
                               size_t size, am_file_t **out);
am_status am_npy_parse(am_ctx_t *ctx, const char *path, const void *buf, size_t size,
                       am_file_t **out);

/* Streaming safetensors writer: every tensor's shape is known up front, so the header
 * is written first and data is placed at its offset with pwrite, in any order. */
typedef struct am_tensor_spec {
  const char *name;
  am_dtype dtype;
  int ndim;
  int64_t shape[AM_MAX_DIMS];
} am_tensor_spec_t;

typedef struct am_st_writer am_st_writer_t;

/* Creates (truncates) path and writes the header. meta: nmeta key/value pairs. */
am_status am_st_writer_open(am_ctx_t *ctx, const char *path, const am_tensor_spec_t *specs,
                            int nspecs, const char *const *meta, int nmeta,
                            am_st_writer_t **out);
/* Reopens a file that am_st_writer_open made with the same specs and metadata (an
 * interrupted run): nothing is truncated; AM_STATUS_BAD_INPUT when it does not match. */
am_status am_st_writer_resume(am_ctx_t *ctx, const char *path,
                              const am_tensor_spec_t *specs, int nspecs,
                              const char *const *meta, int nmeta, am_st_writer_t **out);
/* Makes what was put so far durable (fdatasync). */
am_status am_st_writer_sync(am_st_writer_t *w);
/* Writes nbytes of tensor `index` starting at byte `offset` within that tensor. */
am_status am_st_writer_put(am_st_writer_t *w, int index, uint64_t offset, const void *data,
                           size_t nbytes);
/* Flushes and closes; the file is complete only when this returns AM_STATUS_OK.
 * am_st_writer_close(NULL) returns AM_STATUS_OK. abandon != 0 closes without syncing. */
am_status am_st_writer_close(am_st_writer_t *w, int abandon);

/* Byte size of a tensor of this dtype and shape; -1 on overflow or a negative dim. */
int64_t am_tensor_byte_size(am_dtype dtype, int ndim, const int64_t *shape);
/* Number of elements (product of shape); -1 on overflow. */
int64_t am_tensor_elements(const am_tensor_t *t);

/* ---- internal helpers (added with the I/O layer) --------------------------------- */

/* The safetensors dtype with this name ("F32"); AM_DTYPE_COUNT when unknown. */
am_dtype am_dtype_from_name(const char *name);

/* An empty file object for path with room for ntensors tensors (names NULL, tensors
 * zeroed) and no metadata; NULL when out of memory. Freed by am_file_close. */
am_file_t *am_file_alloc(const char *path, int ntensors);

/* host/io/posix.c — the system calls of the I/O layer.
 * Maps the whole regular file at path read-only (an empty file gives *map NULL and
 * *size 0). AM_STATUS_BAD_INPUT "PATH: cannot open: strerror" and the like. */
am_status am_io_map(am_ctx_t *ctx, const char *path, void **map, size_t *size);
/* The same, and id[0], id[1], id[2] = the file's device and inode numbers and its
 * modification time in nanoseconds. */
am_status am_io_map_id(am_ctx_t *ctx, const char *path, void **map, size_t *size,
                       uint64_t id[3]);
/* Fails (AM_STATUS_BAD_INPUT, "PATH: changed while being read: ...") when the file that f
 * maps has become shorter than the mapping since it was opened (touching the lost pages
 * would raise SIGBUS), or was written in place (its size or modification time differ:
 * the analysis would mix two versions). The pipeline calls it before reading each chunk. A
 * file replaced by rename or deleted keeps its old inode and mapping alive, and passes; so
 * does a file object that maps nothing (parsed from memory, converted npy data). A file
 * cut short while a chunk is read: its lost pages read as zeros (host/io/sigbus.c) and
 * this check fails from then on ("cut short while its pages were read"). */
am_status am_file_check_unchanged(am_ctx_t *ctx, const am_file_t *f);
/* host/io/sigbus.c — the mapped ranges a SIGBUS (the file cut short) may hit without
 * killing the process: the lost page reads as zeros and the file is marked. add returns
 * the range's slot (-1: unguarded, too many files mapped), remove forgets it before the
 * range is unmapped, hit says whether a lost page was read. */
int am_io_guard_add(const void *map, size_t size);
void am_io_guard_remove(int slot);
int am_io_guard_hit(int slot);

/* Writes all n bytes of buf at offset, retrying after EINTR and short writes;
 * AM_STATUS_IO naming path and strerror (ENOSPC, EFBIG, ...) on failure. */
am_status am_io_pwrite_all(am_ctx_t *ctx, int fd, const char *path, const void *buf,
                           size_t n, uint64_t offset);
/* "PATH.tmp.<pid>" (malloc'd, the caller frees); NULL when out of memory. */
char *am_io_temp_path(const char *path);
/* Renames the complete file tmp onto path and syncs the directory; on failure tmp is
 * unlinked and AM_STATUS_IO names both paths. */
am_status am_io_commit(am_ctx_t *ctx, const char *tmp, const char *path);
/* Writes path whole: write_fn fills a temporary file (then flushed and synced) that is
 * renamed into place. write_fn returns 0, or -1 with errno set (0 or ENOMEM: out of
 * memory). On failure nothing is left behind and the message names path. */
am_status am_io_write_whole(am_ctx_t *ctx, const char *path,
                            int (*write_fn)(FILE *f, void *arg), void *arg);

/* host/io/safetensors_header.c — the JSON header of a safetensors file, parsed and
 * checked entry by entry (layout checks are the reader's). */
typedef struct am_st_entry {
  char *name;
  am_dtype dtype;
  int ndim;
  int64_t shape[AM_MAX_DIMS];
  uint64_t begin, end; /* data_offsets, relative to the end of the header */
} am_st_entry_t;

typedef struct am_st_header {
  int nentries;
  am_st_entry_t *entries; /* in header order */
  int nmeta;
  char **meta_keys; /* [nmeta], in header order */
  char **meta_values;
} am_st_header_t;

/* text: the len header bytes (not NUL-terminated). On failure *out is empty. */
am_status am_st_header_parse(am_ctx_t *ctx, const char *path, const char *text, size_t len,
                             am_st_header_t *out);
void am_st_header_free(am_st_header_t *h);

/* host/io/npy_header.c — the Python-literal dict of a .npy header. */
typedef struct am_npy_header {
  am_dtype dtype;
  int swap;    /* 1: elements are big-endian and must be byte-swapped */
  int fortran; /* fortran_order */
  int ndim;
  int64_t shape[AM_MAX_DIMS];
} am_npy_header_t;

am_status am_npy_header_parse(am_ctx_t *ctx, const char *path, const char *text, size_t len,
                              am_npy_header_t *out);

#endif
