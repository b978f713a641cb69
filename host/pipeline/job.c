/* job.c — the coordinator of a distributed run (attnmap.h, am_job_*; docs/cluster.md).
 * It prepares "<RUN>.partial" as am_run_analyze does (lock, checks, the examples file at
 * its full size), hands out ranges of examples, and at the end aggregates every stored row
 * in input order, one example at a time, exactly as a single process does while it runs
 * (the replay of --resume): the aggregates are sequential Welford moments and sums, whose
 * bits depend on the order, so no tree reduction could give the single-process bits. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/ctx.h"
#include "core/json_guard.h"
#include "pipeline/run_state.h"

struct am_job {
  am_ctx_t *ctx;
  am_dataset_t *ds;
  am_run_options_t opts;
  char run_dir[4096];
  am_run_state_t r;
  int64_t *done; /* [2 * ndone] complete examples: sorted, disjoint [begin, end) */
  int ndone;
  double t0;
};

/* 1 when the record names rows [*first, *to) of this run whose CRC-32C it holds. */
static int record_valid(am_ctx_t *ctx, am_run_state_t *r, json_t *doc, int64_t *first,
                        int64_t *to) {
  json_t *now = am_partial_checkpoint_json(&r->partial, &r->lay, 0);
  json_t *f = json_object_get(doc, "first"), *d = json_object_get(doc, "done");
  json_t *crcs = json_object_get(doc, "rows_crc32c");
  int ok = now && json_is_integer(f) && json_is_integer(d) &&
           json_array_size(crcs) == (size_t)r->lay.nspecs;
  const char *keys[] = {"format", "examples", "max_tokens", "options"};
  for (int k = 0; ok && k < 4; k++)
    ok = json_equal(json_object_get(doc, keys[k]), json_object_get(now, keys[k]));
  json_decref(now);
  *first = ok ? json_integer_value(f) : 0;
  *to = ok ? json_integer_value(d) : 0;
  ok = ok && *first >= 0 && *first < *to && *to <= r->lay.N;
  am_partial_t p = {.crc = ok ? calloc((size_t)r->lay.nspecs + 1, sizeof(uint32_t)) : NULL,
                    .crc_rows = *first};
  snprintf(p.dir, sizeof p.dir, "%s", r->partial.dir);
  ok = ok && p.crc && am_partial_extend_crc(ctx, &p, &r->lay, *to) == AM_STATUS_OK;
  for (int i = 0; ok && i < r->lay.nspecs; i++) {
    char hex[16];
    snprintf(hex, sizeof hex, "%08x", p.crc[i]);
    const char *want = json_string_value(json_array_get(crcs, (size_t)i));
    ok = want && strcmp(want, hex) == 0;
  }
  free(p.crc);
  return ok;
}

static int by_begin(const void *a, const void *b) {
  int64_t x = ((const int64_t *)a)[0], y = ((const int64_t *)b)[0];
  return (x > y) - (x < y);
}

/* job->done: the checkpoint's first rows, and the rows every valid part record names
 * (an invalid one is removed: the folder is ours, locked). Sorted and merged. With
 * pieces, the input CRC-32C pieces of the records join job->r.sums. */
