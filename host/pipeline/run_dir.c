/* run_dir.c — run folders appear whole or not at all: everything is written under
 * "<run>.tmp-<pid>", synced, and renamed into place as the last step. */
#define _XOPEN_SOURCE 700
#include "pipeline/run_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ctx.h"

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void am_rmtree(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

am_status am_run_dir_check(am_ctx_t *ctx, const char *run_dir, int force) {
  struct stat sb;
  if (stat(run_dir, &sb) == 0 && !force)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: already exists (use --force to replace it)", run_dir);
  return AM_STATUS_OK;
}

am_status am_run_dir_begin(am_ctx_t *ctx, const char *run_dir, char *tmp, size_t len) {
  size_t n = strlen(run_dir);
  while (n > 1 && run_dir[n - 1] == '/')
    n--;
  snprintf(tmp, len, "%.*s.tmp-%ld", (int)n, run_dir, (long)getpid());
  return am_run_dir_make(ctx, tmp);
}

am_status am_run_dir_make(am_ctx_t *ctx, char *tmp) {
  am_rmtree(tmp);
  for (char *slash = strchr(tmp + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = '\0'; /* make missing parents, like mkdir -p */
    mkdir(tmp, 0777);
    *slash = '/';
  }
  if (mkdir(tmp, 0777) != 0)
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot create directory: %s", tmp,
                   strerror(errno));
  return AM_STATUS_OK;
}

static void sync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

am_status am_run_dir_publish(am_ctx_t *ctx, const char *tmp, const char *run_dir,
                             int force) {
  char old[4096];
  struct stat sb;
  int had_old = stat(run_dir, &sb) == 0;
  if (had_old && !force)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: already exists (use --force to replace it)", run_dir);
  sync_dir(tmp);
  if (had_old) {
    snprintf(old, sizeof old, "%s.old-%ld", tmp, (long)getpid());
    if (rename(run_dir, old) != 0)
      return am_fail(ctx, AM_STATUS_IO, "%s: cannot move the old run aside: %s", run_dir,
                     strerror(errno));
  }
  if (rename(tmp, run_dir) != 0) {
    int err = errno;
    if (had_old)
      rename(old, run_dir);
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot rename %s into place: %s", run_dir, tmp,
                   strerror(err));
  }
  if (had_old)
    am_rmtree(old);
  return AM_STATUS_OK;
}

am_status am_write_json(am_ctx_t *ctx, const char *path, json_t *doc) {
  char *text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
  if (!text)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: cannot serialise JSON", path);
  am_status st = AM_STATUS_OK;
  FILE *f = fopen(path, "w");
  if (!f) {
    st = am_fail(ctx, AM_STATUS_IO, "%s: cannot create: %s", path, strerror(errno));
    goto done;
  }
  size_t n = strlen(text);
  int bad = fwrite(text, 1, n, f) != n || fputc('\n', f) == EOF || fflush(f) != 0 ||
            fsync(fileno(f)) != 0;
  int err = errno;
  if (fclose(f) != 0 && !bad) {
    bad = 1;
    err = errno;
  }
  if (bad)
    st = am_fail(ctx, AM_STATUS_IO, "%s: write failed: %s", path, strerror(err));
done:
  free(text);
  return st;
}
