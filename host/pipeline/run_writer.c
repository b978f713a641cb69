/* run_writer.c — am_run_writer_*: a live run (docs/live-runs.md). Each batch is dressed as
 * a one-shard dataset (arrays_ds.c, batch_extras.c) whose first example is the run's next,
 * cut into chunks and sent through the chunk code of am_run_analyze (load, backend pass,
 * write, aggregate in input order), so the run folder is the one analyze writes for the
 * batches stored as shards. With a backend that submits passes (CUDA) and device pointers,
 * chunk k+1 is submitted before chunk k is finished and stored, as analyze does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/options.h"
#include "ops/backend.h"
#include "pipeline/run_dir.h"
#include "pipeline/run_writer.h"
#include "pipeline/summary.h"

static void free_batch(am_run_writer_t *w, live_batch_t *b) {
  for (int i = 0; i < w->nopen; i++)
    if (w->open[i] == b) {
      memmove(&w->open[i], &w->open[i + 1], (size_t)(w->nopen - i - 1) * sizeof *w->open);
      w->nopen--;
      break;
    }
  am_arrays_ds_free(b->a);
  free(b);
}

/* A batch stored whole: the checkpoint may move to its end. */
static am_status batch_stored(am_run_writer_t *w, live_batch_t *b) {
  w->boundary = b->first + b->B;
  w->batches_done = b->index + 1;
  w->tokens_boundary = w->tokens.bytes;
  free_batch(w, b);
  am_status st = AM_STATUS_OK;
  if (am_now_seconds() - w->last_checkpoint >= w->opts.checkpoint_s)
    st = am_live_checkpoint(w);
  if (st == AM_STATUS_OK && w->opts.progress)
    w->opts.progress(w->opts.progress_user, w->boundary, w->N);
  return st;
}

/* Writes and aggregates a computed chunk (store_chunk of run.c, plus the tokens). */
static am_status store(am_run_writer_t *w, am_chunk_t *c, live_batch_t *b) {
  am_status st = am_chunk_write(w->ctx, c, w->st);
  if (st == AM_STATUS_OK)
    st = am_agg_add_chunk(w->ctx, &w->agg, c);
  if (st == AM_STATUS_OK && w->tokens.f)
    st = am_tokens_write_chunk(w->ctx, &w->tokens, c);
  w->stored += c->nex;
  if (st == AM_STATUS_OK && --b->chunks_left == 0)
    st = batch_stored(w, b);
  return st;
}

/* Waits for the oldest submitted chunk and stores it. */
static am_status finish_oldest(am_run_writer_t *w, int *owner) {
  live_pending_t p = w->pend[0];
  w->pend[0] = w->pend[1];
  w->npend--;
  *owner = p.b->index; /* p.b is freed when its last chunk is stored */
  am_status st = am_chunk_finish(w->ctx, p.c, &p.b->a->ds);
  return st == AM_STATUS_OK ? store(w, p.c, p.b) : st;
}

/* After a failure in batch `bad`: the chunks in flight of earlier batches are finished
 * and stored (those batches stay whole), the others waited for and dropped. */
static void drain(am_run_writer_t *w, int bad) {
  int storing = 1;
  while (w->npend > 0) {
    int owner = -1;
    if (storing && w->pend[0].b->index < bad) {
      storing = finish_oldest(w, &owner) == AM_STATUS_OK;
      continue;
    }
    am_fault_t fault;
    int where;
    w->ctx->backend->pass_wait(w->ctx->backend_state, &fault, &where);
    w->pend[0] = w->pend[1];
    w->npend--;
  }
}

/* Records a failure: whole batches before it are checkpointed, the writer stops. */
static am_status fail(am_run_writer_t *w, am_status st, int bad) {
  char keep[1024];
  snprintf(keep, sizeof keep, "%s", am_last_error(w->ctx));
  drain(w, bad);
  am_live_checkpoint(w);
  while (w->nopen > 0)
    free_batch(w, w->open[0]);
  w->failed = st;
  snprintf(w->why, sizeof w->why, "%s", keep);
  return am_fail(w->ctx, st, "%s", keep);
}

