/* fused_layer.cu — the fused pass over one layer of every example of a slab: each
 * attention row (and gradient row) is read from device memory once and feeds
 *   - the input checks (finite, >= 0, row sum within tolerance, finite gradients),
 *   - the per-head statistics and head importance (row terms, summed per row block),
 *   - head fusion F(A_l) (mean, max or min over heads, as the CPU fuses),
 *   - the rollout row step  v <- v rownorm(F + I)  and the gradient-weighted rollout
 *     row step  v <- v + v (mean_h max(0, G (.) A))  (docs/design.md §3), or the matrices F
 *     and Gbar for the matrix form (discard, rows longer than 512, all rows).
 *
 * Work mapping. grid = (row blocks, examples); a block of 128 threads owns AM_CU_RB = 16
 * query rows of one example and reads all H heads of them. A row belongs to a group of
 * G lanes (G = 8 for n <= 128, 16 for n <= 256, else 32); lane g of the group holds keys
 * j = tile*16G + k*G + g, k < 16 (coalesced across the group), so a tile is 16G keys and
 * rows up to 512 keys take one tile. A group walks the heads of its row, keeps the head
 * sum (or max/min) and sum_h max(0, g a) of its 16 keys in registers, and reduces the row
 * terms of each head over its G lanes with shuffles. Only rows of one tile take the row
 * steps in the kernel: the step needs the fused row's sum, known after the last head.
 * Row-step partials go through shared memory ([groups][16G] doubles) into one partial
 * vector per block, which the next layer (or the finalize kernel) adds up in block order:
 * no atomics on floats, the same bits every run. The first bad value of a row is found
 * by a screen (row sum in float with a margin, min < 0, the importance sum not finite)
 * and then, for suspicious rows only, by a scan in the CPU's order and double sum.
 *
 * Per example and layer: bytes read H*n^2*(1 + grads)*sizeof(dtype) (each once), plus
 * 2 * nb*n*8 per row step for the partials (nb = n/16: ~2% at F16, H = 12); bytes
 * written nb*n*8 per row step, nb*H*72 of statistic partials, n^2*4 per matrix written.
 * Flops ~20 per attention value (checks 3, statistics 9 with one MUFU.LG2, fusion 1,
 * importance 2, gradient rollout 3) plus the reductions (~2 per value at G = 8). */
#include "cuda/kernels.cuh"

