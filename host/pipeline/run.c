/* run.c — `attnmap analyze`: reads the dataset chunk by chunk (each chunk's attentions
 * cross memory once, in the backend's fused pass), writes examples.safetensors row by row
 * and aggregates in input order, then publishes the run folder whole (docs/design.md §4,
 * §5). */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/json_guard.h"
#include "core/options.h"
#include "ops/backend.h"
#include "pipeline/run_state.h"

/* Attention bytes one chunk may span when --chunk is not given. */
#define AM_CHUNK_BUDGET_BYTES (256ull << 20)
#define AM_CHUNK_MAX 1024

int am_run_chunk_examples(const am_ctx_t *ctx, const am_dataset_t *ds,
                          const am_layout_t *lay) {
  if (lay->plan.chunk > 0)
    return lay->plan.chunk > AM_CHUNK_MAX * 64 ? AM_CHUNK_MAX * 64 : (int)lay->plan.chunk;
  uint64_t T = (uint64_t)ds->Tmax;
  uint64_t per = (uint64_t)ds->L * (uint64_t)ds->H * T * T * am_dtype_size(ds->dtype);
  per *= (ds->roles & AM_ROLE_ATTENTION_GRADS) ? 2 : 1;
  if (ds->long_form) /* Q and dO [H,T,d], K and V [Hkv,T,d] per layer */
    per = (uint64_t)ds->L * T * (uint64_t)ds->shards[0].lc.d * am_dtype_size(ds->dtype) *
          (2 * (uint64_t)ds->shards[0].lc.Hkv +
           (uint64_t)ds->H * ((ds->roles & AM_ROLE_ATTENTION_GRADS) ? 2 : 1));
  if (lay->plan.all_rows)
    per += 2 * T * T * 4;
  /* the chunk's own buffers per example (am_chunk_alloc): head results, maps, agreement,
   * indices and padded rows — input of 0 bytes must not buy 1024 examples of those */
  uint64_t LH = (uint64_t)ds->L * (uint64_t)ds->H;
  per += (AM_STAT_COUNT + 2) * LH * 4 + ((uint64_t)lay->nmaps + 8) * T * 4 +
         (uint64_t)lay->npairs * (AM_METRIC_COUNT * 8 + 2 * T * 4) + 64;
  if (lay->several) /* step rows, their agreement and a padded copy (steps.h) */
    per += (uint64_t)lay->S * (((uint64_t)lay->nstep_maps + 1) * T * 4 +
                               (uint64_t)lay->npairs * (AM_METRIC_COUNT + 1) * 4 + 8);
  int hint = ctx->backend->chunk_examples /* a device sizes its own chunks */
                 ? ctx->backend->chunk_examples(ctx->backend_state, per)
                 : 0;
  if (hint > 0)
    return hint;
  uint64_t n = AM_CHUNK_BUDGET_BYTES / per, most = 1;
  /* at least one example per thread: the CPU backend runs the examples of a chunk in
   * parallel, and long examples (8.6 GB at 32 x 32 x 2048) would otherwise leave every
   * core but one idle; their bytes are mapped, not copied, and released after the chunk */
  if (n < (uint64_t)ctx->threads)
    n = (uint64_t)ctx->threads;
  for (int s = 0; s < ds->nshards; s++) /* no chunk is larger than the largest shard */
    most = (uint64_t)ds->shards[s].B > most ? (uint64_t)ds->shards[s].B : most;
  n = n < most ? n : most;
  return n < 1 ? 1 : (n > AM_CHUNK_MAX ? AM_CHUNK_MAX : (int)n);
}

/* The rows of shard s inside examples [from, to): [first_row, last_row). */
static int64_t first_row(const am_dataset_t *ds, int s, int64_t from) {
  int64_t r = from - ds->shards[s].first;
  return r < 0 ? 0 : (r > ds->shards[s].B ? ds->shards[s].B : r);
}

static int64_t last_row(const am_dataset_t *ds, int s, int64_t to) {
  int64_t r = to - ds->shards[s].first;
  return r < 0 ? 0 : (r > ds->shards[s].B ? ds->shards[s].B : r);
}

/* Reads a chunk: its views, and the CRC-32C of its rows of every input tensor; then asks
 * for the next chunk's rows to be read ahead while this one is computed. */
