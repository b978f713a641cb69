/* flow.c — attention flow of one example (Abnar & Zuidema 2020, docs/design.md §3; flow.h),
 * the CPU reference. Builds rollout's matrices Â_l (head fusion, discard, + I, row
 * normalisation: rollout.c) as the capacities of the layered graph, then solves one
 * maximum flow per (source row, input token) with the warm-started push-relabel of
 * maxflow.c, and normalises each source row's flows by their sum as the authors'
 * compute_flows does (`flow_values[u] /= flow_values[u].sum()`).
 *
 * Threads: the sinks are cut into fixed blocks of FLOW_BLOCK; each (source, block) pair
 * is an OpenMP task that starts from rollout's preflow and warm-starts sink after sink.
 * The blocks do not depend on the thread count, and each block runs the same operations
 * in the same order, so the bits of the result do not either. Called from an OpenMP
 * loop over examples (backend_cpu.c), the tasks of an example also feed threads that
 * have run out of examples. */
#include <stdlib.h>
#include <string.h>

#include "cpu/flow.h"
#include "cpu/maxflow.h"
#include "cpu/rollout.h"

/* Sinks per warm-started run. Larger blocks do less work in all (bench/bench_flow.c,
 * README) but give fewer tasks per example. */
#define FLOW_BLOCK 32

static int valid_dtype(am_dtype d) {
  return d == AM_DTYPE_F32 || d == AM_DTYPE_F16 || d == AM_DTYPE_BF16 || d == AM_DTYPE_F64;
}

static am_status check_args(const am_example_t *ex, const am_pass_options_t *opt,
                            const float *out, const am_cpu_scratch_t *scratch) {
  if (!ex || !opt || !out || !scratch || ex->L < 1 || ex->H < 1 || ex->n < 0 ||
      ex->n > ex->T || !valid_dtype(ex->dtype))
    return AM_STATUS_INVALID_ARGUMENT;
  if (opt->fusion != AM_FUSION_MEAN && opt->fusion != AM_FUSION_MAX &&
      opt->fusion != AM_FUSION_MIN)
    return AM_STATUS_INVALID_ARGUMENT;
  if (!(opt->discard >= 0.0 && opt->discard < 1.0))
    return AM_STATUS_INVALID_ARGUMENT;
  if (ex->n == 0)
    return AM_STATUS_OK;
  if (!ex->att || !ex->idx)
    return AM_STATUS_INVALID_ARGUMENT;
  for (int l = 0; l < ex->L; l++)
    if (!ex->att[l])
      return AM_STATUS_INVALID_ARGUMENT;
  for (int j = 0; j < ex->n; j++)
    if (ex->idx[j] < 0 || ex->idx[j] >= ex->T || (j > 0 && ex->idx[j] <= ex->idx[j - 1]))
      return AM_STATUS_INVALID_ARGUMENT;
  if (ex->target != AM_ROW_MEAN && (ex->target < 0 || ex->target >= ex->n))
    return AM_STATUS_INVALID_ARGUMENT;
  return AM_STATUS_OK;
}

/* Grows scratch to `floats` floats. */
static am_status reserve(am_cpu_scratch_t *s, size_t floats) {
  if (s->buf && s->cap >= floats)
    return AM_STATUS_OK;
  free(s->buf);
  s->buf = malloc(floats * sizeof(float));
  s->cap = s->buf ? floats : 0;
  return s->buf ? AM_STATUS_OK : AM_STATUS_OUT_OF_MEMORY;
}

void am_cpu_flow_capacities(const am_example_t *ex, const am_pass_options_t *opt,
                            float *cap, float *capt, float *row) {
  int n = ex->n;
  size_t nn = (size_t)n * n;
  for (int l = 0; l < ex->L; l++) {
    float *c = cap + (size_t)l * nn, *ct = capt + (size_t)l * nn;
    am_rollout_layer_hat(ex, l, opt->fusion, opt->discard, c, row);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++)
        ct[(size_t)j * n + i] = c[(size_t)i * n + j];
  }
}