namespace {

#define AM_RS_SUM 0 /* running per-row sums in rs before the row is finished */
#define AM_RS_MIN 1
#define AM_RS_MAX 2
#define AM_RS_ENT 3
#define AM_RS_DIST 4
#define AM_RS_IMP 5

/* One head's tile of one row: per-lane row terms, fusion and gradient terms. */
template <int DT, bool MEAN, bool GR, int G>
__device__ __forceinline__ void tile_head(const typename am_elem<DT>::type *ra,
                                          const typename am_elem<DT>::type *rg, int j0,
                                          int n, bool act, bool fuse_max, const float *dfac,
                                          float *fs, float *gs, float *acc) {
  float av[AM_CU_C], gv[AM_CU_C];
#pragma unroll
  for (int k = 0; k < AM_CU_C; k++) {
    const int j = j0 + k * G;
    const bool ok = act && j < n;
    av[k] = ok ? am_ld<DT>(ra, (size_t)j) : 0.0f;
    gv[k] = (GR && ok) ? am_ld<DT>(rg, (size_t)j) : 0.0f;
  }
  float sum = 0.0f, mn = FLT_MAX, mx = 0.0f, ent = 0.0f, dist = 0.0f, imp = 0.0f;
#pragma unroll
  for (int k = 0; k < AM_CU_C; k++) {
    const float x = av[k];
    sum += x;
    mn = fminf(mn, x);
    mx = fmaxf(mx, x);
    ent += x * __log2f(fmaxf(x, FLT_MIN)); /* 0 log 0 = 0: 0 * finite */
    dist += x * dfac[k];
    if (MEAN)
      fs[k] += x;
    else if (fuse_max)
      fs[k] = x > fs[k] ? x : fs[k];
    else
      fs[k] = x < fs[k] ? x : fs[k];
    if (GR) {
      imp += x * gv[k];
      const float t = gv[k] * x; /* as the CPU: float product, clamp, float sum */
      gs[k] += t > 0.0f ? t : 0.0f;
    }
  }
  acc[AM_RS_SUM] = sum;
  acc[AM_RS_MIN] = mn;
  acc[AM_RS_MAX] = mx;
  acc[AM_RS_ENT] = ent;
  acc[AM_RS_DIST] = dist;
  acc[AM_RS_IMP] = imp;
}

/* |i - j| in valid positions, or with a patch grid the Euclidean patch distance (0 for
 * the prefix rows and keys), for the lane's 16 keys of a tile. */
template <int G>
__device__ __forceinline__ void distance_factors(const am_cu_args_t &a, bool grid, int i,
                                                 int j0, int n, float *dfac) {
  if (!grid) {
#pragma unroll
    for (int k = 0; k < AM_CU_C; k++)
      dfac[k] = fabsf((float)(j0 + k * G - i));
    return;
  }
  const int P = a.grid_prefix, C = a.grid_cols;
  const int pi = i - P, ri = pi >= 0 ? pi / C : 0, ci = pi >= 0 ? pi - ri * C : 0;
#pragma unroll
  for (int k = 0; k < AM_CU_C; k++) {
    const int j = j0 + k * G, pj = j - P;
    float d = 0.0f;
    if (pi >= 0 && pj >= 0 && j < n) {
      const int rj = pj / C, cj = pj - rj * C;
      const int dr = rj - ri, dc = cj - ci;
      d = sqrtf((float)(dr * dr + dc * dc));
    }
    dfac[k] = d;
  }
}

/* The first bad value of a row in the CPU's order: attention keys (not finite or
 * negative), then the row sum in double, then gradient keys. -1 when the row is fine. */
template <int DT>
__device__ int row_fault(const typename am_elem<DT>::type *ra,
                         const typename am_elem<DT>::type *rg, int n, double tol) {
  double sum = 0.0;
  for (int j = 0; j < n; j++) {
    const float x = am_ld<DT>(ra, (size_t)j);
    if (!am_finite(x) || x < 0.0f)
      return j;
    sum += x;
  }
  if (fabs(sum - 1.0) > tol)
    return n;
  if (rg)
    for (int j = 0; j < n; j++)
      if (!am_finite(am_ld<DT>(rg, (size_t)j)))
        return n + 1 + j;
  return -1;
}

/* Checks row i of head h once every tile was read, then turns its running sums s[] into
 * the row terms AM_PS_* (in place). */
template <int DT>
__device__ void finish_row(const am_cu_args_t &a, const am_cu_ex_t &X, int h, int i,
                           const typename am_elem<DT>::type *att,
                           const typename am_elem<DT>::type *grd, float *s) {
  typedef typename am_elem<DT>::type T;
  const int n = X.n;
  const float sum = s[AM_RS_SUM], mn = s[AM_RS_MIN], mx = s[AM_RS_MAX];
  const float ent = s[AM_RS_ENT], dist = s[AM_RS_DIST], imp = s[AM_RS_IMP];
  const T *ra = att + ((size_t)h * n + i) * n;
  if (!(fabsf(sum - 1.0f) <= a.tol_fast) || mn < 0.0f || (grd && !am_finite(imp))) {
    const int sub =
        row_fault<DT>(ra, grd ? grd + ((size_t)h * n + i) * n : nullptr, n, a.tol);
    if (sub >= 0)
      atomicMin(&a.fault[blockIdx.y], am_cu_fault_key(a.L, a.H, n, a.layer, h, i, sub));
  }
  s[AM_PS_IMP] = fabsf(imp);
  if (!(X.flags & AM_EXF_STATS))
    return;
  s[AM_PS_ENT] = -ent * 0.69314718055994531f; /* log2 -> ln */
  s[AM_PS_CONF] = mx;
  s[AM_PS_FIRST] = am_ld<DT>(ra, 0);
  s[AM_PS_LAST] = am_ld<DT>(ra, (size_t)n - 1);
  s[AM_PS_SELF] = am_ld<DT>(ra, (size_t)i);
  s[AM_PS_PREV] = i > 0 ? am_ld<DT>(ra, (size_t)i - 1) : 0.0f;
  s[AM_PS_NEXT] = i < n - 1 ? am_ld<DT>(ra, (size_t)i + 1) : 0.0f;
  s[AM_PS_DIST] = dist;
}

/* Sum over the blocks of the layer above of their partials at row i (block order). */
__device__ __forceinline__ double part_sum(const double *part, int nb, int n, int i) {
  double v = 0.0;
  for (int b = 0; b < nb; b++)
    v += part[(size_t)b * n + i];
  return v;
}

/* Adds the rows of the block: statistic partials and the row-step partial vectors. */
__device__ void block_partials(const am_cu_args_t &a, const am_cu_ex_t &X, const float *rs,
                               const double *su, const double *sug, int W, int NG) {
  const int n = X.n, nb = am_cu_nb(n), rb = blockIdx.x, H = a.H, l = a.layer;
  const int rows = min(AM_CU_RB, n - rb * AM_CU_RB);
  if (X.flags & (AM_EXF_STATS | AM_EXF_IMP)) {
    double *P = a.work + X.stats + ((size_t)l * nb + rb) * H * AM_CU_NSTAT;
    for (int p = threadIdx.x; p < H * AM_CU_NSTAT; p += blockDim.x) {
      const int h = p / AM_CU_NSTAT, s = p - h * AM_CU_NSTAT;
      double acc = 0.0;
      for (int r = 0; r < rows; r++)
        acc += rs[((size_t)r * H + h) * AM_CU_NSTAT + s];
      P[p] = acc;
    }
  }
  for (int pass = 0; pass < 2; pass++) {
    const bool on = pass == 0 ? (X.flags & AM_EXF_ROLL_INK) : (X.flags & AM_EXF_GRAD_INK);
    if (!on)
      continue;
    const double *src = pass == 0 ? su : sug;
    double *U = a.work + (pass == 0 ? X.roll : X.grad) + n +
                ((size_t)(l & 1) * nb + rb) * (size_t)n;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      double acc = 0.0;
      for (int q = 0; q < NG; q++)
        acc += src[(size_t)q * W + j];
      U[j] = acc;
    }
  }
}

