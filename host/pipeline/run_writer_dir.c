/* run_writer_dir.c — the partial folder of a live run (see run_writer.h): the run seen as a
 * dataset for the layout and the summary, a fresh start, a resume from the checkpoint
 * (which records the batches' shape, so the layout is rebuilt before the first batch),
 * checkpoints at batch boundaries, and the summary and rename that publish the run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/json_guard.h"
#include "core/options.h"
#include "pipeline/merge_rows.h"
#include "pipeline/run_dir.h"
#include "pipeline/run_writer.h"
#include "pipeline/summary.h"

am_status am_live_layout(am_run_writer_t *w) {
  am_dataset_t *ds = &w->ds;
  memset(ds, 0, sizeof *ds);
  snprintf(w->shard0_path, sizeof w->shard0_path, "batch 0");
  w->shard0.path = w->shard0_path;
  *ds = (am_dataset_t){.shards = &w->shard0,
                       .nshards = 1,
                       .N = w->N,
                       .L = w->shape.L,
                       .H = w->shape.H,
                       .Tmax = w->T,
                       .dtype = w->shape.dtype,
                       .roles = w->shape.roles,
                       .saliency_names = w->shape.saliency,
                       .nsaliency = w->shape.nsaliency,
                       .embed_dim = w->shape.embed_dim,
                       .model = w->model,
                       .grid = w->grid,
                       .target = w->target,
                       .target_file = w->target_from};
  if (w->grid)
    am_grid_parse(w->grid, &ds->grid_parsed); /* checked by am_run_writer_open */
  ds->long_form = w->shard0.long_form = w->shape.long_form; /* sizes the chunks */
  w->shard0.lc.Hkv = w->shape.Hkv;
  w->shard0.lc.d = w->shape.d;
  w->shard0.lc.attn = w->shape.attn;
  am_status st = am_target_several(&w->plan)
                     ? AM_STATUS_OK
                     : am_layout_build(w->ctx, ds, &w->plan, &w->lay);
  if (st == AM_STATUS_OK && (am_target_several(&w->plan) || w->lay.several)) {
    char target[48];
    am_target_text(w->lay.several ? &w->lay.plan : &w->plan, target, sizeof target);
    st = am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                 "live runs take one target; target %s gives several: write the batches as "
                 "a dataset and run attnmap analyze (docs/generation.md)",
                 target);
  }
  w->lay.pass.device_pointers = w->device_pointers > 0;
  return st;
}

/* The tokens file and the aggregates, after the examples file. */
static am_status open_parts(am_run_writer_t *w, uint64_t tokens_bytes) {
  am_status st = AM_STATUS_OK;
  if (w->shape.roles & AM_ROLE_TOKENS)
    st = am_tokens_open(w->ctx, &w->tokens, w->partial.dir, tokens_bytes, w->boundary);
  if (st == AM_STATUS_OK)
    st = am_agg_init(w->ctx, &w->agg, &w->lay);
  return st;
}

