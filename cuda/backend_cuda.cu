/* backend_cuda.cu — the CUDA backend's entry in the op table (ops/backend.h): choosing
 * the devices ("cuda", "cuda:N", "cuda:all", "cuda:0,2"), checking a batch's arguments
 * as the CPU reference does, cutting it into slabs handed round-robin to the devices,
 * and answering with the same fault the CPU would report (the lowest example, then the
 * first bad value in the CPU's order). See cuda_internal.h for the flow and
 * docs/cuda.md for the design. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"

/* ---- errors
 * ------------------------------------------------------------------------------ */

static thread_local char am_cu_err[512];

const char *am_cuda_error(void) { return am_cu_err; }

am_status am_cuda_fail(am_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(am_cu_err, sizeof am_cu_err, fmt, ap);
  va_end(ap);
  return status;
}

am_status am_cuda_check(cudaError_t err, const char *what, const char *file, int line) {
  if (err == cudaSuccess)
    return AM_STATUS_OK;
  (void)cudaGetLastError(); /* an allocation failure must not resurface at a launch */
  const char *base = strrchr(file, '/');
  return am_cuda_fail(
      err == cudaErrorMemoryAllocation ? AM_STATUS_OUT_OF_MEMORY : AM_STATUS_DEVICE,
      "%s:%d: %s: %s", base ? base + 1 : file, line, what, cudaGetErrorString(err));
}

am_status am_cuda_check(cublasStatus_t err, const char *what, const char *file, int line) {
  if (err == CUBLAS_STATUS_SUCCESS)
    return AM_STATUS_OK;
  const char *base = strrchr(file, '/');
  return am_cuda_fail(err == CUBLAS_STATUS_ALLOC_FAILED ? AM_STATUS_OUT_OF_MEMORY
                                                        : AM_STATUS_DEVICE,
                      "%s:%d: %s: cuBLAS %s", base ? base + 1 : file, line, what,
                      cublasGetStatusString(err));
}

/* ---- devices
 * ------------------------------------------------------------------------------- */

/* Device ordinals named by spec into ids (count of them in *n); messages name spec. */
static am_status parse_spec(am_ctx_t *ctx, const char *spec, int count, int *ids, int *n) {
  *n = 0;
  if (strcmp(spec, "cuda") == 0) {
    ids[(*n)++] = 0;
    return AM_STATUS_OK;
  }
  const char *p = spec + 5; /* after "cuda:" */
  if (strcmp(p, "all") == 0) {
    for (int d = 0; d < count && d < AM_CU_MAX_DEVICES; d++)
      ids[(*n)++] = d;
    return AM_STATUS_OK;
  }
  while (*p) {
    char *end = NULL;
    long v = strtol(p, &end, 10);
    if (end == p || v < 0 || v > 1000 || (*end && *end != ',') || *n == AM_CU_MAX_DEVICES)
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                     "backend %s: expected cuda, cuda:N, cuda:all or a list cuda:0,1",
                     spec);
    if (v >= count)
      return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                     "backend %s: no CUDA device %ld (this machine has %d: 0..%d)", spec, v,
                     count, count - 1);
    for (int k = 0; k < *n; k++)
      if (ids[k] == v)
        return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                       "backend %s: device %ld is named twice", spec, v);
    ids[(*n)++] = (int)v;
    p = *end ? end + 1 : end;
  }
  if (*n == 0)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT,
                   "backend %s: expected cuda, cuda:N, cuda:all or a list cuda:0,1", spec);
  return AM_STATUS_OK;
}

static void name_devices(am_ctx_t *ctx, const am_cu_state_t *s) {
  int same = 1;
  for (int d = 1; d < s->ndev; d++)
    same &= strcmp(s->dev[d].name, s->dev[0].name) == 0;
  if (s->ndev == 1 || !same) {
    size_t at = 0;
    ctx->device_name[0] = '\0';
    for (int d = 0; d < s->ndev && at + 1 < sizeof ctx->device_name; d++)
      at += (size_t)snprintf(ctx->device_name + at, sizeof ctx->device_name - at, "%s%s",
                             d ? " + " : "", s->dev[d].name);
  } else {
    snprintf(ctx->device_name, sizeof ctx->device_name, "%d x %.100s", s->ndev,
             s->dev[0].name);
  }
}

static void cuda_destroy(void *state);

static am_status cuda_create(am_ctx_t *ctx, const char *spec, void **state) {
  *state = NULL;
  int count = 0, ids[AM_CU_MAX_DEVICES] = {0}, n = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0)
    return am_fail(ctx, AM_STATUS_NO_DEVICE, "backend %s: no CUDA device (%s)", spec,
                   err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
  am_status st = parse_spec(ctx, spec, count, ids, &n);
  if (st != AM_STATUS_OK)
    return st;
  am_cu_state_t *s = new (std::nothrow) am_cu_state_t();
  if (!s)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  s->ctx = ctx;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_mutex_init(&s->aux.mu, NULL);
  s->aux.dev = ids[0];
  for (int d = 0; d < n; d++) {
    pthread_mutex_init(&s->lc[d].mu, NULL);
    s->lc[d].dev = ids[d];
  }
  const char *fail = getenv("AM_CUDA_FAIL_ALLOC_ABOVE");
  s->fail_alloc_above = fail ? (size_t)strtoull(fail, NULL, 10) : 0;
  const int threads = ctx->threads / n > 0 ? ctx->threads / n : 1;
  for (int d = 0; d < n && st == AM_STATUS_OK; d++) {
    s->ndev = d + 1;
    st = am_cu_dev_start(s, &s->dev[d], ids[d], threads);
  }
  if (st != AM_STATUS_OK) {
    st = am_fail(ctx, st, "backend %s: %s", spec, am_cuda_error());
    cuda_destroy(s);
    return st;
  }
  name_devices(ctx, s);
  *state = s;
  return AM_STATUS_OK;
}