/* What the steps of one row need (one group of G lanes owns the row). */
typedef struct row_ctx {
  const am_cu_args_t *a;
  const am_cu_ex_t *X;
  int n, H, i, r, gl, grp, W;
  bool act, fuse_max;
  float *rs;                    /* this block's [RB][H][NSTAT] */
  double *su, *sug, *rst, *gst; /* shared partials; row-form states (or NULL) */
} row_ctx_t;

/* Reads every head of one tile of the row: the row terms of each head (reduced over the
 * group, kept in rs across tiles), the fused row fs and sum_h max(0, g a) gs. */
template <int DT, bool MEAN, int G>
__device__ __forceinline__ void
heads_of_tile(const row_ctx_t &c, const typename am_elem<DT>::type *att,
              const typename am_elem<DT>::type *grd, int t, int j0, const float *dfac,
              float *fs, float *gs) {
  typedef typename am_elem<DT>::type T;
  const int n = c.n;
  for (int h = 0; h < c.H; h++) {
    const T *ra = att + ((size_t)h * n + (c.act ? c.i : 0)) * n;
    float acc[6];
    if (grd)
      tile_head<DT, MEAN, true, G>(ra, grd + (ra - att), j0, n, c.act, c.fuse_max, dfac, fs,
                                   gs, acc);
    else
      tile_head<DT, MEAN, false, G>(ra, nullptr, j0, n, c.act, c.fuse_max, dfac, fs, gs,
                                    acc);
    acc[AM_RS_SUM] = am_group_sum(acc[AM_RS_SUM], G);
    acc[AM_RS_MIN] = am_group_min(acc[AM_RS_MIN], G);
    acc[AM_RS_MAX] = am_group_max(acc[AM_RS_MAX], G);
    acc[AM_RS_ENT] = am_group_sum(acc[AM_RS_ENT], G);
    acc[AM_RS_DIST] = am_group_sum(acc[AM_RS_DIST], G);
    acc[AM_RS_IMP] = am_group_sum(acc[AM_RS_IMP], G);
    if (c.gl == 0 && c.act) {
      float *s = c.rs + ((size_t)c.r * c.H + h) * AM_CU_NSTAT;
      if (t == 0) {
#pragma unroll
        for (int q = 0; q < 6; q++)
          s[q] = acc[q];
      } else {
        s[AM_RS_SUM] += acc[AM_RS_SUM];
        s[AM_RS_MIN] = fminf(s[AM_RS_MIN], acc[AM_RS_MIN]);
        s[AM_RS_MAX] = fmaxf(s[AM_RS_MAX], acc[AM_RS_MAX]);
        s[AM_RS_ENT] += acc[AM_RS_ENT];
        s[AM_RS_DIST] += acc[AM_RS_DIST];
        s[AM_RS_IMP] += acc[AM_RS_IMP];
      }
    }
  }
}

/* A tile's fused row and Gbar row: written out (matrix form) and/or taken into the row
 * steps (one tile only): u += w_i F_i. with w_i = v_i / (1 + sum_j F_ij), u_g += v_i
 * Gbar_i. */
