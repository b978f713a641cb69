/* resume.c — see resume.h. The checkpoint (progress.json) names the options, the inputs
 * (path, size, modification time), the number of complete examples and the CRC-32C of
 * each tensor's complete rows (checked before a resume trusts them); it is replaced
 * atomically after the rows it counts are synced, so a run killed at any point (kill -9)
 * resumes from its last checkpoint and finishes with the same bytes as an uninterrupted
 * run: rows are independent of chunking and the aggregates are replayed from the stored
 * rows in order. */
#include "pipeline/resume.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/ctx.h"
#include "pipeline/merge_rows.h"
#include "pipeline/run_dir.h"
#include "pipeline/summary.h"

static json_t *inputs_identity(const am_dataset_t *ds) {
  json_t *arr = json_array();
  for (int s = 0; s < ds->nshards; s++)
    for (int f = 0; f < ds->shards[s].nfiles; f++) {
      const char *path = am_file_path(ds->shards[s].files[f]);
      struct stat sb;
      int ok = stat(path, &sb) == 0;
      json_array_append_new(
          arr, json_pack("{s:s,s:I,s:I}", "path", path, "bytes",
                         (json_int_t)(ok ? sb.st_size : -1), "mtime_ns",
                         (json_int_t)(ok ? (int64_t)sb.st_mtim.tv_sec * 1000000000 +
                                               sb.st_mtim.tv_nsec
                                         : -1)));
    }
  return arr;
}

/* A finished run folder made from these inputs with these options: its summary.json
 * names the same options and the same files with the same sizes and modification times
 * (-1: no run there, 0: another run, 1: this one). */
int am_run_matches(const am_layout_t *lay, const am_dataset_t *ds, const char *run_dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/summary.json", run_dir);
  struct stat sb;
  if (stat(run_dir, &sb) != 0)
    return -1;
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
  json_t *prov = json_object_get(doc, "provenance"), *now_opts = am_plan_to_json(lay);
  json_t *was = json_object_get(prov, "inputs"), *now = inputs_identity(ds);
  int same = doc && json_equal(json_object_get(prov, "options"), now_opts) &&
             json_is_array(was) && json_array_size(was) == json_array_size(now);
  for (size_t i = 0; same && i < json_array_size(now); i++) {
    json_t *a = json_array_get(was, i), *b = json_array_get(now, i);
    const char *keys[] = {"path", "bytes", "mtime_ns"};
    for (int k = 0; k < 3; k++)
      same = same && json_object_get(a, keys[k]) &&
             json_equal(json_object_get(a, keys[k]), json_object_get(b, keys[k]));
  }
  json_decref(doc);
  json_decref(now_opts);
  json_decref(now);
  return same;
}

static json_t *rows_crc_json(const am_partial_t *p, const am_layout_t *lay) {
  json_t *arr = json_array();
  for (int i = 0; arr && p->crc && i < lay->nspecs; i++) {
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", p->crc[i]);
    json_array_append_new(arr, json_string(hex));
  }
  return arr;
}

json_t *am_partial_checkpoint_json(const am_partial_t *p, const am_layout_t *lay,
                                   int64_t done) {
  json_t *doc = json_pack(
      "{s:i,s:s,s:I,s:I,s:i,s:o,s:O,s:o}", "format", 2, "version", am_version(), "done",
      (json_int_t)done, "examples", (json_int_t)lay->N, "max_tokens", lay->T, "options",
      am_plan_to_json(lay), "inputs", p->inputs, "rows_crc32c", rows_crc_json(p, lay));
  if (doc && p->live) /* a live run: its batches' shape (compared) and state (not) */
    json_object_set(doc, "live", p->live);
  if (doc && p->live_state)
    json_object_set(doc, "live_state", p->live_state);
  return doc;
}

/* Extends p->crc over rows [p->crc_rows, to) of every tensor of the partial examples
 * file (page-cache reads of what the last checkpoint interval wrote). */
