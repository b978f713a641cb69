/* head_stats.cu — per-head statistics and head importance of each example (docs/design.md
 * §3) from the row-block partial sums the fused kernel left: entropy, entropy / ln n,
 * confidence, attention to the first, last, own, previous and next token and the
 * distance, each averaged over the n valid rows (the distance on a patch grid over the
 * rows x cols patches, as the CPU does), and importance sum_i |sum_j a g|.
 *
 * Work mapping: grid = examples, one thread per (layer, head) adds the nb = n/16 partials
 * in block order, in double. Per example: reads L*nb*H*9 doubles, writes
 * (9 + 1)*L*H floats. */
#include "cuda/kernels.cuh"

namespace {

__global__ void __launch_bounds__(128) head_stats_kernel(am_cu_args_t a) {
  const am_cu_ex_t X = a.ex[blockIdx.x];
  const unsigned f = X.flags;
  if (!(f & (AM_EXF_STATS | AM_EXF_IMP)))
    return;
  const int n = X.n, nb = am_cu_nb(n), L = a.L, H = a.H, LH = L * H;
  for (int p = threadIdx.x; p < LH; p += blockDim.x) {
    const int l = p / H, h = p - l * H;
    double acc[AM_CU_NSTAT];
#pragma unroll
    for (int s = 0; s < AM_CU_NSTAT; s++)
      acc[s] = 0.0;
    for (int b = 0; b < nb; b++) {
      const double *P = a.work + X.stats + (((size_t)l * nb + b) * H + h) * AM_CU_NSTAT;
#pragma unroll
      for (int s = 0; s < AM_CU_NSTAT; s++)
        acc[s] += P[s];
    }
    if (f & AM_EXF_IMP)
      a.out[X.o_imp + p] = (float)acc[AM_PS_IMP];
    if (!(f & AM_EXF_STATS))
      continue;
    float *o = a.out + X.o_stats + p; /* [AM_STAT_COUNT, L, H] */
    o[(size_t)AM_STAT_ENTROPY * LH] = (float)(acc[AM_PS_ENT] / n);
    /* entropy / ln n; one token has nothing to normalise: 0, as the CPU */
    o[(size_t)AM_STAT_ENTROPY_NORM * LH] =
        n > 1 ? (float)(acc[AM_PS_ENT] / n / log((double)n)) : 0.0f;
    o[(size_t)AM_STAT_CONFIDENCE * LH] = (float)(acc[AM_PS_CONF] / n);
    o[(size_t)AM_STAT_TO_FIRST * LH] = (float)(acc[AM_PS_FIRST] / n);
    o[(size_t)AM_STAT_TO_LAST * LH] = (float)(acc[AM_PS_LAST] / n);
    o[(size_t)AM_STAT_TO_SELF * LH] = (float)(acc[AM_PS_SELF] / n);
    o[(size_t)AM_STAT_TO_PREV * LH] = (float)(acc[AM_PS_PREV] / n);
    o[(size_t)AM_STAT_TO_NEXT * LH] = (float)(acc[AM_PS_NEXT] / n);
    o[(size_t)AM_STAT_DISTANCE * LH] =
        (f & AM_EXF_GRID) ? (float)(acc[AM_PS_DIST] / ((double)a.grid_rows * a.grid_cols))
                          : (float)(acc[AM_PS_DIST] / n);
  }
}

} // namespace

am_status am_cuda_head_stats(const am_cu_args_t *a, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(head_stats_kernel, dim3((unsigned)a->nex), dim3(128), 0, s, *a);
done:
  return st;
}
