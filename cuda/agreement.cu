/* agreement.cu — agreement between two token-importance vectors, for many pairs at once
 * (docs/design.md §3 "Agreement", the CPU reference in host/cpu/agreement.c): spearman
 * (average ranks with ties), kendall (tau-b exactly as scipy), pearson, cosine, jaccard@k,
 * feature_agreement@k, rank_agreement@k, jsd and tvd, with the CPU's NaN rules.
 *
 * Work mapping: one block of 256 threads per pair; the pair's vectors in shared memory
 * (global memory past 12288 tokens). No sort: each thread takes tokens i and counts over
 * all j what a sort would give, in integers, so ties and orders are exact:
 *   average rank of x_i = #{x_j < x_i} + (1 + #{x_j == x_i}) / 2,
 *   top-k position of i = #{|x_j| > |x_i|} + #{j < i : |x_j| == |x_i|},
 *   tau-b from the pairs j > i: ties in x, in y, in both, and discordant pairs,
 * then the same formulas as the CPU in double, sums reduced in a fixed tree.
 * Per pair of m tokens: reads 8m bytes, ~2.5 m^2 compares, writes 9 doubles. The CPU
 * takes O(m log m); at m = 512, 60 000 pairs are ~3e11 simple operations, a few ms on an
 * H100, and this form has no data-dependent control flow to get wrong. */
#include <math.h>
#include <string.h>

#include "cuda/cuda_internal.h"

