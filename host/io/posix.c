/* posix.c — the system calls of the tensor I/O layer: mapping a whole file read-only,
 * writing every byte of a buffer, and committing a temporary file by rename(2). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ctx.h"
#include "io/file.h"

am_status am_io_map(am_ctx_t *ctx, const char *path, void **map, size_t *size) {
  uint64_t id[3];
  return am_io_map_id(ctx, path, map, size, id);
}

am_status am_io_map_id(am_ctx_t *ctx, const char *path, void **map, size_t *size,
                       uint64_t id[3]) {
  am_status st = AM_STATUS_OK;
  *map = NULL;
  *size = 0;
  id[0] = id[1] = id[2] = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
  if (fd < 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: %s", path, strerror(errno));
    goto done;
  }
  if (!S_ISREG(sb.st_mode)) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: not a regular file", path);
    goto done;
  }
  id[0] = (uint64_t)sb.st_dev;
  id[1] = (uint64_t)sb.st_ino;
  id[2] = (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec;
  if (sb.st_size == 0)
    goto done; /* mmap refuses length 0; the caller reports the file as truncated */
  if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: file too large to map", path);
    goto done;
  }
  void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) {
    st = am_fail(ctx, AM_STATUS_IO, "%s: cannot map: %s", path, strerror(errno));
    goto done;
  }
  *map = p;
  *size = (size_t)sb.st_size;
done:
  close(fd);
  return st;
}

am_status am_io_pwrite_all(am_ctx_t *ctx, int fd, const char *path, const void *buf,
                           size_t n, uint64_t offset) {
  const unsigned char *p = buf;
  while (n > 0) {
    size_t chunk = n > (size_t)1 << 30 ? (size_t)1 << 30 : n;
    if (offset > (uint64_t)INT64_MAX - chunk)
      return am_fail(ctx, AM_STATUS_IO, "%s: cannot write: offset too large", path);
    ssize_t put = pwrite(fd, p, chunk, (off_t)offset);
    if (put < 0) {
      if (errno == EINTR)
        continue;
      return am_fail(ctx, AM_STATUS_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    if (put == 0)
      return am_fail(ctx, AM_STATUS_IO, "%s: cannot write: no progress", path);
    p += put;
    n -= (size_t)put;
    offset += (uint64_t)put;
  }
  return AM_STATUS_OK;
}

char *am_io_temp_path(const char *path) {
  size_t len = strlen(path) + 32;
  char *tmp = malloc(len);
  if (tmp)
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
  return tmp;
}

/* Best effort: a failure here means the rename may not survive a crash, not that the
 * file is wrong, so it is not reported. */
static void sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir =
      slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir)
    return;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

am_status am_io_commit(am_ctx_t *ctx, const char *tmp, const char *path) {
  if (rename(tmp, path) != 0) {
    int err = errno;
    unlink(tmp);
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot rename %s into place: %s", path, tmp,
                   strerror(err));
  }
  sync_parent_dir(path);
  return AM_STATUS_OK;
}

am_status am_io_write_whole(am_ctx_t *ctx, const char *path,
                            int (*write_fn)(FILE *f, void *arg), void *arg) {
  char *tmp = am_io_temp_path(path);
  if (!tmp)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    am_status st =
        am_fail(ctx, AM_STATUS_IO, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return st;
  }
  errno = 0;
  int bad = write_fn(f, arg) != 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
  int err = errno;
  if (fclose(f) != 0 && !bad) {
    bad = 1;
    err = errno;
  }
  am_status st = AM_STATUS_OK;
  if (!bad) {
    st = am_io_commit(ctx, tmp, path);
  } else {
    unlink(tmp);
    st = err == 0 || err == ENOMEM
             ? am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path)
             : am_fail(ctx, AM_STATUS_IO, "%s: write failed: %s", path, strerror(err));
  }
  free(tmp);
  return st;
}

am_status am_file_check_unchanged(am_ctx_t *ctx, const am_file_t *f) {
  struct stat sb;
  if (f && am_io_guard_hit(f->guard))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: changed while being read: cut short while its pages were read",
                   f->path);
  if (!f || !f->map || stat(f->path, &sb) != 0)
    return AM_STATUS_OK; /* deleted: the mapping keeps the old inode */
  if ((uint64_t)sb.st_dev != f->dev || (uint64_t)sb.st_ino != f->ino)
    return AM_STATUS_OK; /* replaced by another file: the mapping still holds the old one */
  if ((uint64_t)sb.st_size < (uint64_t)f->map_size)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: changed while being read: %llu bytes now, %llu when it was opened",
                   f->path, (unsigned long long)sb.st_size,
                   (unsigned long long)f->map_size);
  /* written in place (same inode): the pages read so far and those still to come may hold
   * different versions, and the checksum would describe neither */
  uint64_t mtime = (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec;
  if (mtime != f->mtime_ns || (uint64_t)sb.st_size != (uint64_t)f->map_size)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: changed while being read: modified since it was opened", f->path);
  return AM_STATUS_OK;
}