static am_status read_chunk(am_ctx_t *ctx, am_run_state_t *r, am_chunk_t *c,
                            const am_dataset_t *ds, int s, int64_t row, int nex) {
  am_status st = am_chunk_load(ctx, c, ds, s, row, nex);
  const am_shard_t *sh = &ds->shards[s];
  if (st == AM_STATUS_OK && row + nex < sh->B)
    am_shard_prefetch_rows(ds, s, row + nex,
                           sh->B - row - nex < nex ? sh->B - row - nex : nex);
  else if (st == AM_STATUS_OK && s + 1 < ds->nshards)
    am_shard_prefetch_rows(ds, s + 1, 0,
                           ds->shards[s + 1].B < nex ? ds->shards[s + 1].B : nex);
  if (st == AM_STATUS_OK && r->checksums)
    st = am_checksums_rows(ctx, &r->sums, ds, s, row, nex);
  return st;
}

/* Writes and aggregates a computed chunk, checkpoints now and then, lets its pages go. */
static am_status store_chunk(am_ctx_t *ctx, am_run_state_t *r, am_chunk_t *c, int64_t *done,
                             double *last, const am_dataset_t *ds,
                             const am_run_options_t *opts) {
  double every = opts ? opts->checkpoint_s : 2.0;
  am_status st = am_chunk_write(ctx, c, r->writer);
  if (st == AM_STATUS_OK && !r->record) /* a job's part: the coordinator aggregates */
    st = am_agg_add_chunk(ctx, &r->agg, c);
  *done += c->nex;
  if (st == AM_STATUS_OK && am_now_seconds() - *last >= every) {
    st = r->record ? am_job_record(ctx, r, *done)
                   : am_partial_checkpoint(ctx, &r->partial, &r->lay, r->writer, *done);
    *last = am_now_seconds();
  }
  if (st == AM_STATUS_OK) /* bounded resident memory: the chunk's input pages may go */
    am_shard_release_rows(ds, (int)(c->sh - ds->shards), c->row0, c->nex);
  if (st == AM_STATUS_OK && r->poll &&
      r->poll(r->poll_user, *done - r->from, r->to - r->from))
    st = am_fail(ctx, AM_STATUS_INTERNAL, "stopped: another part of the job failed");
  else if (st == AM_STATUS_OK && opts && opts->progress)
    opts->progress(opts->progress_user, *done, ds->N);
  return st;
}

/* The double-buffered form, for a backend with pass_submit/pass_wait (the CUDA one):
 * chunk k+1 is read and submitted before chunk k is written and aggregated, so that the
 * device computes while the host writes. Chunks finish in input order: the results and
 * aggregates are analyze_all's. */
static am_status analyze_all_async(am_ctx_t *ctx, am_run_state_t *r, am_dataset_t *ds,
                                   const am_run_options_t *opts) {
  int cap = am_run_chunk_examples(ctx, ds, &r->lay), cur = 0, pending = 0;
  am_chunk_t *c[2] = {&r->chunk, &r->chunk2};
  am_status st = am_chunk_alloc(ctx, c[0], &r->lay, cap, ds->Tmax);
  if (st == AM_STATUS_OK)
    st = am_chunk_alloc(ctx, c[1], &r->lay, cap, ds->Tmax);
  int64_t done = r->from;
  double last = am_now_seconds();
  for (int s = 0; s < ds->nshards && st == AM_STATUS_OK; s++)
    for (int64_t row = first_row(ds, s, r->from);
         row < last_row(ds, s, r->to) && st == AM_STATUS_OK; row += cap) {
      int64_t left = last_row(ds, s, r->to) - row;
      int nex = (int)(left < cap ? left : cap);
      st = read_chunk(ctx, r, c[cur], ds, s, row, nex);
      if (st == AM_STATUS_OK)
        st = am_chunk_submit(ctx, c[cur]);
      if (st != AM_STATUS_OK)
        break;
      pending++;
      cur ^= 1; /* c[cur]: the older chunk in flight, and the next to load */
      if (pending == 2) {
        pending--;
        st = am_chunk_finish(ctx, c[cur], ds);
        if (st == AM_STATUS_OK)
          st = store_chunk(ctx, r, c[cur], &done, &last, ds, opts);
      }
    }
  char keep[1024];
  snprintf(keep, sizeof keep, "%s", am_last_error(ctx));
  for (; pending > 0; pending--) { /* the backend holds the buffers until waited for */
    am_chunk_t *k = c[cur ^ 1];
    if (st == AM_STATUS_OK) {
      st = am_chunk_finish(ctx, k, ds);
      if (st == AM_STATUS_OK)
        st = store_chunk(ctx, r, k, &done, &last, ds, opts);
      snprintf(keep, sizeof keep, "%s", am_last_error(ctx));
    } else {
      am_fault_t fault;
      int bad;
      ctx->backend->pass_wait(ctx->backend_state, &fault, &bad);
    }
  }
  return st == AM_STATUS_OK ? st : am_fail(ctx, st, "%s", keep);
}