namespace {

#define AM_AGR_THREADS 256
#define AM_AGR_SMEM_MAX 12288 /* tokens kept in shared memory (96 KiB) */

/* fmin/fmax drop a NaN operand: an undefined value must stay NaN, never become -1 or 0 */
__device__ __forceinline__ double clip_unit(double r) {
  return isnan(r) ? r : fmin(1.0, fmax(-1.0, r));
}

__global__ void __launch_bounds__(AM_AGR_THREADS)
    agreement_kernel(const float *xs, const float *ys, const long long *off, const int *mm,
                     int k, double *out, int smem_max) {
  __shared__ double red[32];
  __shared__ long long redl[32];
  AM_DYNAMIC_SMEM(float, sm);
  const int m = mm[blockIdx.x], tid = threadIdx.x;
  double *o = out + (size_t)blockIdx.x * AM_METRIC_COUNT;
  if (tid < AM_METRIC_COUNT)
    o[tid] = NAN;
  if (m <= 0)
    return; /* the whole block */
  const bool in_smem = m <= smem_max;
  const float *X = xs + off[blockIdx.x], *Y = ys + off[blockIdx.x];
  if (in_smem) {
    for (int i = tid; i < m; i += blockDim.x) {
      sm[i] = X[i];
      sm[m + i] = Y[i];
    }
    X = sm;
    Y = sm + m;
  }
  int nan = 0, varx = 0, vary = 0;
  double sx = 0.0, sy = 0.0, ax = 0.0, ay = 0.0, xx = 0.0, yy = 0.0, xy = 0.0;
  __syncthreads();
  for (int i = tid; i < m; i += blockDim.x) {
    const float a = X[i], b = Y[i];
    nan |= !isfinite(a) || !isfinite(b); /* as the CPU: inf makes every metric NaN */
    varx |= a != X[0];                   /* exact equality, -0 == +0, as scipy */
    vary |= b != Y[0];
    sx += a;
    sy += b;
    ax += fabs((double)a);
    ay += fabs((double)b);
    xx += (double)a * a;
    yy += (double)b * b;
    xy += (double)a * b;
  }
  if (__syncthreads_or(nan))
    return; /* a NaN anywhere: every metric NaN */
  varx = __syncthreads_or(varx);
  vary = __syncthreads_or(vary);
  sx = am_block_sum_d(sx, red);
  sy = am_block_sum_d(sy, red);
  ax = am_block_sum_d(ax, red);
  ay = am_block_sum_d(ay, red);
  xx = am_block_sum_d(xx, red);
  yy = am_block_sum_d(yy, red);
  xy = am_block_sum_d(xy, red);
  const int kk = k < m ? k : m;
  const double mx = sx / m, my = sy / m, mr = (m + 1) / 2.0; /* mean of average ranks */
  double saa = 0, sbb = 0, sab = 0, pxx = 0, pyy = 0, pxy = 0, left = 0, right = 0, l1 = 0;
  long long xt = 0, yt = 0, nt = 0, dis = 0, common = 0, same = 0;
  for (int i = tid; i < m; i += blockDim.x) {
    const float a = X[i], b = Y[i], fa = fabsf(a), fb = fabsf(b);
    int lx = 0, ex = 0, ly = 0, ey = 0, rx = 0, ry = 0;
    for (int j = 0; j < m; j++) {
      const float c = X[j], d = Y[j], fc = fabsf(c), fd = fabsf(d);
      lx += c < a;
      ex += c == a;
      ly += d < b;
      ey += d == b;
      rx += fc > fa || (fc == fa && j < i);
      ry += fd > fb || (fd == fb && j < i);
      if (j > i) {
        xt += c == a;
        yt += d == b;
        nt += c == a && d == b;
        dis += (c < a && d > b) || (c > a && d < b);
      }
    }
    const double ra = lx + 0.5 * (1 + ex) - mr, rb = ly + 0.5 * (1 + ey) - mr;
    saa += ra * ra;
    sbb += rb * rb;
    sab += ra * rb;
    const double da = a - mx, db = b - my;
    pxx += da * da;
    pyy += db * db;
    pxy += da * db;
    common += rx < kk && ry < kk;
    same += rx < kk && rx == ry;
    if (ax > 0.0 && ay > 0.0) {
      const double p = fa / ax, q = fb / ay, mid = (p + q) / 2.0;
      left += p > 0.0 ? p * log(p / mid) : 0.0;
      right += q > 0.0 ? q * log(q / mid) : 0.0;
      l1 += fabs(p - q);
    }
  }
  saa = am_block_sum_d(saa, red);
  sbb = am_block_sum_d(sbb, red);
  sab = am_block_sum_d(sab, red);
  pxx = am_block_sum_d(pxx, red);
  pyy = am_block_sum_d(pyy, red);
  pxy = am_block_sum_d(pxy, red);
  left = am_block_sum_d(left, red);
  right = am_block_sum_d(right, red);
  l1 = am_block_sum_d(l1, red);
  xt = am_block_sum_ll(xt, redl);
  yt = am_block_sum_ll(yt, redl);
  nt = am_block_sum_ll(nt, redl);
  dis = am_block_sum_ll(dis, redl);
  common = am_block_sum_ll(common, redl);
  same = am_block_sum_ll(same, redl);
  if (tid != 0)
    return;
  if (m >= 2 && varx && vary) {
    const double dr = sqrt(saa * sbb), dp = sqrt(pxx * pyy); /* one root, as the CPU */
    o[AM_METRIC_SPEARMAN] = dr > 0.0 ? clip_unit(sab / dr) : NAN;
    o[AM_METRIC_PEARSON] = dp > 0.0 ? clip_unit(pxy / dp) : NAN;
    const long long tot = (long long)m * (m - 1) / 2;
    if (xt != tot && yt != tot) {
      const long long cmd = tot - xt - yt + nt - 2 * dis;
      o[AM_METRIC_KENDALL] =
          clip_unit((double)cmd / sqrt((double)(tot - xt)) / sqrt((double)(tot - yt)));
    }
  }
  if (xx != 0.0 && yy != 0.0)
    o[AM_METRIC_COSINE] = clip_unit(xy / sqrt(xx * yy));
  if (kk >= 1) {
    o[AM_METRIC_JACCARD] = (double)common / (double)(2 * kk - common);
    o[AM_METRIC_FEATURE_AGREEMENT] = (double)common / kk;
    o[AM_METRIC_RANK_AGREEMENT] = (double)same / kk;
  }
  if (ax > 0.0 && ay > 0.0) {
    const double jsd = (left + right) / 2.0;
    o[AM_METRIC_JSD] = isnan(jsd) ? jsd : fmax(0.0, jsd);
    o[AM_METRIC_TVD] = 0.5 * l1;
  }
}

/* One launch over pairs [p0, p1) whose vectors fit the aux buffers. */
static am_status run_pairs(am_cu_aux_t *x, const float *const *xv, const float *const *yv,
                           const int *m, int p0, int p1, int k, double *out) {
  am_status st = AM_STATUS_OK;
  const int np = p1 - p0;
  size_t total = 0;
  int mmax = 0;
  for (int p = p0; p < p1; p++) {
    total += (size_t)(m[p] > 0 ? m[p] : 0);
    mmax = m[p] > mmax ? m[p] : mmax;
  }
  const size_t o_y = total * 4, o_off = am_cu_align(2 * total * 4),
               o_m = o_off + (size_t)np * 8, in_bytes = am_cu_align(o_m + (size_t)np * 4),
               out_bytes = (size_t)np * AM_METRIC_COUNT * 8;
  const int smem_max = AM_AGR_SMEM_MAX;
  const size_t smem = mmax <= smem_max ? (size_t)2 * mmax * sizeof(float) : 0;
  long long *offs;
  int *ms;
  size_t at = 0;
  st = am_cu_aux_reserve(x, in_bytes + out_bytes,
                         in_bytes > out_bytes ? in_bytes : out_bytes);
  if (st != AM_STATUS_OK)
    return st;
  offs = (long long *)(x->h + o_off);
  ms = (int *)(x->h + o_m);
  for (int p = p0; p < p1; p++) {
    const int mp = m[p] > 0 ? m[p] : 0;
    memcpy(x->h + at * 4, xv[p], (size_t)mp * 4);
    memcpy(x->h + o_y + at * 4, yv[p], (size_t)mp * 4);
    offs[p - p0] = (long long)at;
    ms[p - p0] = m[p];
    at += (size_t)mp;
  }
  if (smem > 48 * 1024)
    AM_CHECK(cudaFuncSetAttribute((const void *)agreement_kernel,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  AM_CHECK(cudaMemcpyAsync(x->d, x->h, in_bytes, cudaMemcpyHostToDevice, x->s));
  AM_LAUNCH(agreement_kernel, dim3((unsigned)np), dim3(AM_AGR_THREADS), smem, x->s,
            (const float *)x->d, (const float *)(x->d + o_y),
            (const long long *)(x->d + o_off), (const int *)(x->d + o_m), k,
            (double *)(x->d + in_bytes), smem_max);
  AM_CHECK(cudaMemcpyAsync(x->h, x->d + in_bytes, out_bytes, cudaMemcpyDeviceToHost, x->s));
  AM_CHECK(cudaStreamSynchronize(x->s));
  memcpy(out + (size_t)p0 * AM_METRIC_COUNT, x->h, out_bytes);
done:
  return st;
}

} // namespace

am_status am_cuda_agreement_run(am_cu_state_t *s, const float *const *xv,
                                const float *const *yv, const int *m, int npairs, int k,
                                double *out) {
  am_status st = AM_STATUS_OK;
  pthread_mutex_lock(&s->aux.mu);
  /* batches of at most 8M tokens (64 MiB of vectors) */
  for (int p0 = 0; p0 < npairs && st == AM_STATUS_OK;) {
    size_t total = 0;
    int p1 = p0;
    while (p1 < npairs) {
      const size_t mp = (size_t)(m[p1] > 0 ? m[p1] : 0);
      if (p1 > p0 && total + mp > ((size_t)8 << 20))
        break;
      total += mp;
      p1++;
    }
    st = run_pairs(&s->aux, xv, yv, m, p0, p1, k, out);
    p0 = p1;
  }
  pthread_mutex_unlock(&s->aux.mu);
  return st;
}