static void cuda_destroy(void *state) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  if (!s)
    return;
  for (int d = 0; d < s->ndev; d++)
    am_cu_dev_stop(&s->dev[d]);
  for (int d = -1; d < s->ndev; d++) {
    am_cu_aux_t *x = d < 0 ? &s->aux : &s->lc[d];
    if ((x->d || x->h || x->s) && cudaSetDevice(x->dev) == cudaSuccess) {
      cudaFree(x->d);
      cudaFreeHost(x->h);
      if (x->s)
        cudaStreamDestroy(x->s);
    }
    if (d >= 0)
      pthread_mutex_destroy(&x->mu);
  }
  pthread_mutex_destroy(&s->aux.mu);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  delete s;
}

/* ---- the ops
 * ------------------------------------------------------------------------------ */

static am_status cuda_pass_submit(void *state, const am_example_t *ex, int nex,
                                  const am_pass_options_t *opt, am_pass_output_t *out) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  am_cu_batch_t *b = NULL;
  const am_status st = am_cu_submit(s, ex, nex, opt, out, &b);
  if (st != AM_STATUS_OK)
    return am_fail(s->ctx, st, "%s", am_cuda_error());
  pthread_mutex_lock(&s->mu);
  if (s->queue_tail)
    s->queue_tail->next = b;
  else
    s->queue_head = b;
  s->queue_tail = b;
  pthread_mutex_unlock(&s->mu);
  return AM_STATUS_OK;
}

static am_status cuda_pass_wait(void *state, am_fault_t *fault, int *fault_example) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  pthread_mutex_lock(&s->mu);
  am_cu_batch_t *b = s->queue_head;
  if (b) {
    s->queue_head = b->next;
    if (!s->queue_head)
      s->queue_tail = NULL;
  }
  pthread_mutex_unlock(&s->mu);
  if (!b)
    return am_fail(s->ctx, AM_STATUS_INVALID_ARGUMENT, "cuda: pass_wait without a batch");
  return am_cu_wait(s, b, fault, fault_example);
}

static am_status cuda_example_pass(void *state, const am_example_t *ex, int nex,
                                   const am_pass_options_t *opt, am_pass_output_t *out,
                                   am_fault_t *fault, int *fault_example) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  am_cu_batch_t *b = NULL;
  const am_status st = am_cu_submit(s, ex, nex, opt, out, &b);
  if (st != AM_STATUS_OK)
    return am_fail(s->ctx, st, "%s", am_cuda_error());
  return am_cu_wait(s, b, fault, fault_example);
}

/* Four slabs per device per chunk keep the devices busy across the pipeline's two
 * chunks in flight; the pipeline's buffers for 4096 examples stay small. */
static int cuda_chunk_examples(void *state, uint64_t bytes_per_example) {
  const am_cu_state_t *s = (const am_cu_state_t *)state;
  if (bytes_per_example == 0)
    return 0;
  const uint64_t want = 4ull * (uint64_t)s->ndev * s->dev[0].pin_cap / bytes_per_example;
  return want < 1 ? 1 : want > 4096 ? 4096 : (int)want;
}

static am_status cuda_agreement(void *state, const float *const *x, const float *const *y,
                                const int *m, int npairs, int k, double *out) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  const am_status st = am_cuda_agreement_run(s, x, y, m, npairs, k, out);
  return st == AM_STATUS_OK ? st : am_fail(s->ctx, st, "agreement: %s", am_cuda_error());
}

static am_status cuda_saliency(void *state, int nex, int D, const void *const *emb,
                               am_dtype emb_dtype, const void *const *grad,
                               am_dtype grad_dtype, const int32_t *const *idx, const int *n,
                               float *const *out) {
  am_cu_state_t *s = (am_cu_state_t *)state;
  const am_status st =
      am_cuda_saliency_run(s, nex, D, emb, emb_dtype, grad, grad_dtype, idx, n, out);
  return st == AM_STATUS_OK ? st : am_fail(s->ctx, st, "saliency: %s", am_cuda_error());
}

/* C++17 has no designated initialisers: the labels say which field each value fills, in
 * the order of ops/backend.h. */
extern "C" const am_backend_t am_backend_cuda = {
    /* .name           = */ "cuda",
    /* .create         = */ cuda_create,
    /* .destroy        = */ cuda_destroy,
    /* .example_pass   = */ cuda_example_pass,
    /* .flow           = */ am_cu_flow,
    /* .agreement      = */ cuda_agreement,
    /* .pass_submit    = */ cuda_pass_submit,
    /* .pass_wait      = */ cuda_pass_wait,
    /* .chunk_examples = */ cuda_chunk_examples,
    /* .saliency       = */ cuda_saliency,
    /* .widen          = */ am_cuda_widen,
    /* .device_copy    = */ am_cuda_device_copy,
    /* .device_free    = */ am_cuda_device_free,
    /* .long_pass      = */ am_cu_long_pass,
    /* .cross          = */ NULL, /* the CPU reference beside the device (docs/cuda.md) */
};
