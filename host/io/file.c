/* file.c — the tensor-file object: opening by extension or magic bytes, the accessors,
 * closing, and the byte-size arithmetic the readers and writers share. */
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/ctx.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "attnmap's tensor I/O assumes a little-endian host"
#endif

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* 1: npy magic, 0: not npy, -1: unreadable (the reader then reports why). */
static int sniff_npy(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
  if (fd < 0)
    return -1;
  char magic[6];
  ssize_t got;
  do {
    got = pread(fd, magic, sizeof magic, 0);
  } while (got < 0 && errno == EINTR);
  close(fd);
  return got == (ssize_t)sizeof magic && memcmp(magic, "\x93NUMPY", 6) == 0;
}

am_status am_file_open(am_ctx_t *ctx, const char *path, am_file_t **out) {
  if (!out)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_file_open: out is NULL");
  *out = NULL;
  if (!path)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_file_open: path is NULL");
  if (has_suffix(path, ".safetensors"))
    return am_safetensors_open(ctx, path, out);
  if (has_suffix(path, ".npy"))
    return am_npy_open(ctx, path, out);
  if (sniff_npy(path) == 1)
    return am_npy_open(ctx, path, out);
  return am_safetensors_open(ctx, path, out);
}

am_file_t *am_file_alloc(const char *path, int ntensors) {
  am_file_t *f = calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->path = strdup(path);
  f->ntensors = ntensors;
  f->guard = -1;
  size_t n = ntensors > 0 ? (size_t)ntensors : 1;
  f->names = calloc(n, sizeof *f->names);
  f->tensors = calloc(n, sizeof *f->tensors);
  if (!f->path || !f->names || !f->tensors) {
    am_file_close(f);
    return NULL;
  }
  return f;
}

void am_file_close(am_file_t *file) {
  if (!file)
    return;
  am_io_guard_remove(file->guard);
  if (file->map)
    munmap(file->map, file->map_size);
  free(file->owned);
  if (file->names)
    for (int i = 0; i < file->ntensors; i++)
      free(file->names[i]);
  free(file->names);
  free(file->tensors);
  for (int i = 0; i < file->nmeta; i++) {
    if (file->meta_keys)
      free(file->meta_keys[i]);
    if (file->meta_values)
      free(file->meta_values[i]);
  }
  free(file->meta_keys);
  free(file->meta_values);
  free(file->path);
  free(file);
}

const char *am_file_path(const am_file_t *f) { return f ? f->path : NULL; }
int am_file_tensor_count(const am_file_t *f) { return f ? f->ntensors : 0; }

const char *am_file_tensor_name(const am_file_t *f, int i) {
  return f && i >= 0 && i < f->ntensors ? f->names[i] : NULL;
}

const am_tensor_t *am_file_tensor(const am_file_t *f, int i) {
  return f && i >= 0 && i < f->ntensors ? &f->tensors[i] : NULL;
}

const am_tensor_t *am_file_find(const am_file_t *f, const char *name) {
  if (!f || !name)
    return NULL;
  for (int i = 0; i < f->ntensors; i++)
    if (strcmp(f->names[i], name) == 0)
      return &f->tensors[i];
  return NULL;
}

int am_file_metadata_count(const am_file_t *f) { return f ? f->nmeta : 0; }

const char *am_file_metadata_key(const am_file_t *f, int i) {
  return f && i >= 0 && i < f->nmeta ? f->meta_keys[i] : NULL;
}

const char *am_file_metadata(const am_file_t *f, const char *key) {
  if (!f || !key)
    return NULL;
  for (int i = 0; i < f->nmeta; i++)
    if (strcmp(f->meta_keys[i], key) == 0)
      return f->meta_values[i];
  return NULL;
}

am_dtype am_dtype_from_name(const char *name) {
  if (!name)
    return AM_DTYPE_COUNT;
#define AM_DTYPE_MATCH_(id, value, text, size)                                             \
  if (strcmp(name, text) == 0)                                                             \
    return AM_DTYPE_##id;
  AM_DTYPE_LIST(AM_DTYPE_MATCH_)
#undef AM_DTYPE_MATCH_
  return AM_DTYPE_COUNT;
}

int64_t am_tensor_byte_size(am_dtype dtype, int ndim, const int64_t *shape) {
  size_t size = am_dtype_size(dtype);
  if (size == 0 || ndim < 0 || ndim > AM_MAX_DIMS || (ndim > 0 && !shape))
    return -1;
  /* elements first, then bytes: the reference implementation's order of overflow checks */
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || __builtin_mul_overflow(n, shape[d], &n))
      return -1;
  }
  if (__builtin_mul_overflow(n, (int64_t)size, &n))
    return -1;
  return n;
}

int64_t am_tensor_elements(const am_tensor_t *t) {
  if (!t || t->ndim < 0 || t->ndim > AM_MAX_DIMS)
    return -1;
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] < 0 || __builtin_mul_overflow(n, t->shape[d], &n))
      return -1;
  }
  return n;
}
