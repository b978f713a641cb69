/* replace.c — see replace.h. A folder is attnmap's when it holds the marker attnmap writes
 * first (a summary.json with provenance.format for a run, an index.html titled "attnmap
 * report" for a report) and no name attnmap does not write there: a user's file put
 * inside an old run folder survives, because the folder is then refused whole. */
#define _XOPEN_SOURCE 700
#include "pipeline/replace.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ctx.h"
#include "dataset/dataset.h"
#include "io/file.h"
#include "pipeline/resume.h"

static const char *const run_names[] = {
    "summary.json", "examples.safetensors",     "report",
    "tokens.jsonl", "faithfulness.safetensors", NULL};
static const char *const report_names[] = {"index.html", "comparison.json", "img", NULL};
static const char *const partial_names[] = {"progress.json", "examples.safetensors",
                                            "summary.json", "tokens.jsonl", NULL};
static const char *const kind_word[] = {"a run folder", "a report folder",
                                        "a partial run folder"};

static int same_inode(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* 1 when dir is the folder (or file) at real, an absolute canonical path, or above it. */
static int is_or_above(const struct stat *dir, char *real) {
  for (;;) {
    struct stat sb;
    if (stat(real, &sb) == 0 && same_inode(&sb, dir))
      return 1;
    char *slash = strrchr(real, '/');
    if (!slash || slash == real) {
      if (real[1] == '\0')
        return 0;
      real[1] = '\0'; /* the root, last */
      continue;
    }
    *slash = '\0';
  }
}

/* 1 when out (stat'ed) is the input, or a folder above it or above its link. */
static int holds_input(const struct stat *out, const char *input) {
  char *real = realpath(input, NULL), dir[PATH_MAX + 1];
  int hit = real && is_or_above(out, real);
  free(real);
  /* the folder holding a symbolic link to the input: replacing it loses the link's name */
  snprintf(dir, sizeof dir, "%s", input);
  char *slash = strrchr(dir, '/');
  if (!hit && slash) {
    *slash = '\0';
    real = realpath(slash == dir ? "/" : dir, NULL);
    hit = real && is_or_above(out, real);
    free(real);
  }
  return hit;
}

static int listed(const char *name, const char *const *names) {
  for (; *names; names++)
    if (strcmp(name, *names) == 0)
      return 1;
  return 0;
}

/* NAME followed by one or more ".tmp", ".tmp.<pid>" or ".tmp-<pid>" of a listed NAME: a
 * file a killed writer left (host/io/posix.c, resume.c: "progress.json.tmp.tmp.8038"). */
static int temporary(const char *name, const char *const *names) {
  for (; *names; names++) {
    size_t k = strlen(*names);
    if (strncmp(name, *names, k) != 0 || strncmp(name + k, ".tmp", 4) != 0)
      continue;
    const char *d = name + k;
    while (strncmp(d, ".tmp", 4) == 0) {
      d += 4;
      if ((*d == '.' || *d == '-') && d[1] >= '0' && d[1] <= '9')
        d += 1 + strspn(d + 1, "0123456789");
    }
    if (*d == '\0')
      return 1;
  }
  return 0;
}

/* dir/name into buf; 0 when it does not fit. */
static int join(char *buf, size_t len, const char *dir, const char *name) {
  int n = snprintf(buf, len, "%s/%s", dir, name);
  return n >= 0 && (size_t)n < len;
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_marker(const char *dir, am_out_kind kind) {
  char path[PATH_MAX + 32];
  if (kind == AM_OUT_PARTIAL)
    return 1;
  struct stat sb;
  if (!join(path, sizeof path, dir, kind == AM_OUT_RUN ? "summary.json" : "index.html") ||
      lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
    return 0;
  if (kind == AM_OUT_REPORT) {
    char head[1024] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof head - 1, f) : 0;
    if (f)
      fclose(f);
    head[n] = '\0';
    return strncmp(head, "<!DOCTYPE html>", 15) == 0 &&
           strstr(head, "<title>attnmap report");
  }
  json_t *doc = json_load_file(path, 0, NULL);
  int ok = json_is_integer(json_object_get(json_object_get(doc, "provenance"), "format"));
  json_decref(doc);
  return ok;
}

#define IMG_KIND 3 /* a report's img/: PNG files only */

/* The first entry of dir that attnmap does not write in a folder of this kind (copied to
 * bad), or "" when there is none; -1 when dir cannot be read. */
static int stranger(const char *dir, int kind, char *bad, size_t len) {
  const char *const *names = kind == AM_OUT_RUN      ? run_names
                             : kind == AM_OUT_REPORT ? report_names
                                                     : partial_names;
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  bad[0] = '\0';
  struct dirent *e;
  char path[PATH_MAX + 300];
  while (!bad[0] && (e = readdir(d))) {
    const char *n = e->d_name;
    if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
      continue;
    struct stat sb;
    int ok = join(path, sizeof path, dir, n) && lstat(path, &sb) == 0 &&
             (kind == IMG_KIND ? has_suffix(n, ".png")
                               : listed(n, names) || temporary(n, names) ||
                                     (kind == AM_OUT_PARTIAL && am_job_record_name(n)));
    int is_dir = ok && S_ISDIR(sb.st_mode);
    if (ok && kind == AM_OUT_RUN && strcmp(n, "report") == 0)
      ok = is_dir && is_marker(path, AM_OUT_REPORT) &&
           stranger(path, AM_OUT_REPORT, bad, len) == 0 && !bad[0];
    else if (ok && kind == AM_OUT_REPORT && strcmp(n, "img") == 0)
      ok = is_dir && stranger(path, IMG_KIND, bad, len) == 0 && !bad[0];
    else
      ok = ok && S_ISREG(sb.st_mode); /* never a link, out of the folder or not */
    if (!ok && !bad[0])
      snprintf(bad, len, "%s", path);
  }
  closedir(d);
  return 0;
}

am_status am_out_check(am_ctx_t *ctx, const char *out, am_out_kind kind, int replace,
                       const am_out_inputs_t *inputs) {
  struct stat lsb, sb;
  if (lstat(out, &lsb) != 0)
    return AM_STATUS_OK; /* absent; other errors show when the folder is made */
  if (stat(out, &sb) == 0)
    for (int i = 0; inputs && i < inputs->n; i++)
      if (inputs->path[i] && holds_input(&sb, inputs->path[i]))
        return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                       "%s: %s the input %s; attnmap never replaces its inputs", out,
                       S_ISDIR(sb.st_mode) ? "is or holds" : "is", inputs->path[i]);
  if (!replace)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: already exists (use --force to replace it)", out);
  if (S_ISLNK(lsb.st_mode))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: is a symbolic link; attnmap replaces only %s it wrote", out,
                   kind_word[kind]);
  if (!S_ISDIR(lsb.st_mode) || !is_marker(out, kind))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: exists and is not %s attnmap wrote (no %s); not replacing it", out,
                   kind_word[kind],
                   kind == AM_OUT_RUN ? "summary.json" : "index.html of an attnmap report");
  char bad[PATH_MAX + 300];
  int rc = stranger(out, kind, bad, sizeof bad);
  if (rc != 0)
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot list: %s", out, strerror(errno));
  if (bad[0])
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: holds %s, which attnmap did not write there; not replacing %s", out,
                   bad, kind_word[kind]);
  return AM_STATUS_OK;
}