template <int G>
__device__ __forceinline__ void tile_outputs(const row_ctx_t &c, int j0, const float *fs,
                                             const float *gs, double vi, double vgi) {
  const unsigned f = c.X->flags;
  const int n = c.n;
  if (c.act && (f & AM_EXF_WRITE_F)) {
    float *Fr = c.a->mat + c.X->F + (size_t)c.i * n;
#pragma unroll
    for (int k = 0; k < AM_CU_C; k++)
      if (j0 + k * G < n)
        Fr[j0 + k * G] = fs[k];
  }
  if (c.act && (f & AM_EXF_WRITE_G)) {
    float *Gr = c.a->mat + c.X->G + (size_t)c.i * n;
#pragma unroll
    for (int k = 0; k < AM_CU_C; k++)
      if (j0 + k * G < n)
        Gr[j0 + k * G] = gs[k];
  }
  if (f & AM_EXF_ROLL_INK) { /* every lane of the group: the sum is a shuffle */
    double part = 0.0;
#pragma unroll
    for (int k = 0; k < AM_CU_C; k++)
      part += j0 + k * G < n ? (double)fs[k] : 0.0;
    const double s = 1.0 + am_group_sum_d(part, G); /* + 1: the identity */
    if (c.act) {
      const double w = vi / s;
#pragma unroll
      for (int k = 0; k < AM_CU_C; k++)
        if (j0 + k * G < n)
          c.su[(size_t)c.grp * c.W + k * G + c.gl] += w * (double)fs[k];
      if (c.gl == 0)
        c.rst[c.i] = w;
    }
  }
  if ((f & AM_EXF_GRAD_INK) && c.act) {
#pragma unroll
    for (int k = 0; k < AM_CU_C; k++)
      if (j0 + k * G < n)
        c.sug[(size_t)c.grp * c.W + k * G + c.gl] += vgi * (double)gs[k];
    if (c.gl == 0)
      c.gst[c.i] = vgi;
  }
}

/* 4 blocks per SM: ptxas fits the kernel in 128 registers (nvcc 13.0, sm_90; without the
 * bound it takes 142-168), so 16 warps per SM keep ~32 KB of loads in flight. Not yet
 * timed on a GPU (docs/cuda.md). */
template <int DT, bool MEAN, int G>
__global__ void __launch_bounds__(AM_CU_THREADS, 4) fused_layer_kernel(am_cu_args_t a) {
  typedef typename am_elem<DT>::type T;
  AM_DYNAMIC_SMEM(double, smem);
  const am_cu_ex_t X = a.ex[blockIdx.y];
  const int n = X.n, nb = am_cu_nb(n), rb = blockIdx.x;
  if (rb >= nb || am_cu_group(n) != G)
    return; /* the whole block: fewer rows, or rows of another length class */
  const unsigned f = X.flags;
  const int NG = AM_CU_THREADS / G, RPG = AM_CU_RB / NG, W = AM_CU_C * G;
  const int ntiles = (n + W - 1) / W, L = a.L, H = a.H, l = a.layer;
  const size_t nn = (size_t)n * n, prev_set = (size_t)((l + 1) & 1) * nb * n;
  const T *att = (const T *)a.att + X.in + (size_t)l * H * nn;
  const T *grd =
      (f & AM_EXF_GRADS) ? (const T *)a.grad + X.in + (size_t)l * H * nn : nullptr;
  row_ctx_t c;
  c.a = &a;
  c.X = &X;
  c.n = n;
  c.H = H;
  c.gl = threadIdx.x & (G - 1);
  c.grp = threadIdx.x / G;
  c.W = W;
  c.fuse_max = a.fusion == AM_FUSION_MAX;
  c.su = smem;
  c.sug = smem + AM_CU_THREADS * AM_CU_C;               /* [NG][W] each */
  c.rs = (float *)(smem + 2 * AM_CU_THREADS * AM_CU_C); /* [RB][H][NSTAT] */
  c.rst = (f & AM_EXF_ROLL_INK) ? a.work + X.roll : nullptr;
  c.gst = (f & AM_EXF_GRAD_INK) ? a.work + X.grad : nullptr;
#pragma unroll
  for (int k = 0; k < AM_CU_C; k++) {
    c.su[(size_t)c.grp * W + k * G + c.gl] = 0.0;
    c.sug[(size_t)c.grp * W + k * G + c.gl] = 0.0;
  }
  for (int rr = 0; rr < RPG; rr++) {
    c.r = c.grp * RPG + rr;
    c.i = rb * AM_CU_RB + c.r;
    c.act = c.i < n;
    double vi = 0.0, vgi = 0.0;
    /* the row vectors entering this layer: v = w + w F (rollout), v + (v Gbar)/H */
    if (c.rst && c.act)
      vi = l == L - 1 ? am_cu_start(X.target, n, c.i)
                      : c.rst[c.i] + part_sum(c.rst + n + prev_set, nb, n, c.i);
    if (c.gst && c.act)
      vgi = l == L - 1 ? am_cu_start(X.target, n, c.i)
                       : c.gst[c.i] + part_sum(c.gst + n + prev_set, nb, n, c.i) / H;
    for (int t = 0; t < ntiles; t++) {
      const int j0 = t * W + c.gl;
      float dfac[AM_CU_C], fs[AM_CU_C], gs[AM_CU_C];
      distance_factors<G>(a, (f & AM_EXF_GRID) != 0, c.i, j0, n, dfac);
      const float fs0 = MEAN ? 0.0f : (c.fuse_max ? -INFINITY : INFINITY);
#pragma unroll
      for (int k = 0; k < AM_CU_C; k++) {
        fs[k] = fs0;
        gs[k] = 0.0f;
      }
      heads_of_tile<DT, MEAN, G>(c, att, grd, t, j0, dfac, fs, gs);
      /* F as the CPU fuses: the head sum divided by H in float (mean), or max/min */
      if (MEAN && H > 1)
#pragma unroll
        for (int k = 0; k < AM_CU_C; k++)
          fs[k] /= (float)H;
      tile_outputs<G>(c, j0, fs, gs, vi, vgi);
    }
    __syncwarp();
    if (c.act)
      for (int h = c.gl; h < H; h += G)
        finish_row<DT>(a, X, h, c.i, att, grd, c.rs + ((size_t)c.r * H + h) * AM_CU_NSTAT);
  }
  __syncthreads();
  block_partials(a, X, c.rs, c.su, c.sug, W, NG);
}

