/* faith_run.c — `attnmap faithfulness RUN PROBS -o OUT` (am_run_faithfulness): a new run
 * folder OUT holding RUN's files unchanged (examples.safetensors, tokens.jsonl), the scores
 * in faithfulness.safetensors and RUN's summary.json with a `faithfulness` section; built
 * under a temporary name and renamed whole; RUN and PROBS are never written. And the
 * faithfulness part of `attnmap merge` (am_faith_merge): the runs' rows concatenated in
 * order and the section computed from them, as one run over all the examples gives. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ctx.h"
#include "io/file.h"
#include "pipeline/faith.h"
#include "pipeline/replace.h"
#include "pipeline/run_dir.h"
#include "pipeline/run_folder.h"
#include "pipeline/run_tokens.h"
#include "pipeline/summary.h"

/* Copies dir/name to tmp/name when it exists (absent is not an error unless required). */
static am_status copy_file(am_ctx_t *ctx, const char *dir, const char *tmp,
                           const char *name, int required) {
  char from[4200], to[4200];
  snprintf(from, sizeof from, "%s/%s", dir, name);
  snprintf(to, sizeof to, "%s/%s", tmp, name);
  int in = open(from, O_RDONLY | O_CLOEXEC);
  if (in < 0 && errno == ENOENT && !required)
    return AM_STATUS_OK;
  if (in < 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: %s", from, strerror(errno));
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  am_status st =
      out < 0 ? am_fail(ctx, AM_STATUS_IO, "%s: cannot create: %s", to, strerror(errno))
              : AM_STATUS_OK;
  static char buf[1 << 16];
  uint64_t off = 0;
  while (st == AM_STATUS_OK) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      st = am_fail(ctx, AM_STATUS_IO, "%s: cannot read: %s", from, strerror(errno));
    if (n <= 0)
      break;
    st = am_io_pwrite_all(ctx, out, to, buf, (size_t)n, off);
    off += (uint64_t)n;
  }
  if (st == AM_STATUS_OK && fsync(out) != 0)
    st = am_fail(ctx, AM_STATUS_IO, "%s: cannot sync: %s", to, strerror(errno));
  if (out >= 0)
    close(out);
  close(in);
  return st;
}

static am_status write_summary(am_ctx_t *ctx, const char *tmp, json_t *doc) {
  char path[4200];
  snprintf(path, sizeof path, "%s/summary.json", tmp);
  am_status st = am_faith_file_record(ctx, tmp, doc);
  return st == AM_STATUS_OK ? am_write_json(ctx, path, doc) : st;
}

am_status am_run_faithfulness(am_ctx_t *ctx, const char *run_dir, const char *probs,
                              const char *out_dir, const am_run_options_t *opts) {
  if (!run_dir || !probs || !out_dir)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "am_run_faithfulness: run_dir, probs and out_dir are required");
  am_clear_error(ctx);
  const char *paths[2] = {run_dir, probs};
  const am_out_inputs_t inputs = {paths, 2};
  int force = opts ? opts->force : 0, began = 0;
  am_run_t *run = NULL;
  am_faith_t f;
  memset(&f, 0, sizeof f);
  json_t *prov = NULL, *doc = NULL;
  char tmp[4096] = "";
  am_status st = am_run_open(ctx, run_dir, &run);
  if (st == AM_STATUS_OK)
    st = am_out_outside(ctx, out_dir, run_dir, "write the faithfulness run beside it");
  if (st == AM_STATUS_OK)
    st = am_run_dir_check(ctx, out_dir, AM_OUT_RUN, force, &inputs);
  if (st == AM_STATUS_OK)
    st = am_faith_probs_read(ctx, probs, run, &f, &prov);
  if (st == AM_STATUS_OK && (st = am_run_dir_begin(ctx, out_dir, tmp, sizeof tmp)) == 0)
    began = 1;
  if (st == AM_STATUS_OK)
    st = copy_file(ctx, run->dir, tmp, "examples.safetensors", 1);
  if (st == AM_STATUS_OK)
    st = copy_file(ctx, run->dir, tmp, AM_TOKENS_FILE, 0);
  if (st == AM_STATUS_OK)
    st = am_faith_file_write(ctx, tmp, &f);
  if (st == AM_STATUS_OK) {
    doc = json_deep_copy(run->summary);
    json_t *sec = doc ? am_faith_section(&f, run->summary) : NULL;
    json_t *list = json_array();
    json_array_append(list, prov);
    if (!sec || !list)
      st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory building summary.json");
    else {
      json_object_set_new(sec, "provenance", list);
      json_object_set_new(doc, "faithfulness", sec);
      list = NULL;
      st = write_summary(ctx, tmp, doc);
    }
    json_decref(list);
  }
  if (st == AM_STATUS_OK)
    st = am_run_dir_publish(ctx, tmp, out_dir, AM_OUT_RUN, force, &inputs);
  if (st != AM_STATUS_OK && began)
    am_rmtree(tmp);
  json_decref(doc);
  json_decref(prov);
  am_faith_free(&f);
  am_run_close(run);
  return st;
}