static am_status read_done(am_ctx_t *ctx, am_job_t *job, int pieces) {
  am_run_state_t *r = &job->r;
  int cap = 16, n = 0;
  int64_t *iv = malloc(2 * (size_t)cap * sizeof *iv);
  if (!iv)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (r->partial.done > 0) {
    iv[0] = 0;
    iv[1] = r->partial.done;
    n = 1;
  }
  char keep[1024], path[4400];
  snprintf(keep, sizeof keep, "%s", am_last_error(ctx)); /* a refused record is no error */
  DIR *d = opendir(r->partial.dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (!am_job_record_name(e->d_name) || strstr(e->d_name, ".tmp"))
      continue;
    snprintf(path, sizeof path, "%s/%s", r->partial.dir, e->d_name);
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    int64_t first, to;
    if (!doc || !record_valid(ctx, r, doc, &first, &to)) {
      unlink(path);
    } else {
      if (n == cap) {
        int64_t *grown = realloc(iv, 4 * (size_t)cap * sizeof *iv);
        if (!grown) {
          json_decref(doc);
          break;
        }
        iv = grown;
        cap *= 2;
      }
      iv[2 * n] = first;
      iv[2 * n + 1] = to;
      n++;
      if (pieces && r->checksums &&
          am_checksums_add_json(ctx, &r->sums, json_object_get(doc, "input_crc32c")) !=
              AM_STATUS_OK) {
        json_decref(doc);
        break;
      }
    }
    json_decref(doc);
  }
  if (d)
    closedir(d);
  am_fail(ctx, AM_STATUS_OK, "%s", keep);
  qsort(iv, (size_t)n, 2 * sizeof *iv, by_begin);
  int m = 0;
  for (int i = 0; i < n; i++) {
    if (m > 0 && iv[2 * i] <= iv[2 * m - 1]) {
      if (iv[2 * i + 1] > iv[2 * m - 1])
        iv[2 * m - 1] = iv[2 * i + 1];
    } else {
      iv[2 * m] = iv[2 * i];
      iv[2 * m + 1] = iv[2 * i + 1];
      m++;
    }
  }
  free(job->done);
  job->done = iv;
  job->ndone = m;
  return AM_STATUS_OK;
}

am_status am_job_open(am_ctx_t *ctx, am_dataset_t *ds, const am_plan_t *plan,
                      const char *run_dir, const am_run_options_t *opts, am_job_t **out) {
  if (!out)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_job_open: out is NULL");
  *out = NULL;
  if (!ctx || !ds || !plan || !run_dir)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_job_open: NULL argument");
  am_clear_error(ctx);
  am_json_take_failures();
  am_job_t *job = calloc(1, sizeof *job);
  if (!job)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  job->ctx = ctx;
  job->ds = ds;
  job->t0 = am_now_seconds();
  if (opts)
    job->opts = *opts;
  else
    am_run_options_init(&job->opts);
  snprintf(job->run_dir, sizeof job->run_dir, "%s", run_dir);
  int finished = 0;
  am_status st = am_run_state_begin(ctx, &job->r, ds, plan, run_dir, &job->opts, &finished);
  if (st == AM_STATUS_OK && finished) {
    am_run_state_free(&job->r, st);
    free(job);
    return AM_STATUS_OK;
  }
  if (st == AM_STATUS_OK) /* resumable from now on, whatever part is killed */
    st = am_partial_checkpoint(ctx, &job->r.partial, &job->r.lay, job->r.writer,
                               job->r.partial.done);
  if (st == AM_STATUS_OK)
    st = read_done(ctx, job, 0);
  if (st == AM_STATUS_OK) { /* the parts write through their own descriptors */
    st = am_st_writer_close(job->r.writer, 0);
    job->r.writer = NULL;
  }
  if (st != AM_STATUS_OK) {
    am_job_close(job, st);
    return st;
  }
  *out = job;
  return AM_STATUS_OK;
}

/* The input bytes of example e: its shard's bytes over its examples (at least 1). */
static uint64_t weight(const am_dataset_t *ds, int s) {
  uint64_t w = ds->shards[s].B > 0 ? ds->shards[s].bytes / (uint64_t)ds->shards[s].B : 1;
  return w > 0 ? w : 1;
}

/* The example at which the pending examples' cumulative weight reaches target (the
 * first such example), walking the gaps of done in order; N when none. */
static int64_t cut_at(const am_job_t *job, uint64_t target) {
  const am_dataset_t *ds = job->ds;
  uint64_t cum = 0;
  int64_t pos = 0;
  for (int i = 0; i <= job->ndone; i++) {
    int64_t gap_end = i < job->ndone ? job->done[2 * i] : ds->N;
    for (int s = 0; s < ds->nshards && pos < gap_end; s++) {
      int64_t lo = ds->shards[s].first, hi = lo + ds->shards[s].B;
      lo = lo > pos ? lo : pos;
      hi = hi < gap_end ? hi : gap_end;
      if (lo >= hi)
        continue;
      uint64_t w = weight(ds, s), m = (uint64_t)(hi - lo);
      if (cum + m * w >= target)
        return lo + (int64_t)((target - cum + w - 1) / w);
      cum += m * w;
      pos = hi;
    }
    pos = i < job->ndone ? job->done[2 * i + 1] : ds->N;
  }
  return ds->N;
}

