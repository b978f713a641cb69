/* flow.cu — attention flow on the device (Abnar & Zuidema 2020, docs/design.md §3): many
 * independent maximum-flow problems, one per (example, source row, block of 32 sinks),
 * each solved by one thread block with the synchronous push-relabel of flow_sync.h (the
 * CPU reference's algorithm, made synchronous; its host emulation is checked against the
 * CPU reference by tests/test_flow_sync.c).
 *
 * Kernels and how the work maps:
 *  - caps_kernel (flow_caps.h), grid (L, examples), 256 threads: one layer of one
 *    example; a thread per element of the fused [n,n] matrix (H loads, F16/BF16 widened
 *    in registers), the discard selection on thread 0, a thread per row for + I and the
 *    row normalisation.
 *    Reads H·n² attention elements, writes 2·n² floats (Â and its transpose) per layer.
 *  - solve_kernel, a persistent grid of up to (resident blocks per SM × SMs) blocks of
 *    256 threads: each block takes tasks in turn and runs rollout's preflow, then one
 *    warm-started maximum flow per sink of its block; thread t owns nodes v ≡ t mod 256.
 *    Workspace per block: 3·L·n² doubles + O(L·n) (4.7 MB at 12 layers × 128 tokens).
 *    Work per sink: one breadth-first search (≤ 2·L·n² arc checks) plus rounds whose
 *    arc scans match the CPU's pushes and relabels (≈ 200 rounds per sink at 12 × 64 in
 *    the host emulation).
 *  - norm_kernel, one block per example: the mean over source rows of the flows divided
 *    by their sum, in the CPU's order.
 * Launch settings: 256 threads and the occupancy-derived grid are first choices that no
 * measurement backs yet (no GPU was at hand when this was written; see
 * docs/analyses.md). The results do not depend on them: every float is computed by one
 * thread in a fixed order, and no float atomics are used. */
#ifndef AM_CUDA_EMU /* the emulator includes its own stand-ins first */
#include <cuda_runtime.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/flow.cuh"
#include "cuda/flow_caps.h"

#define FLOW_THREADS 256
#define FLOW_SINKS 32 /* sinks per task, as the CPU's FLOW_BLOCK */
#define AM_ROW_MEAN_                                                                       \
  (-1) /* host/cpu/example_pass.h's AM_ROW_MEAN: the mean of all rows                      \
        */

typedef struct ex_meta {
  int n, nsrc;
  long long cap_off, raw_off, sum_off; /* floats into cap; doubles into raw and sums */
} ex_meta_t;

typedef struct flow_task {
  int e, src, row, j0, j1; /* example, source token, its row in raw, sinks [j0, j1) */
} flow_task_t;

__global__ void caps_kernel(const void *const *att, const int32_t *idx,
                            const ex_meta_t *meta, int nex, int L, int H, int T, int dtype,
                            int fusion, double discard, float *cap) {
  __shared__ unsigned hist[2048];
  int l = (int)blockIdx.x;
  for (int e = (int)blockIdx.y; e < nex; e += (int)gridDim.y) {
    int n = meta[e].n; /* the same for the whole block */
    if (n == 0)
      continue;
    size_t nn = (size_t)n * n;
    float *c = cap + meta[e].cap_off;
    am_fs_layer_caps(att[(size_t)e * L + l], dtype, H, T, idx + (size_t)e * T, n, fusion,
                     discard, c + (size_t)l * nn, c + (size_t)(L + l) * nn, hist);
  }
}

__global__ void solve_kernel(const flow_task_t *tasks, int ntasks, const ex_meta_t *meta,
                             int L, const float *cap, double *raw, unsigned char *ws,
                             size_t ws_bytes) {
  __shared__ int cnt[3];
  void *mem = ws + (size_t)blockIdx.x * ws_bytes;
  for (int t = (int)blockIdx.x; t < ntasks; t += (int)gridDim.x) {
    flow_task_t k = tasks[t];
    ex_meta_t m = meta[k.e];
    size_t nn = (size_t)m.n * m.n;
    const float *c = cap + m.cap_off;
    am_fs_t fs;
    am_fs_layout(&fs, L, m.n, c, c + (size_t)L * nn, mem);
    am_fs_task(&fs, k.src, k.j0, k.j1, raw + m.raw_off + (size_t)k.row * m.n, cnt, NULL);
    __syncthreads();
  }
}

