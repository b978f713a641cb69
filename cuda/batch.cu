/* batch.cu — a batch of examples through the CUDA backend: the argument checks every
 * backend makes (ops/check.c), the cut into slabs that fit every device's slot, the
 * round-robin hand-out, and the answer once every slab is back: the lowest example with bad
 * input and its fault, exactly what am_cpu_example_pass would say, or the first device
 * failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"

/* The checks every backend makes (ops/check.c), then this backend's own limits. */
static am_status check_example(const am_example_t *ex, const am_pass_options_t *opt,
                               const am_pass_output_t *out) {
  const am_status st = am_ops_check_example(ex, opt, out);
  if (st != AM_STATUS_OK || ex->n == 0)
    return st;
  /* the fused kernel keeps [16 rows][H][9] floats in shared memory */
  if (ex->H > 300 || ex->n > 46340) /* n*n fits an int */
    return AM_STATUS_UNSUPPORTED;
  return AM_STATUS_OK;
}

/* Examples that may share a slab: same L, H, dtype and gradients. */
static int same_kind(const am_example_t *a, const am_example_t *b) {
  return a->L == b->L && a->H == b->H && a->dtype == b->dtype &&
         (a->grad != NULL) == (b->grad != NULL);
}

static am_status add_job(am_cu_batch_t *b, int e0, int e1, int *cap) {
  if (b->njobs == *cap) {
    const int grown = *cap ? 2 * *cap : 16;
    am_cu_job_t *j = (am_cu_job_t *)realloc(b->jobs, (size_t)grown * sizeof *j);
    if (!j)
      return am_cuda_fail(AM_STATUS_OUT_OF_MEMORY, "out of memory");
    b->jobs = j;
    *cap = grown;
  }
  am_cu_job_t *j = &b->jobs[b->njobs++];
  j->batch = b;
  j->e0 = e0;
  j->e1 = e1;
  j->next = NULL;
  return AM_STATUS_OK;
}

/* Slabs of [0, b->limit) that fit the smallest slot of the devices. */
static am_status cut_slabs(am_cu_state_t *s, am_cu_batch_t *b) {
  size_t cap = SIZE_MAX, pin = SIZE_MAX;
  for (int d = 0; d < s->ndev; d++) {
    pthread_mutex_lock(&s->dev[d].mu);
    cap = s->dev[d].cap < cap ? s->dev[d].cap : cap;
    pin = s->dev[d].pin_cap < pin ? s->dev[d].pin_cap : pin;
    pthread_mutex_unlock(&s->dev[d].mu);
  }
  cap = cap > 2 * AM_CU_SLAB_SLACK ? cap - AM_CU_SLAB_SLACK : cap / 2;
  pin = pin > 2 * AM_CU_SLAB_SLACK ? pin - AM_CU_SLAB_SLACK : pin / 2;
  int jcap = 0, start = 0, first = -1; /* first: a staged example of the open slab */
  size_t sd = 0, si = 0, so = 0;
  for (int e = 0; e < b->limit; e++) {
    size_t dev, in, out;
    am_cu_example_bytes(b, e, &dev, &in, &out);
    const int staged = b->ex[e].n > 0;
    const int full =
        e > start &&
        (sd + dev > cap || si + in > pin || so + out > pin || e - start >= AM_CU_SLAB_MAX ||
         (staged && first >= 0 && !same_kind(&b->ex[first], &b->ex[e])));
    if (full) {
      if (add_job(b, start, e, &jcap) != AM_STATUS_OK)
        return AM_STATUS_OUT_OF_MEMORY;
      start = e;
      first = -1;
      sd = si = so = 0;
    }
    if (staged && first < 0)
      first = e;
    sd += dev;
    si += in;
    so += out;
  }
  if (b->limit > start && add_job(b, start, b->limit, &jcap) != AM_STATUS_OK)
    return AM_STATUS_OUT_OF_MEMORY;
  return AM_STATUS_OK;
}