/* Chunk buffers for the largest batch so far, within analyze's memory budget. */
static am_status ensure_chunks(am_run_writer_t *w, int64_t B) {
  if (B > w->shard0.B)
    w->shard0.B = B;
  int cap = am_run_chunk_examples(w->ctx, &w->ds, &w->lay);
  if (cap <= w->cap)
    return AM_STATUS_OK;
  int owner = -1;
  am_status st = AM_STATUS_OK;
  while (st == AM_STATUS_OK && w->npend > 0) /* the buffers are the backend's until then */
    st = finish_oldest(w, &owner);
  if (st != AM_STATUS_OK)
    return fail(w, st, owner);
  am_chunk_free(&w->chunk[0]);
  am_chunk_free(&w->chunk[1]);
  w->cap = 0;
  st = am_chunk_alloc(w->ctx, &w->chunk[0], &w->lay, cap, w->T);
  if (st == AM_STATUS_OK && w->async)
    st = am_chunk_alloc(w->ctx, &w->chunk[1], &w->lay, cap, w->T);
  w->cap = st == AM_STATUS_OK ? cap : 0;
  w->next = 0;
  return st;
}

/* Sends the batch's chunks through the pipeline. */
static am_status run_batch(am_run_writer_t *w, live_batch_t *b) {
  am_ctx_t *ctx = w->ctx;
  const am_dataset_t *ds = &b->a->ds;
  int64_t B = b->B; /* b is freed when its last chunk is stored */
  int index = b->index;
  b->chunks_left = (int)((B + w->cap - 1) / w->cap);
  am_status st = AM_STATUS_OK;
  for (int64_t row = 0; row < B && st == AM_STATUS_OK; row += w->cap) {
    int nex = (int)(B - row < w->cap ? B - row : w->cap);
    am_chunk_t *c = &w->chunk[w->async ? w->next : 0];
    st = am_chunk_load(ctx, c, ds, 0, row, nex); /* at the run's rows: sh.first */
    if (!w->async) {
      if (st == AM_STATUS_OK)
        st = am_chunk_compute(ctx, c, ds);
      if (st == AM_STATUS_OK)
        st = store(w, c, b);
      if (st != AM_STATUS_OK)
        return fail(w, st, index);
      continue;
    }
    if (st == AM_STATUS_OK)
      st = am_chunk_submit(ctx, c);
    if (st != AM_STATUS_OK)
      return fail(w, st, index);
    w->pend[w->npend++] = (live_pending_t){c, b};
    w->next ^= 1;
    int owner = -1;
    if (w->npend == 2 && (st = finish_oldest(w, &owner)) != AM_STATUS_OK)
      return fail(w, st, owner);
  }
  return st;
}

/* The first batch of the run fixes the layout and begins the partial folder; the first of
 * this process fixes device_pointers; every batch must have the run's shape. */
static am_status accept(am_run_writer_t *w, const am_arrays_t *in, live_batch_t *b,
                        const char *lb) {
  am_live_shape_t shape;
  am_status st = am_live_shape_of(w->ctx, b->a, &shape);
  if (st != AM_STATUS_OK)
    return st;
  if (w->device_pointers < 0) {
    w->device_pointers = in->device_pointers ? 1 : 0;
    /* no backend submits the long-context form in halves (am_chunk_submit) */
    w->async = w->device_pointers && !b->a->ds.long_form && w->ctx->backend->pass_submit &&
               w->ctx->backend->pass_wait;
    w->lay.pass.device_pointers = w->device_pointers;
  } else if (w->device_pointers != (in->device_pointers ? 1 : 0)) {
    st = am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                 "%s: device_pointers %d, but the earlier batches' are %d", lb,
                 in->device_pointers ? 1 : 0, w->device_pointers);
  }
  if (st == AM_STATUS_OK && w->have_shape)
    st = am_live_shape_check(w->ctx, &w->shape, &shape, lb);
  if (st == AM_STATUS_OK && !w->have_shape) {
    w->shape = shape;
    memset(&shape, 0, sizeof shape);
    w->have_shape = 1;
    st = am_live_layout(w);
  }
  am_live_shape_free(&shape);
  if (st == AM_STATUS_OK && !w->began)
    st = am_live_begin(w);
  return st;
}

