/* file.h — the insides of am_file_t and the internal tensor-file functions:
 * safetensors reader (host/io/safetensors_read.c), npy reader (host/io/npy_read.c),
 * streaming safetensors writer (host/io/safetensors_write.c), npy writer (npy_write.c). */
#ifndef AM_IO_FILE_H
#define AM_IO_FILE_H

#include <stdint.h>

#include "attnmap.h"

struct am_file {
  char *path;
  void *map;        /* read-only mapping of the whole file (NULL when none) */
  size_t map_size;
  void *owned;      /* data converted to C order / little endian (npy), else NULL */
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

#endif