__global__ void norm_kernel(const ex_meta_t *meta, int T, const double *raw, double *sums,
                            float *out) {
  ex_meta_t m = meta[blockIdx.x];
  if (m.n == 0)
    return;
  const double *r = raw + m.raw_off;
  double *sm = sums + m.sum_off;
  for (int s = (int)threadIdx.x; s < m.nsrc; s += (int)blockDim.x) {
    double t = 0.0;
    for (int k = 0; k < m.n; k++)
      t += r[(size_t)s * m.n + k];
    sm[s] = t;
  }
  __syncthreads();
  for (int j = (int)threadIdx.x; j < m.n; j += (int)blockDim.x) {
    double acc = 0.0;
    for (int s = 0; s < m.nsrc; s++)
      if (sm[s] > 0.0)
        acc += r[(size_t)s * m.n + j] / sm[s];
    out[(size_t)blockIdx.x * T + j] = (float)(acc / m.nsrc);
  }
}

static am_status device_error(char *err, size_t errlen, const char *what, cudaError_t e) {
  if (err && errlen)
    snprintf(err, errlen, "attention flow: %s: %s", what, cudaGetErrorString(e));
  return e == cudaErrorMemoryAllocation ? AM_STATUS_OUT_OF_MEMORY : AM_STATUS_DEVICE;
}

/* The emulator of tests/cuda_emu runs the same kernels through its launcher. */
#ifdef AM_CUDA_EMU
#define FLOW_LAUNCH(kernel, grid, block, stream, ...)                                      \
  am_emu_launch(#kernel, kernel, grid, block, 0, stream, __VA_ARGS__)
#else
#define FLOW_LAUNCH(kernel, grid, block, stream, ...)                                      \
  kernel<<<grid, block, 0, stream>>>(__VA_ARGS__)
#endif

#define CK(call)                                                                           \
  do {                                                                                     \
    cudaError_t e_ = (call);                                                               \
    if (e_ != cudaSuccess) {                                                               \
      st = device_error(err, errlen, #call, e_);                                           \
      goto done;                                                                           \
    }                                                                                      \
  } while (0)

static int valid_batch(const am_cuda_flow_batch_t *b) {
  if (!b || b->nex < 0 || b->L < 1 || b->H < 1 || b->T < 1 || !b->n || !b->target ||
      !(b->discard >= 0.0 && b->discard < 1.0) ||
      (b->dtype != AM_DTYPE_F32 && b->dtype != AM_DTYPE_F16 && b->dtype != AM_DTYPE_BF16 &&
       b->dtype != AM_DTYPE_F64) ||
      (b->fusion != AM_FUSION_MEAN && b->fusion != AM_FUSION_MAX &&
       b->fusion != AM_FUSION_MIN))
    return 0;
  if (b->nex > 0 && (!b->att || !b->idx || !b->out))
    return 0;
  for (int e = 0; e < b->nex; e++) {
    int n = b->n[e], t = b->target[e];
    if (n < 0 || n > b->T || (n > 0 && t != AM_ROW_MEAN_ && (t < 0 || t >= n)))
      return 0;
  }
  return 1;
}

/* Offsets of every example's capacities, raw flows and sums, and the task list. Returns
 * the number of tasks; *nmax the largest n; totals in cap_total, raw_total, sum_total. */
static int plan(const am_cuda_flow_batch_t *b, ex_meta_t *meta, flow_task_t *tasks,
                int *nmax, long long *cap_total, long long *raw_total,
                long long *sum_total) {
  long long cap = 0, raw = 0, sum = 0;
  int nt = 0;
  *nmax = 0;
  for (int e = 0; e < b->nex; e++) {
    int n = b->n[e], mean = b->target[e] == AM_ROW_MEAN_;
    int nsrc = n == 0 ? 0 : mean ? n : 1;
    if (meta) { /* NULL: the first call only counts (it crashed on the first GPU run) */
      meta[e].n = n;
      meta[e].nsrc = nsrc;
      meta[e].cap_off = cap;
      meta[e].raw_off = raw;
      meta[e].sum_off = sum;
    }
    cap += 2LL * b->L * n * n;
    raw += (long long)nsrc * n;
    sum += nsrc;
    *nmax = n > *nmax ? n : *nmax;
    for (int s = 0; s < nsrc; s++)
      for (int j0 = 0; j0 < n; j0 += FLOW_SINKS) {
        if (tasks) {
          flow_task_t t = {e, mean ? s : b->target[e], s, j0,
                           j0 + FLOW_SINKS < n ? j0 + FLOW_SINKS : n};
          tasks[nt] = t;
        }
        nt++;
      }
  }
  *cap_total = cap;
  *raw_total = raw;
  *sum_total = sum;
  return nt;
}

/* Solver blocks: as many as can be resident, no more than the tasks, and workspaces in at
 * most half of the free device memory. */
static am_status solver_grid(int ntasks, size_t ws_bytes, int *grid, char *err,
                             size_t errlen) {
  am_status st = AM_STATUS_OK;
  int dev = 0, sms = 0, per_sm = 0;
  size_t free_b = 0, total_b = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, solve_kernel, FLOW_THREADS, 0));
  CK(cudaMemGetInfo(&free_b, &total_b));
  {
    long long g = (long long)sms * (per_sm > 0 ? per_sm : 1);
    long long fit = (long long)(free_b / 2 / ws_bytes);
    g = g < ntasks ? g : ntasks;
    g = g < fit ? g : fit;
    if (g < 1) {
      if (err && errlen)
        snprintf(err, errlen, "attention flow: a solver needs %zu bytes of device memory",
                 ws_bytes);
      return AM_STATUS_OUT_OF_MEMORY;
    }
    *grid = (int)g;
  }
done:
  return st;
}

