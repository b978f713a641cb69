/* cuda_internal.h — the host side of the CUDA backend: devices, their staging slots and
 * worker threads, batches of examples submitted by the pipeline, slab plans, and the
 * device-0 helpers behind the small synchronous ops (agreement, saliency, widening).
 *
 * Flow of a batch (backend_cuda.cu): submit checks arguments like the CPU reference,
 * cuts the batch into slabs that fit a slot (device bytes from free memory at create,
 * pinned bytes), hands slab s to device s % ndev; each device's worker (device.cu) plans
 * the slab (slab.cu), copies its inputs into a pinned slot with the copy threads, sends
 * them with one asynchronous copy on the copy stream, runs the kernels on the compute
 * stream and brings the outputs back into the slot; with two slots, reading the next slab
 * from the file overlaps the copy and the kernels of the previous one. Results are
 * scattered into the pipeline's buffers by example, so their order never depends on
 * timing or on the device count. */
#ifndef AM_CUDA_INTERNAL_H
#define AM_CUDA_INTERNAL_H

#include <atomic>
#include <new>
#include <pthread.h>

#include "cuda/kernels.cuh"
#include "cuda/rows.cuh"

extern "C" {
#include "core/ctx.h"
#include "ops/backend.h"
}

#define AM_CU_NSLOT 2
#define AM_CU_MAX_DEVICES 16
#define AM_CU_SLAB_MAX 8192 /* examples per slab (grid.y of the kernels) */
#define AM_CU_ALIGN 256

/* ---- copy threads ---------------------------------------------------------------------
 */
typedef void (*am_cu_task_fn)(void *arg, int job);
typedef struct am_cu_pool am_cu_pool_t;
am_cu_pool_t *am_cu_pool_create(int threads); /* threads - 1 helpers + the caller */
void am_cu_pool_destroy(am_cu_pool_t *pool);
/* Runs fn(arg, j) for j in [0, njobs) on the helpers and the caller; returns when done. */
void am_cu_pool_run(am_cu_pool_t *pool, am_cu_task_fn fn, void *arg, int njobs);

/* ---- a slab ----------------------------------------------------------------------------
 */
typedef struct am_cu_group {
  am_cu_rows_group_t g;
  long long F, G, TR, TG; /* floats into mat: hats and temporaries, -1 when absent */
  long long PR, PG;       /* floats into out: the products (the rows outputs) */
} am_cu_group_t;

typedef struct am_cu_plan {
  int e0, e1;     /* batch examples [e0, e1) */
  int nex;        /* staged examples (n >= 1) */
  int cap;        /* capacity of the arrays below */
  int *bidx;      /* [nex] batch index of staged example s */
  am_cu_ex_t *ex; /* [nex] descriptors */
  int ngroups;
  am_cu_group_t *groups; /* [cap] examples of one length, for the rows products */
  int dt;                /* AM_DT_* staged element type */
  size_t es;             /* its size */
  int grads;             /* gradients staged */
  unsigned any;          /* OR of the examples' flags */
  int nmax, nbmax[3];
  int smax;   /* the most step rows of an example */
  int devptr; /* inputs are device pointers: gathered on the device */
  /* byte offsets into the slot's device buffer; the pinned input holds [pin_off,
   * in_bytes) of it (everything, or with device pointers the tables only), the pinned
   * output [off_out, dev_bytes) */
  size_t off_grad, off_desc, off_idx, off_steps, off_src, in_bytes, pin_off;
  size_t off_work, off_mat, off_out, off_fault, dev_bytes;
  size_t out_bytes; /* [off_out, off_fault + 8 nex): what comes back */
} am_cu_plan_t;

typedef struct am_cu_batch am_cu_batch_t;

typedef struct am_cu_slot {
  unsigned char *dev, *pin_in, *pin_out;
  size_t dev_cap, pin_in_cap, pin_out_cap;
  cudaEvent_t staged, done;
  am_cu_plan_t plan;
  am_cu_batch_t *batch; /* in flight, or NULL */
} am_cu_slot_t;