am_status am_partial_extend_crc(am_ctx_t *ctx, am_partial_t *p, const am_layout_t *lay,
                                int64_t to) {
  if (to <= p->crc_rows)
    return AM_STATUS_OK;
  char path[4200];
  snprintf(path, sizeof path, "%s/examples.safetensors", p->dir);
  am_file_t *f = NULL;
  am_status st = am_file_open(ctx, path, &f);
  for (int i = 0; st == AM_STATUS_OK && i < lay->nspecs; i++) {
    const am_tensor_t *t = am_file_find(f, lay->specs[i].name);
    if (!t || t->ndim < 1 || t->shape[0] != lay->N || to > lay->N) {
      st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: not the run's", path,
                   lay->specs[i].name);
      break;
    }
    size_t row = t->nbytes / (size_t)lay->N;
    p->crc[i] = am_crc32c(p->crc[i], (const char *)t->data + (size_t)p->crc_rows * row,
                          (size_t)(to - p->crc_rows) * row);
  }
  am_file_close(f);
  if (st == AM_STATUS_OK)
    p->crc_rows = to;
  return st;
}

/* The number of complete examples of a matching checkpoint, or -1: the options and inputs
 * must be these, and the rows it counts must still have the CRC-32C it recorded. */
static int64_t matching_done(am_ctx_t *ctx, am_partial_t *p, const am_layout_t *lay) {
  char path[4200];
  snprintf(path, sizeof path, "%s/progress.json", p->dir);
  json_t *old = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
  json_t *now = am_partial_checkpoint_json(p, lay, 0);
  json_t *crcs = json_incref(json_object_get(old, "rows_crc32c"));
  int64_t done = -1;
  if (old && now && json_is_integer(json_object_get(old, "done"))) {
    done = json_integer_value(json_object_get(old, "done"));
    json_object_del(old, "done");
    json_object_del(now, "done");
    json_object_del(old, "rows_crc32c");
    json_object_del(now, "rows_crc32c");
    json_object_del(old, "live_state");
    json_object_del(now, "live_state");
    if (!json_equal(old, now) || done < 0 || done > lay->N ||
        json_array_size(crcs) != (size_t)lay->nspecs)
      done = -1;
  }
  char keep[1024];
  snprintf(keep, sizeof keep, "%s",
           am_last_error(ctx)); /* a refused checkpoint is no error */
  if (done > 0 && am_partial_extend_crc(ctx, p, lay, done) != AM_STATUS_OK)
    done = -1;
  for (int i = 0; done > 0 && i < lay->nspecs; i++) {
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", p->crc[i]);
    const char *want = json_string_value(json_array_get(crcs, (size_t)i));
    if (!want || strcmp(want, hex) != 0)
      done = -1;
  }
  am_fail(ctx, AM_STATUS_OK, "%s", keep);
  if (done < 0) {
    memset(p->crc, 0, (size_t)lay->nspecs * sizeof *p->crc);
    p->crc_rows = 0;
  }
  json_decref(crcs);
  json_decref(old);
  json_decref(now);
  return done;
}

/* "<RUN>.partial.lock", held (flock) while this process owns the partial folder. */
static am_status lock_dir(am_ctx_t *ctx, am_partial_t *p) {
  char path[4200];
  snprintf(path, sizeof path, "%s.lock", p->dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    am_run_dir_make_parents(ctx, path); /* missing parents: make them */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
      return am_fail(ctx, AM_STATUS_IO, "%s: cannot create: %s", path, strerror(errno));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: another attnmap is writing this run folder", p->dir);
  }
  p->lock_fd = fd;
  return AM_STATUS_OK;
}

void am_partial_dir(char *buf, size_t len, const char *run_dir) {
  size_t n = strlen(run_dir);
  while (n > 1 && run_dir[n - 1] == '/')
    n--;
  snprintf(buf, len, "%.*s.partial", (int)n, run_dir);
}

am_status am_partial_begin(am_ctx_t *ctx, const char *run_dir, const am_layout_t *lay,
                           const am_dataset_t *ds, int resume, am_partial_t *p) {
  return am_partial_begin_live(ctx, run_dir, lay, ds, resume, NULL, p);
}