/* The store thread: writes and aggregates chunk k (and lets its pages go) while the
 * run's threads read and compute chunk k+1 into the other buffer. Chunks are stored in
 * input order, one at a time, so rows, aggregates and checkpoints are those of a serial
 * run. It reports failures on its own copy of the context (messages never race). */
typedef struct store_thread {
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  am_chunk_t *job; /* handed over, not yet stored */
  int busy, quit;
  am_status st;
  am_ctx_t ctx;
  am_run_state_t *r;
  am_dataset_t *ds;
  const am_run_options_t *opts;
  int64_t done;
  double last;
} store_thread_t;

static void *store_main(void *arg) {
  store_thread_t *t = arg;
  pthread_mutex_lock(&t->mu);
  for (;;) {
    while (!t->job && !t->quit)
      pthread_cond_wait(&t->cv, &t->mu);
    if (!t->job)
      break;
    am_chunk_t *c = t->job;
    pthread_mutex_unlock(&t->mu);
    am_status st = store_chunk(&t->ctx, t->r, c, &t->done, &t->last, t->ds, t->opts);
    pthread_mutex_lock(&t->mu);
    t->st = t->st != AM_STATUS_OK ? t->st : st;
    t->job = NULL;
    t->busy = 0;
    pthread_cond_broadcast(&t->cv);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

/* Waits until the store thread is idle; its status. */
static am_status store_wait(store_thread_t *t) {
  pthread_mutex_lock(&t->mu);
  while (t->busy)
    pthread_cond_wait(&t->cv, &t->mu);
  am_status st = t->st;
  pthread_mutex_unlock(&t->mu);
  return st;
}

static void store_hand(store_thread_t *t, am_chunk_t *c) {
  pthread_mutex_lock(&t->mu);
  t->job = c;
  t->busy = 1;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

/* The other backends (the CPU one): chunk k+1 is read (its CRC-32C) and computed on the
 * run's threads while the store thread writes chunk k. */
am_status am_run_state_analyze(am_ctx_t *ctx, am_run_state_t *r, am_dataset_t *ds,
                               const am_run_options_t *opts) {
  /* the long-context form has no submit/wait halves: it runs synchronously */
  /* several targets run synchronously too: a chunk may take several passes (steps.h) */
  if (ctx->backend->pass_submit && ctx->backend->pass_wait && !ds->long_form &&
      !r->lay.several)
    return analyze_all_async(ctx, r, ds, opts);
  int cap = am_run_chunk_examples(ctx, ds, &r->lay), cur = 0;
  am_chunk_t *c[2] = {&r->chunk, &r->chunk2};
  am_status st = am_chunk_alloc(ctx, c[0], &r->lay, cap, ds->Tmax);
  int64_t need = r->to - r->from; /* one chunk: no second buffer, no thread */
  if (st == AM_STATUS_OK && need > cap)
    st = am_chunk_alloc(ctx, c[1], &r->lay, cap, ds->Tmax);
  if (st != AM_STATUS_OK)
    return st;
  store_thread_t t = {.ctx = *ctx, .r = r, .ds = ds, .opts = opts, .done = r->from};
  t.last = am_now_seconds();
  t.ctx.error[0] = '\0';
  int threaded = need > cap && pthread_mutex_init(&t.mu, NULL) == 0;
  if (threaded && pthread_cond_init(&t.cv, NULL) != 0) {
    pthread_mutex_destroy(&t.mu);
    threaded = 0;
  }
  if (threaded && pthread_create(&t.tid, NULL, store_main, &t) != 0) {
    pthread_cond_destroy(&t.cv);
    pthread_mutex_destroy(&t.mu);
    threaded = 0;
  }
  for (int s = 0; s < ds->nshards && st == AM_STATUS_OK; s++)
    for (int64_t row = first_row(ds, s, r->from);
         row < last_row(ds, s, r->to) && st == AM_STATUS_OK; row += cap) {
      int64_t left = last_row(ds, s, r->to) - row;
      int nex = (int)(left < cap ? left : cap);
      st = read_chunk(ctx, r, c[cur], ds, s, row, nex);
      if (st == AM_STATUS_OK)
        st = am_chunk_compute(ctx, c[cur], ds);
      if (st == AM_STATUS_OK && !threaded)
        st = store_chunk(ctx, r, c[cur], &t.done, &t.last, ds, opts);
      if (st == AM_STATUS_OK && threaded && (st = store_wait(&t)) == AM_STATUS_OK) {
        store_hand(&t, c[cur]);
        cur ^= 1;
      }
    }
  if (threaded) {
    am_status stored = store_wait(&t); /* an earlier chunk's failure is the one to report */
    pthread_mutex_lock(&t.mu);
    t.quit = 1;
    pthread_cond_broadcast(&t.cv);
    pthread_mutex_unlock(&t.mu);
    pthread_join(t.tid, NULL);
    pthread_cond_destroy(&t.cv);
    pthread_mutex_destroy(&t.mu);
    if (stored != AM_STATUS_OK)
      st = am_fail(ctx, stored, "%s", t.ctx.error);
  }
  return st;
}

static am_status open_writer(am_ctx_t *ctx, am_run_state_t *r, const am_dataset_t *ds) {
  /* a kept folder's rows past done may be a job's parts' (job.c): never truncated */
  return am_examples_writer_open(ctx, r->partial.dir, &r->lay, ds->model, r->partial.kept,
                                 &r->writer);
}

/* Bad input or options make a partial folder worthless; after an I/O or device failure
 * (disk full, a killed process) it is kept for --resume. */
int am_run_partial_worth_keeping(am_status st) {
  return st != AM_STATUS_BAD_INPUT && st != AM_STATUS_INVALID_ARGUMENT;
}

am_status am_run_state_finish(am_ctx_t *ctx, am_run_state_t *r, am_dataset_t *ds,
                              const char *run_dir, const am_run_options_t *opts, double t0,
                              am_timings_t *times) {
  am_status st = am_st_writer_close(r->writer, 0);
  r->writer = NULL;
  json_t *inputs = NULL, *doc = NULL;
  uint32_t *crcs = r->checksums ? calloc((size_t)r->sums.nfiles + 1, sizeof *crcs) : NULL;
  if (st == AM_STATUS_OK && r->checksums && !crcs)
    st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st == AM_STATUS_OK && crcs)
    st = am_checksums_finish(ctx, &r->sums, crcs);
  if (st == AM_STATUS_OK)
    st = am_inputs_json(ctx, ds, crcs, &inputs);
  free(crcs);
  times->checksum_s = r->sums.seconds;
  times->total_s = am_now_seconds() - t0;
  if (st == AM_STATUS_OK) {
    doc = am_summary_build(ctx, ds, &r->lay, &r->agg, inputs, times);
    inputs = NULL;
    if (doc && r->provenance) /* a job's parts: ranks, hosts, devices */
      json_object_set(json_object_get(doc, "provenance"), "parts", r->provenance);
    if (doc && ((st = am_steps_summary_add(ctx, doc, r->partial.dir, &r->lay)) ||
                (st = am_summary_add_files(ctx, doc, r->partial.dir)))) {
      json_decref(doc);
      doc = NULL;
      return st;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", r->partial.dir);
    st = doc ? am_write_json(ctx, path, doc)
             : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory building summary.json");
  }
  json_decref(inputs);
  json_decref(doc);
  if (st == AM_STATUS_OK) {
    am_partial_end(&r->partial, 1);
    st = am_run_dir_publish(ctx, r->partial.dir, run_dir, AM_OUT_RUN,
                            opts ? opts->force : 0, &r->inputs);
  }
  return st;
}

am_status am_run_inputs_unchanged(am_ctx_t *ctx, const am_dataset_t *ds) {
  for (int s = 0; s < ds->nshards; s++) {
    am_status changed = am_shard_check_unchanged(ctx, ds, s);
    if (changed != AM_STATUS_OK)
      return changed;
  }
  return AM_STATUS_OK;
}

am_status am_run_is_complete(am_ctx_t *ctx, am_dataset_t *ds, const am_plan_t *plan,
                             const char *run_dir, int *complete) {
  if (complete)
    *complete = 0;
  if (!ctx || !ds || !plan || !run_dir || !complete)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "am_run_is_complete: NULL argument");
  am_layout_t *lay = calloc(1, sizeof *lay);
  am_status st = lay ? am_layout_build(ctx, ds, plan, lay)
                     : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  if (st == AM_STATUS_OK)
    *complete = am_run_matches(lay, ds, run_dir) == 1;
  free(lay);
  return st;
}

am_status am_run_state_begin(am_ctx_t *ctx, am_run_state_t *r, am_dataset_t *ds,
                             const am_plan_t *plan, const char *run_dir,
                             const am_run_options_t *opts, int *finished) {
  *finished = 0;
  r->partial.lock_fd = -1;
  am_status st = opts ? am_options_check(ctx, AM_SCOPE_RUN, opts, NULL, 0) : AM_STATUS_OK;
  if (st == AM_STATUS_OK)
    st = am_layout_build(ctx, ds, plan, &r->lay);
  int resume = opts ? opts->resume : 0, force = opts ? opts->force : 0, same = -1;
  if (st == AM_STATUS_OK && resume && !force &&
      (same = am_run_matches(&r->lay, ds, run_dir)) == 1) {
    *finished = 1;
    return AM_STATUS_OK; /* finished before with these inputs and options: nothing to do */
  }
  if (st == AM_STATUS_OK && same == 0)
    st = am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                 "%s: already exists and is not a run made from these inputs with these "
                 "options (use --force to replace it)",
                 run_dir);
  if (st == AM_STATUS_OK)
    st = am_out_inputs_of(ctx, ds, &r->inputs);
  if (st == AM_STATUS_OK)
    st = am_run_dir_check(ctx, run_dir, AM_OUT_RUN, force, &r->inputs);
  if (st == AM_STATUS_OK)
    st = am_agg_init(ctx, &r->agg, &r->lay);
  if (st == AM_STATUS_OK && (r->checksums = opts ? opts->checksums : 1))
    st = am_checksums_init(ctx, &r->sums, ds);
  if (st == AM_STATUS_OK)
    st = am_partial_begin(ctx, run_dir, &r->lay, ds, resume, &r->partial);
  if (st == AM_STATUS_OK)
    st = open_writer(ctx, r, ds);
  r->from = r->partial.done;
  r->to = ds->N;
  return st;
}

void am_run_state_free(am_run_state_t *r, am_status st) {
  am_st_writer_close(r->writer, 1);
  r->writer = NULL;
  if (st != AM_STATUS_OK && r->partial.lock_fd >= 0 && !am_run_partial_worth_keeping(st))
    am_rmtree(r->partial.dir);
  am_partial_end(&r->partial, 0);
  am_chunk_free(&r->chunk);
  am_chunk_free(&r->chunk2);
  am_agg_free(&r->agg);
  am_out_inputs_free(&r->inputs);
  am_checksums_free(&r->sums);
  json_decref(r->provenance);
  r->provenance = NULL;
}

am_status am_run_analyze(am_ctx_t *ctx, am_dataset_t *ds, const am_plan_t *plan,
                         const char *run_dir, const am_run_options_t *opts) {
  am_clear_error(ctx);
  am_json_take_failures(); /* the documents this run writes count their own failures */
  double t0 = am_now_seconds();
  am_timings_t times = {0};
  am_run_state_t *r = calloc(1, sizeof *r);
  if (!r)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  int finished = 0;
  am_status st = am_run_state_begin(ctx, r, ds, plan, run_dir, opts, &finished);
  if (st == AM_STATUS_OK && finished) {
    free(r);
    return AM_STATUS_OK;
  }
  if (st == AM_STATUS_OK)
    st = am_partial_replay(ctx, &r->partial, &r->lay, ds, &r->agg);
  if (st == AM_STATUS_OK)
    st = am_run_state_analyze(ctx, r, ds, opts);
  /* an input cut short or written while it was read explains whatever failed; and a run
   * that read one (its lost pages read as zeros, io/sigbus.c) must not be published */
  if (st == AM_STATUS_OK || st == AM_STATUS_BAD_INPUT) {
    am_status changed = am_run_inputs_unchanged(ctx, ds);
    st = changed != AM_STATUS_OK ? changed : st;
  }
  times.analyze_s = am_now_seconds() - t0;
  if (st == AM_STATUS_OK)
    st = am_run_state_finish(ctx, r, ds, run_dir, opts, t0, &times);
  am_run_state_free(r, st);
  free(r);
  return st;
}