am_status am_live_begin(am_run_writer_t *w) {
  json_t *live = am_live_shape_json(&w->shape);
  am_status st = live ? am_partial_begin_live(w->ctx, w->run_dir, &w->lay, &w->ds, 0, live,
                                              &w->partial)
                      : am_fail(w->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  json_decref(live);
  w->began = w->partial.lock_fd >= 0;
  if (st == AM_STATUS_OK)
    st = am_examples_writer_open(w->ctx, w->partial.dir, &w->lay, w->model, 0, &w->st);
  if (st == AM_STATUS_OK)
    st = open_parts(w, 0);
  w->last_checkpoint = am_now_seconds();
  return st;
}

/* The aggregates of the kept rows, replayed in order with their token texts. */
static am_status replay(am_run_writer_t *w) {
  char path[4200];
  snprintf(path, sizeof path, "%s/examples.safetensors", w->partial.dir);
  am_file_t *f = NULL;
  FILE *texts = NULL;
  am_status st = am_file_open(w->ctx, path, &f);
  if (st == AM_STATUS_OK && (w->shape.roles & AM_ROLE_TOKENS) &&
      !(texts = fopen(w->tokens.path, "rb")))
    st = am_fail(w->ctx, AM_STATUS_IO, "%s: cannot open", w->tokens.path);
  if (st == AM_STATUS_OK) {
    am_merge_part_t part = {
        f, NULL, w->boundary, w->T, texts ? am_tokens_replay_row : NULL, texts};
    st = am_merge_aggregate(w->ctx, &w->agg, &w->lay, &part, 1);
  }
  if (texts)
    fclose(texts);
  am_file_close(f);
  return st;
}

/* The shape and state a live run's checkpoint records; 0 when there is a usable one. */
static int read_checkpoint(am_run_writer_t *w, json_t **live, int *batches,
                           uint64_t *tokens_bytes) {
  char path[4200];
  snprintf(path, sizeof path, "%s.partial/progress.json", w->run_dir);
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
  json_t *state = json_object_get(doc, "live_state");
  json_int_t nb = -1, bytes = -1;
  int ok = json_unpack(state, "{s:I,s:I}", "batches", &nb, "tokens_bytes", &bytes) == 0 &&
           nb >= 0 && nb < (1 << 30) && bytes >= 0 &&
           am_live_shape_parse(json_object_get(doc, "live"), &w->shape) == 0;
  *live = ok ? json_incref(json_object_get(doc, "live")) : NULL;
  *batches = (int)nb;
  *tokens_bytes = (uint64_t)bytes;
  json_decref(doc);
  return ok ? 0 : -1;
}

/* Back to a fresh start: the first batch begins the partial folder again. */
static void forget(am_run_writer_t *w) {
  am_st_writer_close(w->st, 1);
  w->st = NULL;
  am_tokens_close(w->ctx, &w->tokens, 0);
  am_agg_free(&w->agg);
  am_partial_end(&w->partial, 0);
  am_live_shape_free(&w->shape);
  w->began = w->have_shape = 0;
  w->boundary = w->stored = w->added = 0;
  w->batches = w->batches_done = 0;
  am_clear_error(w->ctx);
}

am_status am_live_resume(am_run_writer_t *w, int64_t *from) {
  json_t *live = NULL;
  int batches = 0;
  uint64_t tokens_bytes = 0;
  *from = 0;
  if (read_checkpoint(w, &live, &batches, &tokens_bytes) != 0)
    return AM_STATUS_OK; /* nothing a live run can continue: start afresh */
  w->have_shape = 1;
  am_status st = am_live_layout(w);
  if (st == AM_STATUS_OK)
    st = am_partial_begin_live(w->ctx, w->run_dir, &w->lay, &w->ds, 1, live, &w->partial);
  json_decref(live);
  w->began = w->partial.lock_fd >= 0;
  if (st == AM_STATUS_INVALID_ARGUMENT && w->began == 0 && w->partial.dir[0])
    return st; /* another writer holds it, or it is not attnmap's */
  if (st != AM_STATUS_OK || w->partial.done <= 0) {
    forget(w);
    return AM_STATUS_OK;
  }
  w->boundary = w->stored = w->added = w->partial.done;
  w->batches = w->batches_done = batches;
  w->tokens_boundary = tokens_bytes;
  st = am_examples_writer_open(w->ctx, w->partial.dir, &w->lay, w->model, 1, &w->st);
  if (st == AM_STATUS_OK)
    st = open_parts(w, tokens_bytes);
  if (st == AM_STATUS_OK)
    st = replay(w);
  if (st != AM_STATUS_OK) { /* rows or tokens not this checkpoint's: start afresh */
    forget(w);
    return AM_STATUS_OK;
  }
  w->last_checkpoint = am_now_seconds();
  *from = w->boundary;
  return AM_STATUS_OK;
}

static int same_text(const json_t *j, const char *s) {
  return s ? json_is_string(j) && strcmp(json_string_value(j), s) == 0 : json_is_null(j);
}

int am_live_finished(am_run_writer_t *w) {
  char path[4200];
  snprintf(path, sizeof path, "%s/summary.json", w->run_dir);
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL), *now = NULL;
  json_t *prov = json_object_get(doc, "provenance"), *ds = json_object_get(doc, "dataset");
  int same = am_live_shape_parse(json_object_get(json_object_get(prov, "live"), "shape"),
                                 &w->shape) == 0;
  w->have_shape = same;
  same = same && json_integer_value(json_object_get(ds, "examples")) == w->N &&
         json_integer_value(json_object_get(ds, "max_tokens")) == w->T &&
         same_text(json_object_get(ds, "model"), w->model) &&
         same_text(json_object_get(ds, "grid"), w->grid);
  if (same && am_live_layout(w) == AM_STATUS_OK && (now = am_plan_to_json(&w->lay)))
    same = json_equal(json_object_get(prov, "options"), now);
  else
    same = 0;
  json_decref(now);
  json_decref(doc);
  if (!same) {
    am_live_shape_free(&w->shape);
    w->have_shape = 0;
    am_clear_error(w->ctx);
  }
  return same;
}