/* ---- jobs, batches, devices -----------------------------------------------------------
 */
typedef struct am_cu_job {
  am_cu_batch_t *batch;
  int e0, e1;
  struct am_cu_job *next;
} am_cu_job_t;

struct am_cu_batch {
  const am_example_t *ex;
  int nex;
  am_pass_options_t opt;
  am_pass_output_t *out;
  int limit; /* examples [0, limit) are computed: limit = first with bad arguments */
  am_status arg_status;
  std::atomic<int> stop; /* slabs starting at or after it are skipped: a fault or error */
  int remaining;         /* examples not finished yet (state->mu) */
  int fault_example;     /* lowest example with bad input, nex when none (state->mu) */
  am_fault_t fault;
  am_status status; /* first device failure */
  char msg[512];
  am_cu_job_t *jobs;
  int njobs;
  am_cu_batch_t *next; /* submitted and not yet waited */
};

typedef struct am_cu_state am_cu_state_t;

typedef struct am_cu_dev {
  am_cu_state_t *state;
  int id; /* CUDA device ordinal */
  char name[128];
  size_t cap;     /* device bytes of one slab (lowered after an out-of-memory) */
  size_t pin_cap; /* pinned bytes of one slab, in and out */
  cudaStream_t copy, compute;
  cublasHandle_t blas; /* made at the first all-rows slab */
  am_cu_slot_t slot[AM_CU_NSLOT];
  int flight[AM_CU_NSLOT], nflight; /* slots in flight, oldest first (worker only) */
  am_cu_pool_t *pool;
  pthread_t thread;
  int started, quit;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  am_cu_job_t *qhead, *qtail; /* jobs not started (mu) */
} am_cu_dev_t;

/* Device 0's stream and buffers for the synchronous ops, one caller at a time. */
typedef struct am_cu_aux {
  int dev;
  cudaStream_t s;
  unsigned char *d, *h;
  size_t d_cap, h_cap;
  pthread_mutex_t mu;
} am_cu_aux_t;

struct am_cu_state {
  am_ctx_t *ctx;
  int ndev;
  am_cu_dev_t dev[AM_CU_MAX_DEVICES];
  pthread_mutex_t mu; /* batches */
  pthread_cond_t cv;
  am_cu_aux_t aux;
  am_cu_aux_t lc[AM_CU_MAX_DEVICES]; /* the long-context pass's buffers, one per device */
  am_cu_batch_t *queue_head, *queue_tail; /* pass_submit's batches, oldest first */
  size_t fail_alloc_above; /* test hook: device allocations above this fail (0: off) */
};

/* ---- slab.cu --------------------------------------------------------------------------
 */
/* Flags of batch example e (n >= 1) and its bytes on the device, pinned in and out. */
unsigned am_cu_example_flags(const am_cu_batch_t *b, int e, unsigned long long *kdrop);
void am_cu_example_bytes(const am_cu_batch_t *b, int e, size_t *dev, size_t *pin_in,
                         size_t *pin_out);
/* Bytes a slab may need beyond the sum of its examples' (alignment of its regions). */
#define AM_CU_SLAB_SLACK (8 * AM_CU_ALIGN)
am_status am_cu_plan_build(const am_cu_batch_t *b, int e0, int e1, am_cu_plan_t *p);
void am_cu_plan_free(am_cu_plan_t *p);
/* Copies the plan's inputs and descriptors into pin (the pool's threads). */
void am_cu_stage(am_cu_pool_t *pool, const am_cu_batch_t *b, const am_cu_plan_t *p,
                 unsigned char *pin);
/* The kernels of a planned slab whose inputs are in dev (laid out by the plan), on d's
 * compute stream: the part the fused-pass benchmark times. */
am_status am_cu_kernels(am_cu_dev_t *d, const am_cu_plan_t *p, const am_cu_batch_t *b,
                        unsigned char *dev);