int am_job_split(const am_job_t *job, int nparts, int part, int64_t *ranges, int cap) {
  if (!job || nparts < 1 || part < 0 || part >= nparts || cap < 0 || (cap && !ranges))
    return -1;
  uint64_t total = 0;
  int64_t pos = 0;
  for (int i = 0; i <= job->ndone; i++) { /* the pending examples' weight */
    int64_t gap_end = i < job->ndone ? job->done[2 * i] : job->ds->N;
    for (int s = 0; s < job->ds->nshards; s++) {
      int64_t lo = job->ds->shards[s].first, hi = lo + job->ds->shards[s].B;
      lo = lo > pos ? lo : pos;
      hi = hi < gap_end ? hi : gap_end;
      if (lo < hi)
        total += (uint64_t)(hi - lo) * weight(job->ds, s);
    }
    pos = i < job->ndone ? job->done[2 * i + 1] : job->ds->N;
  }
  uint64_t n = (uint64_t)nparts, k = (uint64_t)part;
  uint64_t t0 = total / n * k + total % n * k / n;
  uint64_t t1 = total / n * (k + 1) + total % n * (k + 1) / n;
  int64_t a = part == 0 ? 0 : cut_at(job, t0 + 1), b = cut_at(job, t1 + 1);
  if (part == nparts - 1)
    b = job->ds->N;
  int count = 0;
  pos = 0;
  for (int i = 0; i <= job->ndone && a < b; i++) { /* the gaps inside [a, b) */
    int64_t lo = pos > a ? pos : a, hi = i < job->ndone ? job->done[2 * i] : job->ds->N;
    hi = hi < b ? hi : b;
    if (lo < hi) {
      if (count < cap) {
        ranges[2 * count] = lo;
        ranges[2 * count + 1] = hi;
      }
      count++;
    }
    pos = i < job->ndone ? job->done[2 * i + 1] : job->ds->N;
  }
  return count;
}

am_status am_job_finish(am_job_t *job, const char *provenance_json) {
  if (!job)
    return AM_STATUS_INVALID_ARGUMENT;
  am_ctx_t *ctx = job->ctx;
  am_run_state_t *r = &job->r;
  am_status st = AM_STATUS_OK;
  if (provenance_json) {
    json_error_t err;
    r->provenance = json_loads(provenance_json, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(r->provenance))
      st = am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "am_job_finish: provenance is not a JSON object: %s", err.text);
  }
  if (st == AM_STATUS_OK)
    st = read_done(ctx, job, 1);
  if (st == AM_STATUS_OK &&
      (job->ndone != 1 || job->done[0] != 0 || job->done[1] != r->lay.N))
    st = am_fail(ctx, AM_STATUS_INTERNAL,
                 "%s: examples are missing after every part finished (%d ranges complete)",
                 r->partial.dir, job->ndone);
  if (st == AM_STATUS_OK)
    st = am_examples_writer_open(ctx, r->partial.dir, &r->lay, job->ds->model, 1,
                                 &r->writer);
  double t = am_now_seconds();
  if (st == AM_STATUS_OK) { /* every row, in input order, as a single process adds them */
    r->partial.done = r->lay.N;
    st = am_partial_replay(ctx, &r->partial, &r->lay, job->ds, &r->agg);
  }
  if (st == AM_STATUS_OK && r->provenance) /* the reduction's cost (docs/cluster.md) */
    json_object_set_new(r->provenance, "replay_s", json_real(am_now_seconds() - t));
  if (st == AM_STATUS_OK)
    st = am_run_inputs_unchanged(ctx, job->ds);
  am_timings_t times = {0};
  times.analyze_s = am_now_seconds() - job->t0;
  if (st == AM_STATUS_OK)
    st = am_run_state_finish(ctx, r, job->ds, job->run_dir, &job->opts, job->t0, &times);
  return st;
}

void am_job_close(am_job_t *job, am_status st) {
  if (!job)
    return;
  am_run_state_free(&job->r, st);
  free(job->done);
  free(job);
}