am_status am_partial_begin_live(am_ctx_t *ctx, const char *run_dir, const am_layout_t *lay,
                                const am_dataset_t *ds, int resume, json_t *live,
                                am_partial_t *p) {
  memset(p, 0, sizeof *p);
  p->lock_fd = -1;
  p->live = json_incref(live);
  am_partial_dir(p->dir, sizeof p->dir, run_dir);
  p->inputs = inputs_identity(ds);
  p->crc = calloc((size_t)lay->nspecs + 1, sizeof *p->crc);
  if (!p->crc)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = lock_dir(ctx, p);
  if (st != AM_STATUS_OK)
    return st;
  struct stat sb;
  if (resume && stat(p->dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    p->done = matching_done(ctx, p, lay);
    p->kept = p->done >= 0;
    if (p->kept)
      return AM_STATUS_OK; /* else options or inputs changed: start again */
  }
  p->done = 0;
  if (lstat(p->dir, &sb) == 0) { /* an old partial folder, if it is one attnmap wrote */
    am_out_inputs_t in = {0};
    st = am_out_inputs_of(ctx, ds, &in);
    if (st == AM_STATUS_OK)
      st = am_out_check(ctx, p->dir, AM_OUT_PARTIAL, 1, &in);
    am_out_inputs_free(&in);
    if (st != AM_STATUS_OK) { /* not ours: unlocked, so that the caller never removes it */
      close(p->lock_fd);
      p->lock_fd = -1;
      return st;
    }
    am_rmtree(p->dir);
  }
  return am_run_dir_make(ctx, p->dir);
}

am_status am_partial_checkpoint(am_ctx_t *ctx, am_partial_t *p, const am_layout_t *lay,
                                am_st_writer_t *w, int64_t done) {
  am_status st = am_st_writer_sync(w);
  if (st == AM_STATUS_OK)
    st = am_partial_extend_crc(ctx, p, lay, done);
  if (st != AM_STATUS_OK)
    return st;
  char path[4200], tmp[4300];
  snprintf(path, sizeof path, "%s/progress.json", p->dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  json_t *doc = am_partial_checkpoint_json(p, lay, done);
  st = doc ? am_write_json(ctx, tmp, doc) : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "oom");
  json_decref(doc);
  if (st == AM_STATUS_OK && rename(tmp, path) != 0)
    st = am_fail(ctx, AM_STATUS_IO, "%s: cannot rename: %s", tmp, strerror(errno));
  p->done = done;
  return st;
}

typedef struct replay_texts {
  const am_dataset_t *ds;
  int32_t *idx;
} replay_texts_t;

/* Token texts of global example `row`, as analyze_all gives them after each example. */
static am_status replay_row_texts(void *user, am_ctx_t *ctx, am_aggregates_t *a,
                                  int64_t row, const am_agg_row_t *r) {
  replay_texts_t *t = user;
  int s = 0;
  while (s + 1 < t->ds->nshards && t->ds->shards[s + 1].first <= row)
    s++;
  const am_shard_t *sh = &t->ds->shards[s];
  int64_t b = row - sh->first;
  int n = am_shard_valid_positions(sh, b, t->idx);
  am_status st = AM_STATUS_OK;
  for (int i = 0; st == AM_STATUS_OK && r->ids && i < n && i < r->n; i++)
    st = am_agg_set_text(ctx, a, r->ids[i], am_shard_token(sh, b, t->idx[i], i, n));
  return st;
}

am_status am_partial_replay(am_ctx_t *ctx, const am_partial_t *p, const am_layout_t *lay,
                            const am_dataset_t *ds, am_aggregates_t *agg) {
  if (p->done == 0)
    return AM_STATUS_OK;
  char path[4200];
  snprintf(path, sizeof path, "%s/examples.safetensors", p->dir);
  am_file_t *f = NULL;
  replay_texts_t texts = {ds, malloc(((size_t)ds->Tmax + 1) * sizeof(int32_t))};
  am_status st = texts.idx ? am_file_open(ctx, path, &f)
                           : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st == AM_STATUS_OK) {
    am_merge_part_t part = {f, NULL, p->done, lay->T, replay_row_texts, &texts};
    st = am_merge_aggregate(ctx, agg, lay, &part, 1);
  }
  am_file_close(f);
  free(texts.idx);
  return st;
}

void am_partial_end(am_partial_t *p, int complete) {
  if (p->lock_fd >= 0) {
    char path[4200];
    if (complete) { /* the folder is about to become the run: no bookkeeping in it */
      snprintf(path, sizeof path, "%s/progress.json", p->dir);
      unlink(path);
      am_job_drop_records(p->dir);
    }
    snprintf(path, sizeof path, "%s.lock", p->dir);
    unlink(path);
    close(p->lock_fd);
    p->lock_fd = -1;
  }
  json_decref(p->inputs);
  p->inputs = NULL;
  json_decref(p->live);
  json_decref(p->live_state);
  p->live = p->live_state = NULL;
  free(p->crc);
  p->crc = NULL;
}