template <int DT, bool MEAN, int G>
am_status launch_one(const am_cu_args_t *a, int nbmax, size_t smem, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  void (*k)(am_cu_args_t) = fused_layer_kernel<DT, MEAN, G>;
  const dim3 grid((unsigned)nbmax, (unsigned)a->nex), block(AM_CU_THREADS);
  if (smem > 48 * 1024)
    AM_CHECK(cudaFuncSetAttribute((const void *)k,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  AM_LAUNCH(k, grid, block, smem, s, *a);
done:
  return st;
}

/* One launch per length class present (classes: bit 0 G = 8, bit 1 16, bit 2 32). */
template <int DT, bool MEAN>
am_status launch(const am_cu_args_t *a, const int *nbmax, size_t smem, cudaStream_t s) {
  am_status st = AM_STATUS_OK;
  if (nbmax[0] > 0)
    st = launch_one<DT, MEAN, 8>(a, nbmax[0], smem, s);
  if (st == AM_STATUS_OK && nbmax[1] > 0)
    st = launch_one<DT, MEAN, 16>(a, nbmax[1], smem, s);
  if (st == AM_STATUS_OK && nbmax[2] > 0)
    st = launch_one<DT, MEAN, 32>(a, nbmax[2], smem, s);
  return st;
}

} // namespace

/* Shared memory of the fused kernel for H heads. */
size_t am_cuda_fused_layer_smem(int H) {
  return 2 * AM_CU_THREADS * AM_CU_C * sizeof(double) +
         (size_t)AM_CU_RB * H * AM_CU_NSTAT * sizeof(float);
}

am_status am_cuda_fused_layer(const am_cu_args_t *a, int dt, const int nbmax[3],
                              cudaStream_t s) {
  const size_t smem = am_cuda_fused_layer_smem(a->H);
  const bool mean = a->fusion == AM_FUSION_MEAN;
  switch (dt) {
  case AM_DT_F32:
    return mean ? launch<AM_DT_F32, true>(a, nbmax, smem, s)
                : launch<AM_DT_F32, false>(a, nbmax, smem, s);
  case AM_DT_F16:
    return mean ? launch<AM_DT_F16, true>(a, nbmax, smem, s)
                : launch<AM_DT_F16, false>(a, nbmax, smem, s);
  default:
    return mean ? launch<AM_DT_BF16, true>(a, nbmax, smem, s)
                : launch<AM_DT_BF16, false>(a, nbmax, smem, s);
  }
}
