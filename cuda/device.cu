/* device.cu — one GPU of the CUDA backend: its streams and two staging slots, its worker
 * thread that takes slabs in order, and the copy threads that fill pinned memory.
 *
 * The worker keeps at most AM_CU_NSLOT slabs in flight: while the device copies and
 * computes slab k, the worker reads slab k+1 from the mapped files into the other slot;
 * it waits for slab k-1 only when it needs that slot (or has nothing else to do), then
 * scatters its results. A slot grows when a slab needs more; when the device (or pinned
 * memory) is short, the slab is split in halves and the device's slab size lowered, down
 * to one example. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"

/* ---- copy threads -----------------------------------------------------------------------
 */

struct am_cu_pool {
  int nhelpers;
  pthread_t *th;
  pthread_mutex_t mu;
  pthread_cond_t go, fin;
  unsigned long gen;
  int quit, active;
  am_cu_task_fn fn;
  void *arg;
  int njobs;
  std::atomic<int> next;
};

static void pool_work(am_cu_pool_t *p) {
  for (;;) {
    const int j = p->next.fetch_add(1);
    if (j >= p->njobs)
      break;
    p->fn(p->arg, j);
  }
}

static void *pool_main(void *arg) {
  am_cu_pool_t *p = (am_cu_pool_t *)arg;
  unsigned long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->gen == seen && !p->quit)
      pthread_cond_wait(&p->go, &p->mu);
    if (p->quit)
      break;
    seen = p->gen;
    pthread_mutex_unlock(&p->mu);
    pool_work(p);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0)
      pthread_cond_signal(&p->fin);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

am_cu_pool_t *am_cu_pool_create(int threads) {
  am_cu_pool_t *p = new (std::nothrow) am_cu_pool_t();
  if (!p)
    return NULL;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->go, NULL);
  pthread_cond_init(&p->fin, NULL);
  p->th = (pthread_t *)calloc((size_t)(threads > 1 ? threads - 1 : 1), sizeof *p->th);
  for (int t = 0; p->th && t < threads - 1; t++)
    if (pthread_create(&p->th[t], NULL, pool_main, p) == 0)
      p->nhelpers++;
  return p;
}

void am_cu_pool_destroy(am_cu_pool_t *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int t = 0; t < p->nhelpers; t++)
    pthread_join(p->th[t], NULL);
  free(p->th);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->fin);
  delete p;
}