/* The batch's own checks against the run: its size, length and grid. */
static am_status check_batch(am_run_writer_t *w, const am_arrays_t *in, const char *lb) {
  if (!in)
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT, "%s: arrays are NULL", lb);
  if (in->batch < 1)
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT, "%s: holds no examples (B=%d)", lb,
                   in->batch);
  if (w->added + in->batch > w->N)
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: %d examples after %lld make more than the %lld the run declared "
                   "(am_stream_info_t.examples)",
                   lb, in->batch, (long long)w->added, (long long)w->N);
  if (in->tokens > w->T)
    return am_fail(w->ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: T=%d is more than the run's max_tokens=%d", lb,
                   in->queries ? "queries" : "attentions", in->tokens, w->T);
  if (in->grid && (!w->grid || strcmp(in->grid, w->grid) != 0))
    return am_fail(w->ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: grid '%.63s' is not the run's (am_stream_info_t.grid '%.63s')", lb,
                   in->grid, w->grid ? w->grid : "none");
  return AM_STATUS_OK;
}

am_status am_run_writer_add(am_run_writer_t *w, const am_arrays_t *in,
                            const am_batch_extras_t *extras) {
  if (!w)
    return AM_STATUS_INVALID_ARGUMENT;
  am_ctx_t *ctx = w->ctx;
  am_clear_error(ctx);
  if (w->failed != AM_STATUS_OK)
    return am_fail(ctx, w->failed,
                   "the live run stopped at an earlier failure (%s); "
                   "abort the writer and open it again with resume",
                   w->why);
  double t0 = am_now_seconds();
  char lb[96];
  snprintf(lb, sizeof lb, "batch %d", w->batches);
  live_batch_t *b = calloc(1, sizeof *b);
  am_status st = b ? check_batch(w, in, lb) : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "oom");
  if (st == AM_STATUS_OK)
    st = am_arrays_ds_make(ctx, in, lb, lb, &b->a);
  if (st == AM_STATUS_OK)
    st = am_arrays_ds_bind_extras(ctx, b->a, extras, lb);
  if (st == AM_STATUS_OK) {
    w->open[w->nopen++] = b;
    *b = (live_batch_t){.a = b->a, .index = w->batches, .first = w->added, .B = in->batch};
    b->a->sh.first = b->first;
    st = accept(w, in, b, lb);
  } else if (b) {
    am_arrays_ds_free(b->a);
    free(b);
  }
  if (st == AM_STATUS_OK)
    st = ensure_chunks(w, in->batch);
  if (st != AM_STATUS_OK)
    return w->failed != AM_STATUS_OK ? st : fail(w, st, w->batches);
  w->added += in->batch;
  w->batches++;
  st = run_batch(w, b);
  w->busy_s += am_now_seconds() - t0;
  return st;
}

static void writer_free(am_run_writer_t *w) {
  while (w->nopen > 0)
    free_batch(w, w->open[0]);
  am_st_writer_close(w->st, 1);
  am_tokens_close(w->ctx, &w->tokens, 0);
  am_partial_end(&w->partial, 0);
  am_chunk_free(&w->chunk[0]);
  am_chunk_free(&w->chunk[1]);
  am_agg_free(&w->agg);
  am_live_shape_free(&w->shape);
  free(w->pairs);
  free(w->model);
  free(w->grid);
  free(w->target);
  free(w);
}

static char *dup_or_null(const char *s, int *failed) {
  char *d = s ? strdup(s) : NULL;
  *failed |= s && !d;
  return d;
}

/* The declared size, length and metadata, and the options. */
static am_status check_open(am_ctx_t *ctx, const char *run_dir, const am_plan_t *plan,
                            const am_run_options_t *opts, const am_stream_info_t *info) {
  am_grid_t grid;
  if (!run_dir || !plan || !info)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_run_writer_open: NULL argument");
  if (info->examples < 1 || info->max_tokens < 1 || info->max_tokens > 65536)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "%s: a live run declares examples >= 1 and max_tokens in [1, 65536] "
                   "(am_stream_info_t; got %lld and %d)",
                   run_dir, (long long)info->examples, info->max_tokens);
  if (info->grid && (strlen(info->grid) > 63 || am_grid_parse(info->grid, &grid) != 0))
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "am_stream_info_t.grid '%.63s': expected ROWSxCOLS or ROWSxCOLS+PREFIX",
                   info->grid);
  am_status st = am_options_check(ctx, AM_SCOPE_PLAN, plan, NULL, 0);
  if (st == AM_STATUS_OK && opts)
    st = am_options_check(ctx, AM_SCOPE_RUN, opts, NULL, 0);
  return st;
}

