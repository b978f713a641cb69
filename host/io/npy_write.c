/* npy_write.c — writes one tensor as a .npy file the way numpy.save writes it: format
 * 1.0 (2.0 only when the header would not fit 1.0's 16-bit length), C order,
 * little-endian, the dict followed by numpy's spare spaces for growing the first axis,
 * padded with spaces and a final '\n' so that the data starts at a multiple of 64.
 * Atomic: written under PATH.tmp.<pid>, then renamed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"
#include "io/file.h"

#define NPY_ALIGN 64
#define NPY_GROWTH_AXIS_MAX_DIGITS 21 /* numpy.lib.format.GROWTH_AXIS_MAX_DIGITS */

static const char *npy_descr(am_dtype dtype) {
  switch (dtype) {
  case AM_DTYPE_F32:
    return "<f4";
  case AM_DTYPE_F16:
    return "<f2";
  case AM_DTYPE_F64:
    return "<f8";
  case AM_DTYPE_I8:
    return "|i1";
  case AM_DTYPE_I16:
    return "<i2";
  case AM_DTYPE_I32:
    return "<i4";
  case AM_DTYPE_I64:
    return "<i8";
  case AM_DTYPE_U8:
    return "|u1";
  case AM_DTYPE_U16:
    return "<u2";
  case AM_DTYPE_U32:
    return "<u4";
  case AM_DTYPE_U64:
    return "<u8";
  case AM_DTYPE_BOOL:
    return "|b1";
  default:
    return NULL; /* BF16, F8_*: numpy has no such type */
  }
}

/* The whole header (magic to '\n') into buf; its length, or 0 when it cannot fit. */
static size_t build_header(char *buf, size_t cap, const am_tensor_t *t) {
  char dict[512];
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                   npy_descr(t->dtype));
  for (int d = 0; d < t->ndim; d++)
    n += snprintf(dict + n, sizeof dict - (size_t)n, d ? ", %lld" : "%lld",
                  (long long)t->shape[d]);
  n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", t->ndim == 1 ? "," : "");
  if (t->ndim > 0) { /* repr(shape[0]) digits, as numpy counts them */
    int digits = snprintf(NULL, 0, "%lld", (long long)t->shape[0]);
    for (int k = digits; k < NPY_GROWTH_AXIS_MAX_DIGITS; k++)
      dict[n++] = ' ';
  }
  size_t hlen = (size_t)n + 1, prefix = 10;
  size_t pad = NPY_ALIGN - (prefix + hlen) % NPY_ALIGN;
  int major = 1;
  if (hlen + pad > 65535) {
    major = 2;
    prefix = 12;
    pad = NPY_ALIGN - (prefix + hlen) % NPY_ALIGN;
  }
  size_t total = prefix + hlen + pad;
  if (total > cap)
    return 0;
  uint32_t len = (uint32_t)(hlen + pad);
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (char)major;
  buf[7] = 0;
  for (size_t i = 0; i < prefix - 8; i++)
    buf[8 + i] = (char)(len >> (8 * i));
  memcpy(buf + prefix, dict, (size_t)n);
  memset(buf + prefix + n, ' ', pad);
  buf[total - 1] = '\n';
  return total;
}

static am_status write_file(am_ctx_t *ctx, const char *tmp, const char *header, size_t hlen,
                            const am_tensor_t *t) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
  am_status st = am_io_pwrite_all(ctx, fd, tmp, header, hlen, 0);
  if (st == AM_STATUS_OK)
    st = am_io_pwrite_all(ctx, fd, tmp, t->data, t->nbytes, hlen);
  if (st == AM_STATUS_OK) {
    int rc;
    do {
      rc = fsync(fd);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0)
      st = am_fail(ctx, AM_STATUS_IO, "%s: cannot sync: %s", tmp, strerror(errno));
  }
  if (close(fd) != 0 && st == AM_STATUS_OK)
    st = am_fail(ctx, AM_STATUS_IO, "%s: cannot close: %s", tmp, strerror(errno));
  return st;
}

am_status am_npy_write(am_ctx_t *ctx, const char *path, const am_tensor_t *t) {
  if (!path || !t)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_npy_write: path or tensor is NULL");
  if (am_dtype_size(t->dtype) == 0)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: unknown dtype %d", path,
                   (int)t->dtype);
  if (!npy_descr(t->dtype))
    return am_fail(ctx, AM_STATUS_UNSUPPORTED,
                   "%s: dtype %s cannot be stored in .npy (numpy has no such type); use "
                   ".safetensors",
                   path, am_dtype_name(t->dtype));
  int64_t bytes = am_tensor_byte_size(t->dtype, t->ndim, t->shape);
  if (bytes < 0)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: shape has a negative dimension, more than %d, or overflows", path,
                   AM_MAX_DIMS);
  if ((uint64_t)bytes != t->nbytes || (bytes > 0 && !t->data))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: %zu bytes of data, the shape needs %lld", path, t->nbytes,
                   (long long)bytes);
  char header[1024];
  size_t hlen = build_header(header, sizeof header, t);
  if (hlen == 0)
    return am_fail(ctx, AM_STATUS_INTERNAL, "%s: npy header does not fit", path);
  char *tmp = am_io_temp_path(path);
  if (!tmp)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  am_status st = write_file(ctx, tmp, header, hlen, t);
  if (st == AM_STATUS_OK)
    st = am_io_commit(ctx, tmp, path);
  else
    unlink(tmp);
  free(tmp);
  return st;
}
