/* safetensors_write.c — the streaming safetensors writer and am_safetensors_write.
 * Every tensor's shape is known up front, so the header (tensors in the given order,
 * contiguous data_offsets, "__metadata__" first when there is any, padded with spaces so
 * that 8+N is a multiple of 8, as the reference writer pads it) is written first, the
 * file is sized, and data goes to its place with pwrite in any order. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ctx.h"
#include "core/json_guard.h"
#include "io/file.h"

struct am_st_writer {
  am_ctx_t *ctx;
  char *path;
  int fd;
  int n;
  uint64_t *begin;  /* [n] offset of each tensor in the data section */
  uint64_t *nbytes; /* [n] */
  uint64_t data_start;
  am_status failed; /* the first failed put, reported again at close */
};

static am_status add_metadata(am_ctx_t *ctx, const char *path, json_t *root,
                              const char *const *meta, int nmeta) {
  json_t *m = json_object();
  if (!m || json_object_set_new(root, "__metadata__", m) != 0)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  for (int i = 0; i < nmeta; i++) {
    const char *key = meta[2 * i], *value = meta[2 * i + 1];
    if (!key || !value)
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: metadata pair %d has a NULL %s",
                     path, i, key ? "value" : "key");
    if (json_object_get(m, key))
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: metadata key %s appears twice",
                     path, key);
    json_t *v = json_string(value);
    if (!v || json_object_set_new(m, key, v) != 0)
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                     "%s: metadata key %.200s: key or value is not valid UTF-8", path, key);
  }
  return AM_STATUS_OK;
}

static json_t *make_entry(const am_tensor_spec_t *s, uint64_t begin, uint64_t end) {
  json_t *shape = json_array();
  for (int d = 0; shape && d < s->ndim; d++)
    if (json_array_append_new(shape, json_integer(s->shape[d])) != 0) {
      json_decref(shape);
      return NULL;
    }
  return json_pack("{s:s, s:o?, s:[I,I]}", "dtype", am_dtype_name(s->dtype), "shape", shape,
                   "data_offsets", (json_int_t)begin, (json_int_t)end);
}

/* Checks spec i and adds its entry at *offset, which it advances. */
static am_status add_tensor(am_st_writer_t *w, json_t *root, const am_tensor_spec_t *s,
                            int i, uint64_t *offset) {
  if (!s->name || !s->name[0])
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT, "%s: tensor %d has no name", w->path,
                   i);
  if (strcmp(s->name, "__metadata__") == 0)
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: tensor __metadata__: the name is reserved", w->path);
  if (json_object_get(root, s->name))
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT, "%s: tensor %.200s: duplicate name",
                   w->path, s->name);
  if (am_dtype_size(s->dtype) == 0)
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: tensor %.200s: unknown dtype %d", w->path, s->name, (int)s->dtype);
  int64_t bytes = am_tensor_byte_size(s->dtype, s->ndim, s->shape);
  if (bytes < 0 || (uint64_t)bytes > (uint64_t)INT64_MAX - *offset)
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: tensor %.200s: shape has a negative dimension, more than %d, or "
                   "overflows",
                   w->path, s->name, AM_MAX_DIMS);
  w->begin[i] = *offset;
  w->nbytes[i] = (uint64_t)bytes;
  *offset += (uint64_t)bytes;
  json_t *entry = make_entry(s, w->begin[i], *offset);
  if (!entry || json_object_set_new(root, s->name, entry) != 0)
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: tensor %.200s: name is not valid UTF-8 (or out of memory)", w->path,
                   s->name);
  return AM_STATUS_OK;
}