extern "C" am_status am_cuda_flow(const am_cuda_flow_batch_t *b, cudaStream_t stream,
                                  char *err, size_t errlen) {
  if (!valid_batch(b))
    return AM_STATUS_INVALID_ARGUMENT;
  am_status st = AM_STATUS_OK;
  ex_meta_t *meta = NULL, *d_meta = NULL;
  flow_task_t *tasks = NULL, *d_tasks = NULL;
  float *d_cap = NULL;
  double *d_raw = NULL, *d_sums = NULL;
  unsigned char *d_ws = NULL;
  int nmax = 0, grid = 0;
  long long cap_total, raw_total, sum_total;
  int ntasks = plan(b, NULL, NULL, &nmax, &cap_total, &raw_total, &sum_total);
  if (ntasks == 0)
    return AM_STATUS_OK;
  size_t ws_bytes = (am_fs_bytes(b->L, nmax) + 255) / 256 * 256;
  meta = (ex_meta_t *)malloc((size_t)b->nex * sizeof *meta);
  tasks = (flow_task_t *)malloc((size_t)ntasks * sizeof *tasks);
  if (!meta || !tasks) {
    st = AM_STATUS_OUT_OF_MEMORY;
    goto done;
  }
  plan(b, meta, tasks, &nmax, &cap_total, &raw_total, &sum_total);
  st = solver_grid(ntasks, ws_bytes, &grid, err, errlen);
  if (st != AM_STATUS_OK)
    goto done;
  CK(cudaMallocAsync((void **)&d_meta, (size_t)b->nex * sizeof *d_meta, stream));
  CK(cudaMallocAsync((void **)&d_tasks, (size_t)ntasks * sizeof *d_tasks, stream));
  CK(cudaMallocAsync((void **)&d_cap, (size_t)cap_total * sizeof *d_cap, stream));
  CK(cudaMallocAsync((void **)&d_raw, (size_t)raw_total * sizeof *d_raw, stream));
  CK(cudaMallocAsync((void **)&d_sums, (size_t)sum_total * sizeof *d_sums, stream));
  CK(cudaMallocAsync((void **)&d_ws, (size_t)grid * ws_bytes, stream));
  CK(cudaMemcpyAsync(d_meta, meta, (size_t)b->nex * sizeof *meta, cudaMemcpyHostToDevice,
                     stream));
  CK(cudaMemcpyAsync(d_tasks, tasks, (size_t)ntasks * sizeof *tasks, cudaMemcpyHostToDevice,
                     stream));
  {
    dim3 caps_grid((unsigned)b->L, (unsigned)(b->nex < 65535 ? b->nex : 65535));
    FLOW_LAUNCH(caps_kernel, caps_grid, dim3(FLOW_THREADS), stream, b->att, b->idx,
                (const ex_meta_t *)d_meta, b->nex, b->L, b->H, b->T, (int)b->dtype,
                (int)b->fusion, b->discard, d_cap);
    CK(cudaGetLastError());
    FLOW_LAUNCH(solve_kernel, dim3((unsigned)grid), dim3(FLOW_THREADS), stream,
                (const flow_task_t *)d_tasks, ntasks, (const ex_meta_t *)d_meta, b->L,
                (const float *)d_cap, d_raw, d_ws, ws_bytes);
    CK(cudaGetLastError());
    FLOW_LAUNCH(norm_kernel, dim3((unsigned)b->nex), dim3(128), stream,
                (const ex_meta_t *)d_meta, b->T, (const double *)d_raw, d_sums, b->out);
    CK(cudaGetLastError());
  }
  CK(cudaStreamSynchronize(stream));
done : {
  void *owned[6] = {d_ws, d_sums, d_raw, d_cap, d_tasks, d_meta};
  for (int k = 0; k < 6; k++)
    if (owned[k])
      cudaFreeAsync(owned[k], stream);
}
  cudaStreamSynchronize(stream); /* the host arrays below were the copies' sources */
  free(tasks);
  free(meta);
  return st;
}