/* Queues the copy in, the kernels and the copy out of a staged slot on d's streams. */
am_status am_cu_enqueue(am_cu_dev_t *d, am_cu_slot_t *slot, const am_cu_batch_t *b);
/* After the slot's `done` event: outputs into the batch's buffers; the lowest bad example
 * of the slab, or -1, with its fault. */
int am_cu_collect(const am_cu_batch_t *b, const am_cu_plan_t *p,
                  const unsigned char *pin_out, am_fault_t *fault);

/* ---- batch.cu ---------------------------------------------------------------------------
 */
/* Checks and cuts a batch and hands its slabs to the devices; *batch is freed by wait. */
am_status am_cu_submit(am_cu_state_t *s, const am_example_t *ex, int nex,
                       const am_pass_options_t *opt, am_pass_output_t *out,
                       am_cu_batch_t **batch);
/* Waits for every slab of b, frees b and answers as am_cpu_example_pass would. */
am_status am_cu_wait(am_cu_state_t *s, am_cu_batch_t *b, am_fault_t *fault,
                     int *fault_example);

/* ---- device.cu ------------------------------------------------------------------------
 */
am_status am_cu_dev_start(am_cu_state_t *s, am_cu_dev_t *d, int id, int threads);
void am_cu_dev_stop(am_cu_dev_t *d);
void am_cu_dev_push(am_cu_dev_t *d, am_cu_job_t *job);
/* Records a device failure on the batch (first one wins) and stops it. */
void am_cu_batch_error(am_cu_state_t *s, am_cu_batch_t *b, am_status st, const char *msg);
/* Examples [e0, e1) are finished (computed or skipped). */
void am_cu_batch_done(am_cu_state_t *s, am_cu_batch_t *b, int e0, int e1);

/* widen.cu: the device-pointer inputs of layer l (which: 0 attentions, 1 gradients)
 * gathered compact into the slab, on stream s. */
am_status am_cuda_gather(const am_cu_args_t *a, const am_cu_plan_t *p, int l, int which,
                         am_dtype src_dtype, cudaStream_t s);

/* ---- the synchronous ops on device 0 (agreement.cu, saliency.cu, widen.cu) ------------
 */
am_status am_cu_aux_reserve(am_cu_aux_t *x, size_t dev_bytes, size_t host_bytes);
am_status am_cuda_agreement_run(am_cu_state_t *s, const float *const *x,
                                const float *const *y, const int *m, int npairs, int k,
                                double *out);
am_status am_cuda_saliency_run(am_cu_state_t *s, int nex, int D, const void *const *emb,
                               am_dtype emb_dtype, const void *const *grad,
                               am_dtype grad_dtype, const int32_t *const *idx, const int *n,
                               float *const *out);

/* flow_op.cu: the backend's flow op (cuda/flow.cu's solver; on the CPU in the emulator) */
/* widen.cu: the backend table's widen, device_copy and device_free (ops/backend.h). */
am_status am_cuda_widen(void *state, am_dtype dtype, const void *src, size_t count,
                        float *dst);
void *am_cuda_device_copy(void *state, const void *src, size_t bytes);
void am_cuda_device_free(void *state, void *p);
am_status am_cu_flow(void *state, const am_example_t *ex, int nex,
                     const am_pass_options_t *opt, float *const *out);

/* long_pass.cu: the backend's long_pass (the long-context form; docs/long-context.md). */
am_status am_cu_long_pass(void *state, const am_lc_example_t *ex, int nex,
                          const am_pass_options_t *opt, am_pass_output_t *out,
                          am_fault_t *fault, int *fault_example);

/* Staged element type of a file dtype (F64 is narrowed to F32 while staging). */
static inline int am_cu_dt(am_dtype d) {
  return d == AM_DTYPE_F16 ? AM_DT_F16 : d == AM_DTYPE_BF16 ? AM_DT_BF16 : AM_DT_F32;
}
static inline size_t am_cu_align(size_t x) {
  return (x + AM_CU_ALIGN - 1) & ~(size_t)(AM_CU_ALIGN - 1);
}

#endif