/* The padded header: 8-byte length, JSON, spaces. *total is the final file size. */
static am_status build_header(am_st_writer_t *w, const am_tensor_spec_t *specs,
                              const char *const *meta, int nmeta, char **buf, size_t *len,
                              uint64_t *total) {
  char *json = NULL;
  json_t *root = json_object();
  am_status st =
      root ? AM_STATUS_OK
           : am_fail(w->ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", w->path);
  if (st == AM_STATUS_OK && nmeta > 0)
    st = add_metadata(w->ctx, w->path, root, meta, nmeta);
  uint64_t offset = 0;
  for (int i = 0; st == AM_STATUS_OK && i < w->n; i++)
    st = add_tensor(w, root, &specs[i], i, &offset);
  if (st != AM_STATUS_OK)
    goto done;
  json = json_dumps(root, JSON_COMPACT);
  if (!json || am_json_take_failures() != 0) {
    st = am_fail(w->ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", w->path);
    goto done;
  }
  size_t n = strlen(json), padded = (n + 7) / 8 * 8;
  if (padded > AM_SAFETENSORS_MAX_HEADER || offset > (uint64_t)INT64_MAX - 8 - padded) {
    st = am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                 "%s: header or file would be too large", w->path);
    goto done;
  }
  *buf = malloc(8 + padded);
  if (!*buf) {
    st = am_fail(w->ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", w->path);
    goto done;
  }
  for (int i = 0; i < 8; i++)
    (*buf)[i] = (char)((uint64_t)padded >> (8 * i));
  memcpy(*buf + 8, json, n);
  memset(*buf + 8 + n, ' ', padded - n);
  *len = 8 + padded;
  w->data_start = 8 + padded;
  *total = w->data_start + offset;
done:
  free(json);
  json_decref(root);
  return st;
}

/* Reopens a file written by an earlier writer with the same specs and metadata: its
 * header must be byte-identical and its size the full size; nothing is truncated. */
static am_status writer_reopen(am_st_writer_t *w, const am_tensor_spec_t *specs,
                               const char *const *meta, int nmeta) {
  char *header = NULL, *old = NULL;
  size_t len = 0;
  uint64_t total = 0;
  struct stat sb;
  am_status st = build_header(w, specs, meta, nmeta, &header, &len, &total);
  if (st != AM_STATUS_OK)
    goto done;
  w->fd = open(w->path, O_RDWR | O_CLOEXEC);
  if (w->fd < 0 || fstat(w->fd, &sb) != 0) {
    st = am_fail(w->ctx, AM_STATUS_IO, "%s: cannot reopen: %s", w->path, strerror(errno));
    goto done;
  }
  old = malloc(len);
  if (!old || (uint64_t)sb.st_size != total || pread(w->fd, old, len, 0) != (ssize_t)len ||
      memcmp(old, header, len) != 0)
    st = am_fail(w->ctx, AM_STATUS_BAD_INPUT,
                 "%s: the partial file does not match this run's tensors; run without "
                 "--resume to start again",
                 w->path);
done:
  free(header);
  free(old);
  return st;
}

static am_status writer_start(am_st_writer_t *w, const am_tensor_spec_t *specs,
                              const char *const *meta, int nmeta) {
  char *header = NULL;
  size_t len = 0;
  uint64_t total = 0;
  am_status st = build_header(w, specs, meta, nmeta, &header, &len, &total);
  if (st != AM_STATUS_OK)
    goto done;
  w->fd = open(w->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (w->fd < 0) {
    st = am_fail(w->ctx, AM_STATUS_IO, "%s: cannot create: %s", w->path, strerror(errno));
    goto done;
  }
  st = am_io_pwrite_all(w->ctx, w->fd, w->path, header, len, 0);
  if (st != AM_STATUS_OK)
    goto done;
  int rc;
  do {
    rc = ftruncate(w->fd, (off_t)total);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0)
    st = am_fail(w->ctx, AM_STATUS_IO, "%s: cannot size the file to %llu bytes: %s",
                 w->path, (unsigned long long)total, strerror(errno));
done:
  free(header);
  return st;
}

static am_status writer_make(am_ctx_t *ctx, const char *path, const am_tensor_spec_t *specs,
                             int nspecs, const char *const *meta, int nmeta, int reopen,
                             am_st_writer_t **out) {
  if (!out)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_st_writer_open: out is NULL");
  *out = NULL;
  if (!path || nspecs < 0 || (nspecs > 0 && !specs) || nmeta < 0 || (nmeta > 0 && !meta))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_st_writer_open: bad arguments");
  am_status st = AM_STATUS_OUT_OF_MEMORY;
  am_st_writer_t *w = calloc(1, sizeof *w);
  if (!w)
    return am_fail(ctx, st, "%s: out of memory", path);
  w->ctx = ctx;
  w->fd = -1;
  w->n = nspecs;
  w->path = strdup(path);
  w->begin = calloc(nspecs ? (size_t)nspecs : 1, sizeof *w->begin);
  w->nbytes = calloc(nspecs ? (size_t)nspecs : 1, sizeof *w->nbytes);
  if (!w->path || !w->begin || !w->nbytes) {
    st = am_fail(ctx, st, "%s: out of memory", path);
    goto done;
  }
  st = reopen ? writer_reopen(w, specs, meta, nmeta) : writer_start(w, specs, meta, nmeta);
done:
  if (st != AM_STATUS_OK) {
    am_st_writer_close(w, 1);
    return st;
  }
  *out = w;
  return AM_STATUS_OK;
}

am_status am_st_writer_open(am_ctx_t *ctx, const char *path, const am_tensor_spec_t *specs,
                            int nspecs, const char *const *meta, int nmeta,
                            am_st_writer_t **out) {
  return writer_make(ctx, path, specs, nspecs, meta, nmeta, 0, out);
}

am_status am_st_writer_resume(am_ctx_t *ctx, const char *path,
                              const am_tensor_spec_t *specs, int nspecs,
                              const char *const *meta, int nmeta, am_st_writer_t **out) {
  return writer_make(ctx, path, specs, nspecs, meta, nmeta, 1, out);
}

am_status am_st_writer_sync(am_st_writer_t *w) {
  if (!w || w->failed != AM_STATUS_OK)
    return w ? w->failed : AM_STATUS_INVALID_ARGUMENT;
  if (fdatasync(w->fd) != 0)
    return am_fail(w->ctx, AM_STATUS_IO, "%s: cannot sync: %s", w->path, strerror(errno));
  return AM_STATUS_OK;
}

am_status am_st_writer_put(am_st_writer_t *w, int index, uint64_t offset, const void *data,
                           size_t nbytes) {
  if (!w)
    return AM_STATUS_INVALID_ARGUMENT;
  if (index < 0 || index >= w->n)
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT, "%s: no tensor %d (the file has %d)",
                   w->path, index, w->n);
  if (offset > w->nbytes[index] || nbytes > w->nbytes[index] - offset || (nbytes && !data))
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: tensor %d: %zu bytes at %llu do not fit its %llu bytes", w->path,
                   index, nbytes, (unsigned long long)offset,
                   (unsigned long long)w->nbytes[index]);
  am_status st = am_io_pwrite_all(w->ctx, w->fd, w->path, data, nbytes,
                                  w->data_start + w->begin[index] + offset);
  if (st != AM_STATUS_OK && w->failed == AM_STATUS_OK)
    w->failed = st;
  return st;
}

am_status am_st_writer_close(am_st_writer_t *w, int abandon) {
  if (!w)
    return AM_STATUS_OK;
  am_status st = AM_STATUS_OK;
  if (!abandon && w->failed != AM_STATUS_OK)
    st = am_fail(w->ctx, w->failed, "%s: incomplete: an earlier write failed", w->path);
  if (!abandon && st == AM_STATUS_OK && w->fd >= 0) {
    int rc;
    do {
      rc = fsync(w->fd);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0)
      st = am_fail(w->ctx, AM_STATUS_IO, "%s: cannot sync: %s", w->path, strerror(errno));
  }
  if (w->fd >= 0 && close(w->fd) != 0 && !abandon && st == AM_STATUS_OK)
    st = am_fail(w->ctx, AM_STATUS_IO, "%s: cannot close: %s", w->path, strerror(errno));
  free(w->path);
  free(w->begin);
  free(w->nbytes);
  free(w);
  return st;
}

static am_status write_all_tensors(am_ctx_t *ctx, const char *tmp,
                                   const am_named_tensor_t *tensors, int n,
                                   const char *const *meta, int nmeta) {
  am_st_writer_t *w = NULL;
  am_tensor_spec_t *specs = calloc(n ? (size_t)n : 1, sizeof *specs);
  am_status st = specs ? AM_STATUS_OK
                       : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", tmp);
  for (int i = 0; st == AM_STATUS_OK && i < n; i++) {
    const am_tensor_t *t = &tensors[i].tensor;
    int64_t bytes = am_tensor_byte_size(t->dtype, t->ndim, t->shape);
    if (bytes >= 0 && ((uint64_t)bytes != t->nbytes || (bytes && !t->data)))
      st = am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: tensor %.200s: %zu bytes of data, its shape needs %lld", tmp,
                   tensors[i].name ? tensors[i].name : "(null)", t->data ? t->nbytes : 0,
                   (long long)bytes);
    specs[i].name = tensors[i].name;
    specs[i].dtype = t->dtype;
    specs[i].ndim = t->ndim;
    if (t->ndim > 0 && t->ndim <= AM_MAX_DIMS)
      memcpy(specs[i].shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
  }
  if (st == AM_STATUS_OK)
    st = am_st_writer_open(ctx, tmp, specs, n, meta, nmeta, &w);
  for (int i = 0; st == AM_STATUS_OK && i < n; i++)
    st = am_st_writer_put(w, i, 0, tensors[i].tensor.data, tensors[i].tensor.nbytes);
  am_status closed = am_st_writer_close(w, st != AM_STATUS_OK);
  if (st == AM_STATUS_OK)
    st = closed;
  free(specs);
  return st;
}

am_status am_safetensors_write(am_ctx_t *ctx, const char *path,
                               const am_named_tensor_t *tensors, int ntensors,
                               const char *const *meta, int nmeta) {
  if (!path || ntensors < 0 || (ntensors > 0 && !tensors) || nmeta < 0 ||
      (nmeta > 0 && !meta))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_safetensors_write: bad arguments");
  char *tmp = am_io_temp_path(path);
  if (!tmp)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  am_status st = write_all_tensors(ctx, tmp, tensors, ntensors, meta, nmeta);
  if (st == AM_STATUS_OK)
    st = am_io_commit(ctx, tmp, path);
  else
    unlink(tmp);
  free(tmp);
  return st;
}
