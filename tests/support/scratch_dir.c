/* scratch_dir.c — see scratch_dir.h. */
#include "support/scratch_dir.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

am_ctx_t *ctx;
char dir[64];
static char pathbuf[4][256];
static int pathnext;

void scratch_setup(const char *tag) {
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  snprintf(dir, sizeof dir, "/tmp/attnmap-%s-XXXXXX", tag);
  cr_assert_not_null(mkdtemp(dir));
}

void scratch_teardown(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') {
      char p[512];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  if (d)
    closedir(d);
  rmdir(dir);
  am_ctx_destroy(ctx);
  ctx = NULL;
}

const char *tmp_path(const char *name) {
  char *p = pathbuf[pathnext++ % 4];
  snprintf(p, sizeof pathbuf[0], "%s/%s", dir, name);
  return p;
}

int open_resources(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += e->d_name[0] != '.';
  if (d)
    closedir(d);
  FILE *m = fopen("/proc/self/maps", "r");
  char line[1024];
  while (m && fgets(line, sizeof line, m))
    n += strstr(line, "/attnmap-") != NULL || strstr(line, "/fixtures/io/") != NULL;
  if (m)
    fclose(m);
  return n;
}

int count_files(void) {
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    n += e->d_name[0] != '.';
  if (d)
    closedir(d);
  return n;
}

void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

size_t read_file(const char *path, unsigned char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}