void am_cu_pool_run(am_cu_pool_t *p, am_cu_task_fn fn, void *arg, int njobs) {
  if (p->nhelpers == 0 || njobs < 2) {
    for (int j = 0; j < njobs; j++)
      fn(arg, j);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->njobs = njobs;
  p->next.store(0);
  p->active = p->nhelpers;
  p->gen++;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  pool_work(p);
  pthread_mutex_lock(&p->mu);
  while (p->active > 0)
    pthread_cond_wait(&p->fin, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

/* ---- batches ----------------------------------------------------------------------------
 */

void am_cu_batch_error(am_cu_state_t *s, am_cu_batch_t *b, am_status st, const char *msg) {
  pthread_mutex_lock(&s->mu);
  if (b->status == AM_STATUS_OK) {
    b->status = st;
    snprintf(b->msg, sizeof b->msg, "%s", msg);
  }
  b->stop.store(0);
  pthread_mutex_unlock(&s->mu);
}

static void batch_fault(am_cu_state_t *s, am_cu_batch_t *b, int e, const am_fault_t *f) {
  pthread_mutex_lock(&s->mu);
  if (e < b->fault_example) {
    b->fault_example = e;
    b->fault = *f;
  }
  if (e + 1 < b->stop.load())
    b->stop.store(e + 1); /* later slabs cannot hold a lower example */
  pthread_mutex_unlock(&s->mu);
}

void am_cu_batch_done(am_cu_state_t *s, am_cu_batch_t *b, int e0, int e1) {
  pthread_mutex_lock(&s->mu);
  b->remaining -= e1 - e0;
  if (b->remaining == 0)
    pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* ---- slots ------------------------------------------------------------------------------
 */

static size_t grow_size(size_t need, size_t cap) {
  size_t want = need + need / 4;
  want = want > cap ? (need > cap ? need : cap) : want;
  return (want + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1);
}

/* Makes the slot big enough for its plan. Out of memory: AM_STATUS_OUT_OF_MEMORY with
 * the slot empty, so that a smaller slab can try. */
static am_status slot_reserve(am_cu_dev_t *d, am_cu_slot_t *slot) {
  const am_cu_plan_t *p = &slot->plan;
  const size_t limit = d->state->fail_alloc_above;
  am_status st = AM_STATUS_OK;
  if (slot->dev_cap < p->dev_bytes) {
    const size_t want = grow_size(p->dev_bytes, d->cap);
    AM_CHECK(cudaFree(slot->dev));
    slot->dev = NULL;
    slot->dev_cap = 0;
    if (limit && want > limit) {
      st = am_cuda_fail(AM_STATUS_OUT_OF_MEMORY,
                        "cudaMalloc of %zu bytes on cuda:%d: out "
                        "of memory (AM_CUDA_FAIL_ALLOC_ABOVE)",
                        want, d->id);
      goto done;
    }
    AM_CHECK(cudaMalloc((void **)&slot->dev, want));
    slot->dev_cap = want;
  }
  if (slot->pin_in_cap < p->in_bytes - p->pin_off) {
    const size_t want = grow_size(p->in_bytes - p->pin_off, d->pin_cap);
    AM_CHECK(cudaFreeHost(slot->pin_in));
    slot->pin_in = NULL;
    slot->pin_in_cap = 0;
    AM_CHECK(cudaHostAlloc((void **)&slot->pin_in, want, cudaHostAllocDefault));
    slot->pin_in_cap = want;
  }
  if (slot->pin_out_cap < p->out_bytes) {
    const size_t want = grow_size(p->out_bytes, d->pin_cap);
    AM_CHECK(cudaFreeHost(slot->pin_out));
    slot->pin_out = NULL;
    slot->pin_out_cap = 0;
    AM_CHECK(cudaHostAlloc((void **)&slot->pin_out, want, cudaHostAllocDefault));
    slot->pin_out_cap = want;
  }
done:
  return st;
}

/* Waits for the oldest slab in flight and hands its results over. */
static void complete_oldest(am_cu_dev_t *d) {
  const int k = d->flight[0];
  for (int q = 1; q < d->nflight; q++)
    d->flight[q - 1] = d->flight[q];
  d->nflight--;
  am_cu_slot_t *slot = &d->slot[k];
  am_cu_batch_t *b = slot->batch;
  slot->batch = NULL;
  const am_status st =
      am_cuda_check(cudaEventSynchronize(slot->done), "slab", __FILE__, __LINE__);
  if (st != AM_STATUS_OK) {
    am_cu_batch_error(d->state, b, st, am_cuda_error());
  } else {
    am_fault_t f;
    const int bad = am_cu_collect(b, &slot->plan, slot->pin_out, &f);
    if (bad >= 0)
      batch_fault(d->state, b, bad, &f);
  }
  am_cu_batch_done(d->state, b, slot->plan.e0, slot->plan.e1);
}

static int free_slot(am_cu_dev_t *d) {
  if (d->nflight == AM_CU_NSLOT)
    complete_oldest(d);
  for (int k = 0; k < AM_CU_NSLOT; k++) {
    int busy = 0;
    for (int q = 0; q < d->nflight; q++)
      busy |= d->flight[q] == k;
    if (!busy)
      return k;
  }
  return 0; /* not reached: fewer than AM_CU_NSLOT in flight */
}

/* Plans, stages and starts examples [e0, e1); returns 1 when it went in flight. */
static int start_range(am_cu_dev_t *d, am_cu_batch_t *b, int e0, int e1, int *split) {
  am_cu_state_t *s = d->state;
  *split = 0;
  const int k = free_slot(d); /* may finish a slab, and with it find a fault */
  if (e0 >= b->stop.load()) { /* an earlier example already failed */
    am_cu_batch_done(s, b, e0, e1);
    return 0;
  }
  am_cu_slot_t *slot = &d->slot[k];
  am_status st = am_cu_plan_build(b, e0, e1, &slot->plan);
  if (st == AM_STATUS_OK && slot->plan.nex == 0) { /* only empty examples */
    am_fault_t unused;
    am_cu_collect(b, &slot->plan, NULL, &unused);
    am_cu_batch_done(s, b, e0, e1);
    return 0;
  }
  if (st == AM_STATUS_OK)
    st = slot_reserve(d, slot);
  if (st == AM_STATUS_OUT_OF_MEMORY && e1 - e0 > 1) {
    pthread_mutex_lock(&d->mu);
    const size_t half = slot->plan.dev_bytes / 2;
    d->cap = half < d->cap ? half : d->cap;
    pthread_mutex_unlock(&d->mu);
    *split = 1;
    return 0;
  }
  if (st == AM_STATUS_OK) {
    am_cu_stage(d->pool, b, &slot->plan, slot->pin_in);
    st = am_cu_enqueue(d, slot, b);
    if (st != AM_STATUS_OK) { /* let what was queued finish before the slot is reused */
      cudaStreamSynchronize(d->copy);
      cudaStreamSynchronize(d->compute);
    }
  }
  if (st != AM_STATUS_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "cuda:%d (%s): %s", d->id, d->name, am_cuda_error());
    am_cu_batch_error(s, b, st, msg);
    am_cu_batch_done(s, b, e0, e1);
    return 0;
  }
  slot->batch = b;
  d->flight[d->nflight++] = k;
  return 1;
}

static void run_job(am_cu_dev_t *d, const am_cu_job_t *job) {
  int stack[2 * 64], top = 0; /* ranges still to start; halves go on top */
  stack[top++] = job->e0;
  stack[top++] = job->e1;
  while (top > 0) {
    const int e1 = stack[--top], e0 = stack[--top];
    int split;
    start_range(d, job->batch, e0, e1, &split);
    if (split && top + 4 <= (int)(sizeof stack / sizeof *stack)) {
      const int mid = e0 + (e1 - e0) / 2;
      stack[top++] = mid;
      stack[top++] = e1;
      stack[top++] = e0;
      stack[top++] = mid;
    } else if (split) {
      am_cu_batch_error(d->state, job->batch, AM_STATUS_OUT_OF_MEMORY, am_cuda_error());
      am_cu_batch_done(d->state, job->batch, e0, e1);
    }
  }
}

static void *dev_main(void *arg) {
  am_cu_dev_t *d = (am_cu_dev_t *)arg;
  cudaSetDevice(d->id);
  for (;;) {
    pthread_mutex_lock(&d->mu);
    while (!d->qhead && d->nflight == 0 && !d->quit)
      pthread_cond_wait(&d->cv, &d->mu);
    am_cu_job_t *job = d->qhead;
    if (job) {
      d->qhead = job->next;
      if (!d->qhead)
        d->qtail = NULL;
    }
    const int quit = d->quit;
    pthread_mutex_unlock(&d->mu);
    if (job)
      run_job(d, job);
    else if (d->nflight > 0)
      complete_oldest(d);
    else if (quit)
      break;
  }
  return NULL;
}

void am_cu_dev_push(am_cu_dev_t *d, am_cu_job_t *job) {
  job->next = NULL;
  pthread_mutex_lock(&d->mu);
  if (d->qtail)
    d->qtail->next = job;
  else
    d->qhead = job;
  d->qtail = job;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

/* ---- start and stop ---------------------------------------------------------------------
 */

/* Slab sizes: a third of the free device memory per slot (two slots, and room for
 * cuBLAS and the small ops), at most 4 GiB; pinned at most 1 GiB per slot and direction.
 * AM_CUDA_SLAB_MB sets both (tests use it to cut batches into many slabs). */
static void choose_caps(am_cu_dev_t *d, size_t free_bytes) {
  size_t cap = free_bytes / 3;
  cap = cap > ((size_t)4 << 30) ? (size_t)4 << 30 : cap;
  cap = cap < ((size_t)64 << 20) ? (size_t)64 << 20 : cap;
  d->cap = cap;
  d->pin_cap = cap < ((size_t)1 << 30) ? cap : (size_t)1 << 30;
  const char *env = getenv("AM_CUDA_SLAB_MB");
  if (env && atof(env) > 0) {
    d->cap = d->pin_cap = (size_t)(atof(env) * (1 << 20));
  }
}

am_status am_cu_dev_start(am_cu_state_t *s, am_cu_dev_t *d, int id, int threads) {
  am_status st = AM_STATUS_OK;
  cudaDeviceProp prop;
  size_t free_bytes = 0, total = 0;
  d->state = s;
  d->id = id;
  pthread_mutex_init(&d->mu, NULL);
  pthread_cond_init(&d->cv, NULL);
  AM_CHECK(cudaSetDevice(id));
  AM_CHECK(cudaGetDeviceProperties(&prop, id));
  snprintf(d->name, sizeof d->name, "%.120s", prop.name);
  AM_CHECK(cudaMemGetInfo(&free_bytes, &total));
  choose_caps(d, free_bytes);
  AM_CHECK(cudaStreamCreateWithFlags(&d->copy, cudaStreamNonBlocking));
  AM_CHECK(cudaStreamCreateWithFlags(&d->compute, cudaStreamNonBlocking));
  for (int k = 0; k < AM_CU_NSLOT; k++) {
    AM_CHECK(cudaEventCreateWithFlags(&d->slot[k].staged, cudaEventDisableTiming));
    AM_CHECK(cudaEventCreateWithFlags(&d->slot[k].done, cudaEventDisableTiming));
  }
  d->pool = am_cu_pool_create(threads);
  if (!d->pool) {
    st = am_cuda_fail(AM_STATUS_OUT_OF_MEMORY, "out of memory");
    goto done;
  }
  if (pthread_create(&d->thread, NULL, dev_main, d) != 0) {
    st = am_cuda_fail(AM_STATUS_INTERNAL, "cuda:%d: cannot start its thread", id);
    goto done;
  }
  d->started = 1;
done:
  return st;
}

void am_cu_dev_stop(am_cu_dev_t *d) {
  if (d->started) {
    pthread_mutex_lock(&d->mu);
    d->quit = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    d->started = 0;
  }
  am_cu_pool_destroy(d->pool);
  d->pool = NULL;
  if (cudaSetDevice(d->id) == cudaSuccess) {
    for (int k = 0; k < AM_CU_NSLOT; k++) {
      am_cu_slot_t *slot = &d->slot[k];
      cudaFree(slot->dev);
      cudaFreeHost(slot->pin_in);
      cudaFreeHost(slot->pin_out);
      if (slot->staged)
        cudaEventDestroy(slot->staged);
      if (slot->done)
        cudaEventDestroy(slot->done);
      am_cu_plan_free(&slot->plan);
    }
    if (d->blas)
      cublasDestroy(d->blas);
    if (d->copy)
      cudaStreamDestroy(d->copy);
    if (d->compute)
      cudaStreamDestroy(d->compute);
  }
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cv);
}
