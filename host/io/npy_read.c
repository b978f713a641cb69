/* npy_read.c — reads a .npy file (format versions 1.0, 2.0 and 3.0) as one tensor named
 * after the file ("attentions.3" for attentions.3.npy). C-order little-endian data is
 * served from a mapping of the file (possibly unaligned); Fortran-order or big-endian
 * data is converted into an owned C-order little-endian buffer. The data must be exactly
 * shape times item size bytes: a truncated file or trailing bytes are errors. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/ctx.h"
#include "io/file.h"

/* "dir/attentions.3.npy" -> "attentions.3" (malloc'd). */
static char *tensor_name(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base);
  if (n > 4 && strcmp(base + n - 4, ".npy") == 0)
    n -= 4;
  return strndup(base, n);
}

/* dst: [elements * item] C order, little endian. src in the file's layout. */
static void convert(unsigned char *dst, const unsigned char *src, const am_npy_header_t *h,
                    int64_t elements, size_t item) {
  if (!h->fortran || h->ndim < 2) {
    memcpy(dst, src, (size_t)elements * item);
  } else {
    int64_t idx[AM_MAX_DIMS] = {0}, stride[AM_MAX_DIMS]; /* Fortran strides, in elements */
    stride[0] = 1;
    for (int d = 1; d < h->ndim; d++)
      stride[d] = stride[d - 1] * h->shape[d - 1];
    int64_t off = 0;
    for (int64_t k = 0; k < elements; k++) {
      memcpy(dst + (size_t)k * item, src + (size_t)off * item, item);
      for (int d = h->ndim - 1; d >= 0; d--) { /* next C-order index, last dim fastest */
        off += stride[d];
        if (++idx[d] < h->shape[d])
          break;
        off -= stride[d] * h->shape[d];
        idx[d] = 0;
      }
    }
  }
  if (h->swap)
    for (int64_t k = 0; k < elements; k++) {
      unsigned char *e = dst + (size_t)k * item;
      for (size_t a = 0, b = item - 1; a < b; a++, b--) {
        unsigned char t = e[a];
        e[a] = e[b];
        e[b] = t;
      }
    }
}

/* Checks the preamble; *hstart and *hlen locate the header dict. */
static am_status read_preamble(am_ctx_t *ctx, const char *path, const unsigned char *map,
                               size_t size, size_t *hstart, size_t *hlen) {
  if (size < 6 || memcmp(map, "\x93NUMPY", 6) != 0) {
    if (size < 6 && memcmp(map ? (const void *)map : "", "\x93NUMPY", size) == 0)
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: truncated: %zu bytes, no npy preamble",
                     path, size);
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: not a .npy file: bad magic", path);
  }
  if (size < 8)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: truncated: %zu bytes, no npy version",
                   path, size);
  unsigned major = map[6], minor = map[7];
  if (major < 1 || major > 3 || minor != 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: unsupported npy format version %u.%u",
                   path, major, minor);
  size_t lenbytes = major == 1 ? 2 : 4;
  if (size < 8 + lenbytes)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: truncated: %zu bytes, no npy header length", path, size);
  uint32_t n = 0;
  for (size_t i = lenbytes; i-- > 0;)
    n = n << 8 | map[8 + i];
  if (n > AM_NPY_MAX_HEADER)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: npy header length %u exceeds the limit of %u", path, (unsigned)n,
                   AM_NPY_MAX_HEADER);
  if (n > size - 8 - lenbytes)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: truncated: npy header length %u but only %zu bytes follow", path,
                   (unsigned)n, size - 8 - lenbytes);
  *hstart = 8 + lenbytes;
  *hlen = n;
  return AM_STATUS_OK;
}

static am_status check_data_size(am_ctx_t *ctx, const char *path, const am_npy_header_t *h,
                                 size_t avail, int64_t *bytes) {
  *bytes = am_tensor_byte_size(h->dtype, h->ndim, h->shape);
  if (*bytes < 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: npy shape overflows", path);
  if ((uint64_t)*bytes > avail)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: truncated: %zu data bytes, the shape and dtype %s need %lld", path,
                   avail, am_dtype_name(h->dtype), (long long)*bytes);
  if ((uint64_t)*bytes < avail)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: %llu trailing bytes after the data (%lld bytes expected)", path,
                   (unsigned long long)(avail - (uint64_t)*bytes), (long long)*bytes);
  return AM_STATUS_OK;
}

am_status am_npy_parse(am_ctx_t *ctx, const char *path, const void *buf, size_t size,
                       am_file_t **out) {
  const unsigned char *map = buf;
  size_t hstart = 0, hlen = 0;
  am_file_t *f = NULL;
  am_npy_header_t h;
  int64_t bytes = 0;
  *out = NULL;
  am_status st = read_preamble(ctx, path, map, size, &hstart, &hlen);
  if (st == AM_STATUS_OK)
    st = am_npy_header_parse(ctx, path, (const char *)map + hstart, hlen, &h);
  if (st == AM_STATUS_OK)
    st = check_data_size(ctx, path, &h, size - hstart - hlen, &bytes);
  if (st != AM_STATUS_OK)
    goto done;
  f = am_file_alloc(path, 1);
  if (f)
    f->names[0] = tensor_name(path);
  if (!f || !f->names[0]) {
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    goto done;
  }
  am_tensor_t *t = &f->tensors[0];
  t->dtype = h.dtype;
  t->ndim = h.ndim;
  memcpy(t->shape, h.shape, sizeof t->shape);
  t->nbytes = (size_t)bytes;
  const unsigned char *data = map + hstart + hlen;
  if (!h.fortran && !h.swap) {
    t->data = data; /* borrowed from buf */
  } else {
    f->owned = malloc(bytes ? (size_t)bytes : 1);
    if (!f->owned) {
      st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory (%lld bytes)", path,
                   (long long)bytes);
      goto done;
    }
    convert(f->owned, data, &h, bytes / (int64_t)am_dtype_size(h.dtype),
            am_dtype_size(h.dtype));
    t->data = f->owned;
  }
  *out = f;
  f = NULL;
done:
  am_file_close(f);
  return st;
}

am_status am_npy_open(am_ctx_t *ctx, const char *path, am_file_t **out) {
  unsigned char *map = NULL;
  size_t size = 0;
  uint64_t id[3];
  *out = NULL;
  am_status st = am_io_map_id(ctx, path, (void **)&map, &size, id);
  if (st == AM_STATUS_OK)
    st = am_npy_parse(ctx, path, map, size, out);
  if (st == AM_STATUS_OK && !(*out)->owned) {
    (*out)->map = map; /* the tensor's data lives in the mapping */
    (*out)->map_size = size;
    (*out)->dev = id[0];
    (*out)->ino = id[1];
    (*out)->mtime_ns = id[2];
    (*out)->guard = am_io_guard_add(map, size);
  } else if (map) {
    munmap(map, size); /* a failure, or the data was converted into `owned` */
  }
  return st;
}
