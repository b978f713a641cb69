/* test_flow_sync.c — the CUDA flow kernels' algorithm (cuda/flow_sync.h, cuda/flow_caps.h)
 * run on the host: the same per-node steps and block drivers that cuda/flow.cu runs on
 * every thread of a block, here on one thread (barriers are no-ops, the compare-and-swap is
 * plain). Checks, without a GPU, what does not depend on CUDA itself:
 *  - the capacities (device loader for F32/F16/BF16, fusion, discard, + I, row norm)
 *    equal the CPU reference's (am_cpu_flow_capacities) bit for bit;
 *  - the device's start (rollout's preflow) equals am_maxflow_start's bit for bit;
 *  - the synchronous push-relabel's flows equal the CPU reference's (which
 *    tests/test_flow.c checks against networkx and test_flow_properties.c certifies with
 *    a minimum cut) within 1e-12, with warm starts over blocks of 32 sinks as the kernel
 *    runs them.
 * What this cannot check: races between threads, launch settings, device memory. The
 * device suite (cuda parity) covers those where a GPU exists. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../cuda/flow_caps.h"
#include "core/half.h"
#include "cpu/flow.h"
#include "cpu/maxflow.h"

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

typedef struct shape {
  int L, H, n, T, start;
  am_dtype dtype;
  am_fusion fusion;
  double discard, sharp;
} shape_t;

static const shape_t shapes[] = {
    {1, 2, 7, 9, 1, AM_DTYPE_F32, AM_FUSION_MEAN, 0.0, 4.0},
    {3, 3, 12, 12, 0, AM_DTYPE_F16, AM_FUSION_MAX, 0.3, 6.0},
    {4, 2, 40, 45, 5, AM_DTYPE_BF16, AM_FUSION_MIN, 0.0, 8.0},
    {12, 4, 33, 33, 0, AM_DTYPE_F32, AM_FUSION_MEAN, 0.5, 8.0},
    {12, 2, 64, 70, 3, AM_DTYPE_F32, AM_FUSION_MEAN, 0.0, 8.0},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

typedef struct stored {
  unsigned char *buf; /* L blocks [H,T,T] of dtype, 1 byte off alignment */
  const void *att[16];
  int32_t idx[128];
  am_example_t ex;
} stored_t;

/* Softmax rows over the valid keys, stored in the shape's dtype; padding holds 0.5. */
static void store(const shape_t *sh, uint64_t seed, stored_t *s) {
  int L = sh->L, H = sh->H, T = sh->T, n = sh->n;
  size_t es = am_dtype_size(sh->dtype), block = (size_t)H * T * T;
  s->buf = calloc(L * block * es + 1, 1);
  unsigned char *base = s->buf + 1;
  double e[128];
  for (size_t k = 0; k < L * block; k++) {
    size_t l = k / block, h = k % block / ((size_t)T * T), i = k % ((size_t)T * T) / T;
    size_t j = k % T;
    int valid = i >= (size_t)sh->start && i < (size_t)(sh->start + n) &&
                j >= (size_t)sh->start && j < (size_t)(sh->start + n);
    float v = 0.5f;
    if (valid && j == (size_t)sh->start) { /* a new valid row: draw it */
      double sum = 0.0;
      for (int q = 0; q < n; q++) {
        e[q] = exp(sh->sharp * (double)(next_u64(&seed) >> 11) / 9007199254740992.0);
        sum += e[q];
      }
      for (int q = 0; q < n; q++)
        e[q] /= sum;
    }
    if (valid)
      v = (float)e[j - sh->start];
    uint16_t half = sh->dtype == AM_DTYPE_F16 ? am_f32_to_f16(v) : am_f32_to_bf16(v);
    memcpy(base + k * es, sh->dtype == AM_DTYPE_F32 ? (void *)&v : (void *)&half, es);
    (void)l;
    (void)h;
  }
  for (int l = 0; l < L; l++)
    s->att[l] = base + l * block * es;
  for (int j = 0; j < n; j++)
    s->idx[j] = sh->start + j;
  s->ex = (am_example_t){.L = L,
                         .H = H,
                         .T = T,
                         .n = n,
                         .dtype = sh->dtype,
                         .att = s->att,
                         .idx = s->idx,
                         .target = 0};
}