/* With device pointers every slab goes to the device that holds them. */
static am_status device_of_pointers(am_cu_state_t *s, const am_cu_batch_t *b, int *dev) {
  *dev = 0;
  for (int e = 0; e < b->limit; e++) {
    if (b->ex[e].n < 1)
      continue;
    cudaPointerAttributes attr;
    am_status st = AM_STATUS_OK;
    AM_CHECK(cudaPointerGetAttributes(&attr, b->ex[e].att[0]));
    if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged) {
      st = am_cuda_fail(AM_STATUS_INVALID_ARGUMENT,
                        "device pointers: attentions of example %d are not CUDA memory", e);
      goto done;
    }
    for (int d = 0; d < s->ndev; d++)
      if (s->dev[d].id == attr.device) {
        *dev = d;
        return AM_STATUS_OK;
      }
    st = am_cuda_fail(AM_STATUS_INVALID_ARGUMENT,
                      "device pointers: the attentions live on cuda:%d, which this backend "
                      "does not use",
                      attr.device);
  done:
    return st;
  }
  return AM_STATUS_OK;
}

am_status am_cu_submit(am_cu_state_t *s, const am_example_t *ex, int nex,
                       const am_pass_options_t *opt, am_pass_output_t *out,
                       am_cu_batch_t **batch) {
  *batch = NULL;
  if (nex < 0 || (nex > 0 && (!ex || !opt || !out)))
    return am_cuda_fail(AM_STATUS_INVALID_ARGUMENT, "invalid argument");
  for (int e = 0; opt && (opt->want & AM_PASS_GRAD_ROLLOUT_STEPS) && e < nex; e++)
    if (ex[e].step_grad) /* the pipeline then runs a single-target pass per step */
      return am_cuda_fail(AM_STATUS_UNSUPPORTED, "per-step gradients (step_grad) are not "
                                                 "computed on the device (docs/cuda.md)");
  am_cu_batch_t *b = new (std::nothrow) am_cu_batch_t();
  if (!b)
    return am_cuda_fail(AM_STATUS_OUT_OF_MEMORY, "out of memory");
  b->ex = ex;
  b->nex = nex;
  if (opt)
    b->opt = *opt;
  b->out = out;
  b->limit = nex;
  b->arg_status = AM_STATUS_OK;
  b->fault_example = nex;
  b->status = AM_STATUS_OK;
  for (int e = 0; e < nex; e++) {
    const am_status st = check_example(&ex[e], opt, &out[e]);
    if (st != AM_STATUS_OK) {
      b->limit = e;
      b->arg_status = st;
      break;
    }
  }
  b->stop.store(b->limit);
  b->remaining = b->limit;
  int dev = 0;
  am_status st = cut_slabs(s, b);
  if (st == AM_STATUS_OK && b->opt.device_pointers)
    st = device_of_pointers(s, b, &dev);
  if (st != AM_STATUS_OK) {
    free(b->jobs);
    delete b;
    return st;
  }
  *batch = b;
  for (int j = 0; j < b->njobs; j++)
    am_cu_dev_push(&s->dev[b->opt.device_pointers ? dev : j % s->ndev], &b->jobs[j]);
  return AM_STATUS_OK;
}

am_status am_cu_wait(am_cu_state_t *s, am_cu_batch_t *b, am_fault_t *fault,
                     int *fault_example) {
  pthread_mutex_lock(&s->mu);
  while (b->remaining > 0)
    pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  am_status st = AM_STATUS_OK;
  if (fault)
    memset(fault, 0, sizeof *fault);
  if (b->status != AM_STATUS_OK) {
    st = am_fail(s->ctx, b->status, "%s", b->msg);
  } else if (b->fault_example < b->limit) {
    if (fault)
      *fault = b->fault;
    if (fault_example)
      *fault_example = b->fault_example;
    st = AM_STATUS_BAD_INPUT;
  } else if (b->limit < b->nex) {
    if (fault_example)
      *fault_example = b->limit;
    st = b->arg_status;
  }
  free(b->jobs);
  delete b;
  return st;
}