am_status am_cpu_flow_values(int L, int n, const float *cap, const float *capt,
                             const int *sources, int nsrc, double *raw) {
  size_t bytes = am_maxflow_bytes(L, n);
  if (bytes == 0)
    return AM_STATUS_OUT_OF_MEMORY;
  int blocks = (n + FLOW_BLOCK - 1) / FLOW_BLOCK, failed = 0;
  long tasks = (long)nsrc * blocks;
#pragma omp taskloop grainsize(1) shared(failed)
  for (long t = 0; t < tasks; t++) {
    int src = (int)(t / blocks), b = (int)(t % blocks);
    int j0 = b * FLOW_BLOCK, j1 = j0 + FLOW_BLOCK < n ? j0 + FLOW_BLOCK : n;
    void *mem = malloc(bytes);
    if (!mem) {
#pragma omp atomic write
      failed = 1;
      continue;
    }
    am_maxflow_t g;
    am_maxflow_init(&g, L, n, cap, capt, mem);
    am_maxflow_start(&g, sources[src]);
    for (int j = j0; j < j1; j++)
      raw[(size_t)src * n + j] = am_maxflow_solve(&g, j);
    free(mem);
  }
  return failed ? AM_STATUS_OUT_OF_MEMORY : AM_STATUS_OK;
}

/* out[j] = mean over source rows s of raw[s][j] / sum_k raw[s][k], summed in source
 * order; a row whose flows sum to 0 (impossible with + I, see docs/analyses.md) counts as
 * 0. acc: [n] scratch. */
static void normalise(const double *raw, int nsrc, int n, double *acc, float *out) {
  memset(acc, 0, (size_t)n * sizeof *acc);
  for (int s = 0; s < nsrc; s++) {
    const double *r = raw + (size_t)s * n;
    double sum = 0.0;
    for (int k = 0; k < n; k++)
      sum += r[k];
    if (sum > 0.0)
      for (int j = 0; j < n; j++)
        acc[j] += r[j] / sum;
  }
  for (int j = 0; j < n; j++)
    out[j] = (float)(acc[j] / nsrc);
}

am_status am_cpu_flow(const am_example_t *ex, const am_pass_options_t *opt, float *out,
                      am_cpu_scratch_t *scratch) {
  am_status st = check_args(ex, opt, out, scratch);
  if (st != AM_STATUS_OK || ex->n == 0)
    return st;
  int n = ex->n, L = ex->L, nsrc = ex->target == AM_ROW_MEAN ? n : 1;
  size_t nn = (size_t)n * n;
  if (nn / (size_t)n != (size_t)n || nn > SIZE_MAX / 4 / sizeof(float) / (size_t)L)
    return AM_STATUS_OUT_OF_MEMORY;
  /* doubles first (malloc's alignment suits them): raw [nsrc,n], acc [n]; then floats:
   * cap and capt [L,n,n], row [n]; then the sources. */
  size_t nd = (size_t)nsrc * n + (size_t)n;
  size_t floats = 2 * nd + 2 * (size_t)L * nn + (size_t)n + (size_t)nsrc;
  st = reserve(scratch, floats);
  if (st != AM_STATUS_OK)
    return st;
  double *raw = (double *)(void *)scratch->buf, *acc = raw + (size_t)nsrc * n;
  float *cap = scratch->buf + 2 * nd, *capt = cap + (size_t)L * nn,
        *row = capt + (size_t)L * nn;
  int *sources = (int *)(void *)(row + n);
  for (int s = 0; s < nsrc; s++)
    sources[s] = ex->target == AM_ROW_MEAN ? s : ex->target;
  am_cpu_flow_capacities(ex, opt, cap, capt, row);
  st = am_cpu_flow_values(L, n, cap, capt, sources, nsrc, raw);
  if (st != AM_STATUS_OK)
    return st;
  normalise(raw, nsrc, n, acc, out);
  return AM_STATUS_OK;
}