am_status am_out_inputs_of(am_ctx_t *ctx, const am_dataset_t *ds, am_out_inputs_t *in) {
  int n = 0;
  for (int s = 0; s < ds->nshards; s++)
    n += 1 + ds->shards[s].nfiles;
  const char **p = calloc((size_t)n + 1, sizeof *p);
  if (!p)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  n = 0;
  for (int s = 0; s < ds->nshards; s++) {
    p[n++] = ds->shards[s].path; /* a folder of .npy files is an input too */
    for (int f = 0; f < ds->shards[s].nfiles; f++)
      p[n++] = am_file_path(ds->shards[s].files[f]);
  }
  in->path = p;
  in->n = n;
  return AM_STATUS_OK;
}

void am_out_inputs_free(am_out_inputs_t *in) {
  free((void *)in->path);
  in->path = NULL;
  in->n = 0;
}

am_status am_out_outside(am_ctx_t *ctx, const char *out, const char *dir,
                         const char *advice) {
  char *real_dir = realpath(dir, NULL), probe[4096], *at = NULL;
  snprintf(probe, sizeof probe, "%s", out);
  while (real_dir && !(at = realpath(probe, NULL))) {
    char *slash = strrchr(probe, '/');
    if (!slash || slash == probe) {
      snprintf(probe, sizeof probe, "%s", slash == probe ? "/" : ".");
      at = realpath(probe, NULL);
      break;
    }
    *slash = '\0';
  }
  size_t n = real_dir ? strlen(real_dir) : 0;
  int inside =
      real_dir && at && strncmp(at, real_dir, n) == 0 && (at[n] == '\0' || at[n] == '/');
  free(real_dir);
  free(at);
  return inside ? am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                          "%s: inside the run folder %s, which is never modified; %s", out,
                          dir, advice)
                : AM_STATUS_OK;
}
