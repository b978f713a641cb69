/* job_rows.c — one part of a distributed job (attnmap.h, am_job_rows): a process computes
 * examples [first, end) with the single-process pipeline (run.c) and writes their rows at
 * their offsets in "<RUN>.partial/examples.safetensors", which the coordinator made at its
 * full size. Its checkpoint is "<RUN>.partial/rows-<first>.json": the rows [first, done)
 * synced and their CRC-32C per tensor, so that a resume (with any number of processes)
 * trusts exactly the rows that were complete when a process was killed. Its last
 * checkpoint also holds the CRC-32C of the input bytes it read (checksum.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ctx.h"
#include "core/options.h"
#include "pipeline/run_state.h"

int am_job_record_name(const char *name) {
  if (strncmp(name, "rows-", 5) != 0)
    return 0;
  const char *d = name + 5;
  size_t k = strspn(d, "0123456789");
  if (k == 0 || strncmp(d + k, ".json", 5) != 0)
    return 0;
  d += k + 5; /* then nothing, or what a killed writer left: ".tmp", ".tmp.<pid>", ... */
  while (strncmp(d, ".tmp", 4) == 0) {
    d += 4;
    if ((*d == '.' || *d == '-') && d[1] >= '0' && d[1] <= '9')
      d += 1 + strspn(d + 1, "0123456789");
  }
  return *d == '\0';
}

void am_job_drop_records(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[4400];
  while (d && (e = readdir(d)))
    if (am_job_record_name(e->d_name)) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
  if (d)
    closedir(d);
}

am_status am_job_record(am_ctx_t *ctx, am_run_state_t *r, int64_t done) {
  am_status st = am_st_writer_sync(r->writer);
  if (st == AM_STATUS_OK)
    st = am_partial_extend_crc(ctx, &r->partial, &r->lay, done);
  if (st != AM_STATUS_OK)
    return st;
  json_t *doc = am_partial_checkpoint_json(&r->partial, &r->lay, done);
  if (!doc || json_object_set_new(doc, "first", json_integer((json_int_t)r->from)))
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  /* the part is complete: the CRC-32C of the input bytes it read, so that the coordinator
   * reads only the bytes no part read (headers, small tensors) */
  if (st == AM_STATUS_OK && done == r->to && r->checksums &&
      json_object_set_new(doc, "input_crc32c", am_checksums_to_json(&r->sums)))
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  char path[4400], tmp[4500];
  snprintf(path, sizeof path, "%s/rows-%lld.json", r->partial.dir, (long long)r->from);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (st == AM_STATUS_OK)
    st = am_write_json(ctx, tmp, doc);
  json_decref(doc);
  if (st == AM_STATUS_OK && rename(tmp, path) != 0)
    st = am_fail(ctx, AM_STATUS_IO, "%s: cannot rename: %s", tmp, strerror(errno));
  return st;
}

am_status am_job_rows(am_ctx_t *ctx, am_dataset_t *ds, const am_plan_t *plan,
                      const char *run_dir, const am_run_options_t *opts, int64_t begin,
                      int64_t end, am_job_poll_fn poll, void *user) {
  if (!ctx || !ds || !plan || !run_dir)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_job_rows: NULL argument");
  am_clear_error(ctx);
  if (begin < 0 || end > ds->N || begin > end)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "am_job_rows: examples [%lld, %lld) are not inside [0, %lld)",
                   (long long)begin, (long long)end, (long long)ds->N);
  if (begin == end)
    return AM_STATUS_OK;
  am_run_state_t *r = calloc(1, sizeof *r);
  am_status st = r ? AM_STATUS_OK : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st == AM_STATUS_OK && opts)
    st = am_options_check(ctx, AM_SCOPE_RUN, opts, NULL, 0);
  if (st == AM_STATUS_OK)
    st = am_layout_build(ctx, ds, plan, &r->lay);
  if (st == AM_STATUS_OK) {
    r->partial.lock_fd = -1; /* the coordinator holds the lock */
    am_partial_dir(r->partial.dir, sizeof r->partial.dir, run_dir);
    r->partial.crc = calloc((size_t)r->lay.nspecs + 1, sizeof *r->partial.crc);
    r->partial.crc_rows = begin;
    r->partial.inputs = json_array(); /* the coordinator's progress.json names them */
    if (!r->partial.crc || !r->partial.inputs)
      st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  }
  if (st == AM_STATUS_OK) /* the file the coordinator made: its header must be this run's */
    st = am_examples_writer_open(ctx, r->partial.dir, &r->lay, ds->model, 1, &r->writer);
  if (st == AM_STATUS_OK) {
    *r = (am_run_state_t){.lay = r->lay,
                          .writer = r->writer,
                          .partial = r->partial,
                          .from = begin,
                          .to = end,
                          .record = 1,
                          .poll = poll,
                          .poll_user = user,
                          .checksums = opts ? opts->checksums : 1};
    if (r->checksums) /* of the rows it reads, for the coordinator (am_job_record) */
      st = am_checksums_init(ctx, &r->sums, ds);
    if (st == AM_STATUS_OK)
      st = am_run_state_analyze(ctx, r, ds, opts);
  }
  if (st == AM_STATUS_OK || st == AM_STATUS_BAD_INPUT) { /* as am_run_analyze */
    am_status changed = am_run_inputs_unchanged(ctx, ds);
    st = changed != AM_STATUS_OK ? changed : st;
  }
  if (st == AM_STATUS_OK)
    st = am_job_record(ctx, r, end);
  if (r) {
    am_status closed = am_st_writer_close(r->writer, st != AM_STATUS_OK);
    st = st != AM_STATUS_OK ? st : closed;
    am_chunk_free(&r->chunk);
    am_chunk_free(&r->chunk2);
    free(r->partial.crc);
    json_decref(r->partial.inputs);
    am_checksums_free(&r->sums);
  }
  free(r);
  return st;
}