/* Capacities the CPU way and the device way. */
static void both_caps(const shape_t *sh, const stored_t *s, float *cpu, float *dev) {
  int n = sh->n, L = sh->L;
  size_t nn = (size_t)n * n;
  am_pass_options_t opt = {.fusion = sh->fusion, .discard = sh->discard};
  float row[128];
  unsigned hist[2048];
  am_cpu_flow_capacities(&s->ex, &opt, cpu, cpu + L * nn, row);
  for (int l = 0; l < L; l++)
    am_fs_layer_caps(s->att[l], sh->dtype, sh->H, sh->T, s->idx, n, sh->fusion, sh->discard,
                     dev + l * nn, dev + (L + l) * nn, hist);
}

Test(flow_sync, device_capacities_equal_the_cpu_reference_bit_for_bit) {
  for (int k = 0; k < NSHAPES; k++) {
    const shape_t *sh = &shapes[k];
    stored_t s;
    store(sh, 10 + k, &s);
    size_t count = 2 * (size_t)sh->L * sh->n * sh->n;
    float *cpu = malloc(count * sizeof *cpu), *dev = malloc(count * sizeof *dev);
    both_caps(sh, &s, cpu, dev);
    size_t bad = 0;
    for (size_t q = 0; q < count; q++)
      bad += memcmp(&cpu[q], &dev[q], sizeof(float)) != 0;
    cr_expect_eq(bad, 0, "shape %d: %zu of %zu capacities differ", k, bad, count);
    free(cpu);
    free(dev);
    free(s.buf);
  }
}

Test(flow_sync, synchronous_push_relabel_equals_the_cpu_reference) {
  for (int k = 0; k < NSHAPES; k++) {
    const shape_t *sh = &shapes[k];
    int L = sh->L, n = sh->n;
    size_t nn = (size_t)n * n;
    stored_t s;
    store(sh, 20 + k, &s);
    float *cap = malloc(2 * L * nn * sizeof *cap), *dev = malloc(2 * L * nn * sizeof *dev);
    both_caps(sh, &s, cap, dev);
    void *mem = malloc(am_fs_bytes(L, n)), *cmem = malloc(am_maxflow_bytes(L, n));
    am_fs_t fs;
    am_fs_layout(&fs, L, n, cap, cap + L * nn, mem);
    am_maxflow_t cpu;
    am_maxflow_init(&cpu, L, n, cap, cap + L * nn, cmem);
    int sources[2] = {0, n - 1}, cnt[3];
    long rounds = 0;
    for (int q = 0; q < 2; q++) {
      am_fs_start(&fs, sources[q]);
      am_maxflow_start(&cpu, sources[q]);
      cr_expect(!memcmp(fs.flow, cpu.flow, L * nn * sizeof(double)) &&
                    !memcmp(fs.flowt, cpu.flowt, L * nn * sizeof(double)) &&
                    !memcmp(fs.excess, cpu.excess, (size_t)L * n * sizeof(double)),
                "shape %d: the device's rollout preflow differs from the CPU's", k);
      double want[128], got[128];
      int src = sources[q];
      cr_assert_eq(am_cpu_flow_values(L, n, cap, cap + L * nn, &src, 1, want),
                   AM_STATUS_OK);
      for (int j0 = 0; j0 < n; j0 += 32)
        am_fs_task(&fs, src, j0, j0 + 32 < n ? j0 + 32 : n, got, cnt, &rounds);
      for (int j = 0; j < n; j++)
        cr_expect(fabs(got[j] - want[j]) <= 1e-12,
                  "shape %d source %d sink %d: synchronous %.17g, cpu %.17g", k, src, j,
                  got[j], want[j]);
    }
    cr_log_info("L=%d n=%d: %.1f synchronous rounds per sink", L, n,
                (double)rounds / (2.0 * n));
    free(cmem);
    free(mem);
    free(dev);
    free(cap);
    free(s.buf);
  }
}
