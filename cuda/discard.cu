/* discard.cu — the discard ratio of attention rollout (vit-explain; docs/design.md §3,
 * docs/analyses.md): the k = floor(n^2 d) smallest entries of the fused matrix F of one
 * layer are set to 0, ties broken toward the lower flat index, flat index 0 never zeroed
 * and not replaced by another entry. As the CPU reference: an exact radix selection on
 * the float bits (three histogram passes of 11, 11 and 10 bits) finds the k-th smallest
 * key theta and how many entries equal to theta fall below the cut; then entries below
 * theta and the first `take` entries equal to it (in flat order) are zeroed.
 *
 * Work mapping: one block of 1024 threads per example (rare option, small share of the
 * pass). Histograms in shared memory with integer atomics (exact counts, any order). The
 * tie pass walks F in tiles of 1024, ranks equal keys with warp ballots and a per-tile
 * prefix over warps, so the flat order decides which ties go.
 * Per example and layer: reads F (4 n^2 bytes) four times, writes the zeroed entries;
 * no flops beyond compares. */
#include "cuda/kernels.cuh"

namespace {

#define AM_DISCARD_THREADS 1024

__device__ __forceinline__ unsigned order_key(float x) {
  return __float_as_uint(x) & 0x7FFFFFFFu;
}

__global__ void __launch_bounds__(AM_DISCARD_THREADS) discard_kernel(am_cu_args_t a) {
  __shared__ unsigned hist[2048];
  __shared__ unsigned long long s_rank;
  __shared__ unsigned s_bin;
  __shared__ unsigned warp_eq[AM_DISCARD_THREADS / 32];
  const am_cu_ex_t X = a.ex[blockIdx.x];
  if (!(X.flags & AM_EXF_DISCARD))
    return;
  const unsigned long long nn = (unsigned long long)X.n * X.n;
  float *F = a.mat + X.F;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int shifts[3] = {21, 10, 0};
  const unsigned widths[3] = {11, 11, 10};
  unsigned prefix = 0, mask = 0;
  if (tid == 0)
    s_rank = X.kdrop - 1; /* rank (0 = smallest) of the last entry to drop */
  for (int pass = 0; pass < 3; pass++) {
    const unsigned bins = (1u << widths[pass]) - 1u;
    for (int b = tid; b < 2048; b += blockDim.x)
      hist[b] = 0;
    __syncthreads();
    for (unsigned long long p = tid; p < nn; p += blockDim.x) {
      const unsigned key = order_key(F[p]);
      if ((key & mask) == prefix)
        atomicAdd(&hist[(key >> shifts[pass]) & bins], 1u);
    }
    __syncthreads();
    if (tid == 0) { /* skip the bins that lie wholly below the rank */
      unsigned long long rank = s_rank;
      unsigned b = 0;
      while (hist[b] <= rank)
        rank -= hist[b++];
      s_rank = rank;
      s_bin = b;
    }
    __syncthreads();
    prefix |= s_bin << shifts[pass];
    mask |= bins << shifts[pass];
  }
  const unsigned theta = prefix;
  const unsigned long long take = s_rank + 1; /* equal keys to drop, first in flat order */
  unsigned long long before = 0;              /* equal keys in earlier tiles */
  for (unsigned long long t0 = 0; t0 < nn; t0 += blockDim.x) {
    const unsigned long long p = t0 + tid;
    const unsigned key = p < nn ? order_key(F[p]) : 0xFFFFFFFFu;
    const bool eq = key == theta;
    const unsigned ballot = __ballot_sync(AM_FULL_MASK, eq);
    __syncthreads(); /* warp_eq of the previous tile has been read */
    if (lane == 0)
      warp_eq[warp] = __popc(ballot);
    __syncthreads();
    unsigned long long rank = before + __popc(ballot & ((1u << lane) - 1u)), total = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) {
      rank += w < warp ? warp_eq[w] : 0;
      total += warp_eq[w];
    }
    const bool drop = key < theta || (eq && rank < take);
    if (p < nn && drop && p != 0)
      F[p] = 0.0f;
    before += total;
  }
}

} // namespace

am_status am_cuda_discard(const am_cu_args_t *a, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  AM_LAUNCH(discard_kernel, dim3((unsigned)a->nex), dim3(AM_DISCARD_THREADS), 0, s, *a);
done:
  return st;
}
