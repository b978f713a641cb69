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
#include "core/json_guard.h"
#include "io/file.h"

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
  /* A report is what a person reads and may have shared: replacing the run would delete
   * it with the run (and a new run's report is not the old one), so --force stops here. */
  char report[4200];
  snprintf(report, sizeof report, "%s/report", run_dir);
  if (force && stat(report, &sb) == 0)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: holds the report of the run --force would replace; attnmap does not "
                   "delete reports: move it elsewhere (or remove it), then run again",
                   report);
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

/* Streamed to the file: a summary of tens of thousands of heads never exists twice in
 * memory (as the tree and as one string). A document built while an allocation failed may
 * lack values (core/json_guard.h) and is refused as out of memory. */
static int dump_json(FILE *f, void *doc) {
  if (json_dumpf(doc, f, JSON_INDENT(1) | JSON_SORT_KEYS) != 0 || fputc('\n', f) == EOF)
    return -1;
  if (am_json_take_failures() != 0) {
    errno = ENOMEM;
    return -1;
  }
  return 0;
}

am_status am_write_json(am_ctx_t *ctx, const char *path, json_t *doc) {
  return am_io_write_whole(ctx, path, dump_json, doc);
}