am_status am_run_writer_open(am_ctx_t *ctx, const char *run_dir, const am_plan_t *plan,
                             const am_run_options_t *opts, const am_stream_info_t *info,
                             am_run_writer_t **out, int64_t *resume_from) {
  if (out)
    *out = NULL;
  if (resume_from)
    *resume_from = 0;
  if (!ctx || !out)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_run_writer_open: NULL argument");
  am_clear_error(ctx);
  am_status st = check_open(ctx, run_dir, plan, opts, info);
  am_run_writer_t *w = st == AM_STATUS_OK ? calloc(1, sizeof *w) : NULL;
  if (st == AM_STATUS_OK && !w)
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st != AM_STATUS_OK)
    return st;
  int oom = 0;
  size_t n = strlen(run_dir);
  while (n > 1 && run_dir[n - 1] == '/')
    n--;
  snprintf(w->run_dir, sizeof w->run_dir, "%.*s", (int)n, run_dir);
  w->ctx = ctx;
  w->partial.lock_fd = -1;
  w->device_pointers = -1;
  w->t0 = am_now_seconds();
  w->plan = *plan;
  w->pairs = dup_or_null(plan->pairs, &oom);
  w->plan.pairs = w->pairs;
  if (opts)
    w->opts = *opts;
  else
    am_run_options_init(&w->opts);
  w->N = info->examples;
  w->T = info->max_tokens;
  w->model = dup_or_null(info->model, &oom);
  w->grid = dup_or_null(info->grid, &oom);
  w->target = dup_or_null(info->target, &oom);
  snprintf(w->target_from, sizeof w->target_from, "am_stream_info_t.target");
  if (oom)
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st == AM_STATUS_OK && n >= sizeof w->run_dir - 64)
    st = am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "%s: path too long", run_dir);
  int64_t from = 0;
  if (st == AM_STATUS_OK && w->opts.resume && !w->opts.force && am_live_finished(w)) {
    w->complete = 1; /* finished before: left as it is, as analyze --resume leaves it */
    w->added = w->stored = w->boundary = from = w->N;
  } else {
    if (st == AM_STATUS_OK)
      st = am_run_dir_check(ctx, w->run_dir, AM_OUT_RUN, w->opts.force, NULL);
    if (st == AM_STATUS_OK && w->opts.resume)
      st = am_live_resume(w, &from);
  }
  if (st != AM_STATUS_OK) {
    writer_free(w);
    return st;
  }
  if (resume_from)
    *resume_from = from;
  *out = w;
  return AM_STATUS_OK;
}

am_status am_run_writer_close(am_run_writer_t *w) {
  if (!w)
    return AM_STATUS_OK;
  am_ctx_t *ctx = w->ctx;
  am_clear_error(ctx);
  double t0 = am_now_seconds();
  am_status st = w->failed != AM_STATUS_OK
                     ? am_fail(ctx, w->failed,
                               "the live run stopped at an earlier failure "
                               "(%s); nothing was published",
                               w->why)
                     : AM_STATUS_OK;
  int owner = -1;
  while (st == AM_STATUS_OK && w->npend > 0)
    if ((st = finish_oldest(w, &owner)) != AM_STATUS_OK)
      st = fail(w, st, owner);
  if (st == AM_STATUS_OK && w->stored < w->N) {
    am_live_checkpoint(w);
    st = am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                 "%s: closed after %lld of the %lld examples the run declared "
                 "(am_stream_info_t.examples); %s",
                 w->run_dir, (long long)w->stored, (long long)w->N,
                 w->began ? "the partial folder is kept: open the writer again with resume "
                            "and add the rest"
                          : "nothing was written");
  }
  w->busy_s += am_now_seconds() - t0;
  if (st == AM_STATUS_OK && !w->complete)
    st = am_live_publish(w);
  writer_free(w);
  return st;
}

void am_run_writer_abort(am_run_writer_t *w) {
  if (!w)
    return;
  if (w->failed == AM_STATUS_OK) { /* whole batches stored so far stay resumable */
    drain(w, w->batches);          /* the chunks in flight are stored when sound */
    am_live_checkpoint(w);
  }
  writer_free(w);
}