/* The rows of part r appended to all at row0. */
static void append(am_faith_t *all, const am_faith_t *p, int64_t row0) {
  size_t M = (size_t)all->M, K = (size_t)all->K, S = (size_t)all->S, r = (size_t)row0,
         n = (size_t)p->N;
  memcpy(all->p_full + r, p->p_full, n * 4);
  memcpy(all->target + r, p->target, n * 4);
  memcpy(all->tokens + r, p->tokens, n * 4);
  memcpy(all->comp + r * M * K, p->comp, n * M * K * 4);
  memcpy(all->suff + r * M * K, p->suff, n * M * K * 4);
  memcpy(all->aopc_c + r * M, p->aopc_c, n * M * 4);
  memcpy(all->aopc_s + r * M, p->aopc_s, n * M * 4);
  memcpy(all->del + r * M * S, p->del, n * M * S * 4);
  memcpy(all->ins + r * M * S, p->ins, n * M * S * 4);
  memcpy(all->del_area + r * M, p->del_area, n * M * 4);
  memcpy(all->ins_area + r * M, p->ins_area, n * M * 4);
}

am_status am_faith_merge(am_ctx_t *ctx, const char *const *runs, const json_t *const *sums,
                         const int64_t *Ns, int nruns, const char *out_dir, json_t *doc) {
  int with = 0;
  for (int r = 0; r < nruns; r++)
    with += json_object_get(sums[r], "faithfulness") != NULL;
  if (with == 0)
    return AM_STATUS_OK;
  am_faith_t all, part;
  memset(&all, 0, sizeof all);
  memset(&part, 0, sizeof part);
  json_t *prov = json_array();
  int64_t N = 0, row0 = 0;
  am_status st = AM_STATUS_OK;
  for (int r = 0; r < nruns; r++)
    N += Ns[r];
  for (int r = 0; r < nruns && st == AM_STATUS_OK; r++) {
    if (!json_object_get(sums[r], "faithfulness")) {
      st =
          am_fail(ctx, AM_STATUS_BAD_INPUT,
                  "%s: no faithfulness scores, but %s has some; such runs cannot be merged",
                  runs[r], runs[r ? 0 : 1]);
      break;
    }
    st = am_faith_file_read(ctx, runs[r], sums[r], Ns[r], &part);
    if (st == AM_STATUS_OK && r == 0) {
      all.N = N;
      all.M = part.M;
      all.K = part.K;
      all.S = part.S;
      all.meta = json_incref(part.meta);
      memcpy(all.maps, part.maps, sizeof all.maps);
      memcpy(all.bins, part.bins, sizeof all.bins);
      st = am_faith_alloc(ctx, &all);
    } else if (st == AM_STATUS_OK && !json_equal(all.meta, part.meta)) {
      st =
          am_fail(ctx, AM_STATUS_BAD_INPUT,
                  "%s/%s: metadata %s differs from %s's (maps, bins, mode, seed, target or "
                  "model); such runs cannot be merged",
                  runs[r], AM_FAITH_FILE, AM_FAITH_META, runs[0]);
    }
    if (st == AM_STATUS_OK) {
      append(&all, &part, row0);
      row0 += part.N;
      json_array_extend(
          prov, json_object_get(json_object_get(sums[r], "faithfulness"), "provenance"));
    }
    am_faith_free(&part);
  }
  if (st == AM_STATUS_OK)
    st = am_faith_file_write(ctx, out_dir, &all);
  if (st == AM_STATUS_OK)
    st = am_faith_file_record(ctx, out_dir, doc);
  if (st == AM_STATUS_OK) {
    json_t *sec = am_faith_section(&all, doc);
    json_object_set_new(sec, "provenance", prov);
    prov = NULL;
    json_object_set_new(doc, "faithfulness", sec);
  }
  json_decref(prov);
  am_faith_free(&all);
  return st;
}