am_status am_live_checkpoint(am_run_writer_t *w) {
  if (!w->began || !w->st)
    return AM_STATUS_OK;
  json_decref(w->partial.live_state);
  w->partial.live_state = json_pack("{s:i,s:I}", "batches", w->batches_done, "tokens_bytes",
                                    (json_int_t)w->tokens_boundary);
  am_status st = am_tokens_sync(w->ctx, &w->tokens);
  if (st == AM_STATUS_OK)
    st = am_partial_checkpoint(w->ctx, &w->partial, &w->lay, w->st, w->boundary);
  w->last_checkpoint = am_now_seconds();
  return st;
}

/* summary.json: the summary am_run_analyze writes for the batches as shards, with the
 * live run's own provenance (no input files; the batches; tokens.jsonl's record). */
static am_status write_summary(am_run_writer_t *w) {
  am_timings_t times = {.analyze_s = w->busy_s, .total_s = am_now_seconds() - w->t0};
  w->ds.nshards = w->batches_done; /* one shard per batch */
  json_t *doc = am_summary_build(w->ctx, &w->ds, &w->lay, &w->agg, json_array(), &times);
  w->ds.nshards = 1;
  json_t *prov = json_object_get(doc, "provenance");
  am_status st = doc && prov ? AM_STATUS_OK
                             : am_fail(w->ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st == AM_STATUS_OK)
    json_object_set_new(prov, "live",
                        json_pack("{s:i,s:b,s:o}", "batches", w->batches_done, "tokens",
                                  (w->shape.roles & AM_ROLE_TOKENS) != 0, "shape",
                                  am_live_shape_json(&w->shape)));
  if (st == AM_STATUS_OK)
    st = am_summary_add_files(w->ctx, doc, w->partial.dir);
  if (st == AM_STATUS_OK && (w->shape.roles & AM_ROLE_TOKENS)) {
    uint32_t crc = 0;
    char hex[16];
    st = am_file_crc32c(w->ctx, w->tokens.path, &crc);
    snprintf(hex, sizeof hex, "%08x", crc);
    json_object_set_new(
        json_object_get(prov, "files"), AM_TOKENS_FILE,
        json_pack("{s:I,s:s}", "bytes", (json_int_t)w->tokens.bytes, "crc32c", hex));
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/summary.json", w->partial.dir);
  if (st == AM_STATUS_OK)
    st = am_write_json(w->ctx, path, doc);
  json_decref(doc);
  return st;
}

am_status am_live_publish(am_run_writer_t *w) {
  am_json_take_failures(); /* the summary counts its own failures */
  am_status st = am_st_writer_close(w->st, 0);
  w->st = NULL;
  am_status ts = am_tokens_close(w->ctx, &w->tokens, 1);
  st = st != AM_STATUS_OK ? st : ts;
  if (st == AM_STATUS_OK)
    st = write_summary(w);
  if (st != AM_STATUS_OK)
    return st;
  am_partial_end(&w->partial, 1);
  w->began = 0;
  return am_run_dir_publish(w->ctx, w->partial.dir, w->run_dir, AM_OUT_RUN, w->opts.force,
                            NULL);
}
