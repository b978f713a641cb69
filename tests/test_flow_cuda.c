/* test_flow_cuda.c — parity of the device's attention flow (cuda/flow.cuh, am_cuda_flow)
 * with the CPU reference (am_cpu_flow, itself checked against networkx by test_flow.c):
 * a table of shapes with token counts that are not multiples of 32, one token, a fully
 * masked example, padding on either side, F32/F16/BF16, the three fusions, discard, and
 * the cls, last, index and mean targets; guard values after every example's row must stay
 * untouched, NaN fails, and two runs give the same bits. Tolerance: the raw flows agree
 * within 1e-12 (tests/test_flow_sync.c checks the algorithm on the host), so the floats
 * agree within a rounding: |x - ref| <= 1e-6 |ref| + 1e-9.
 * Skips (visibly) without a CUDA device or in a build without CUDA. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attnmap.h"

#ifdef ATTNMAP_HAVE_CUDA
#include <cuda_runtime.h>

#include "../cuda/flow.cuh"
#include "core/half.h"
#include "cpu/flow.h"

/* The first GPU run (H200, 2026-12-04) saw this suite's parity test die of a signal with
 * no assertion failed and no message (am_cuda_flow's counting call wrote through a NULL
 * pointer; found on the emulator, fixed): each step says where it is, and a signal's number
 * is printed, so that a GPU log shows where a crash happens. */
static const char *volatile step = "start";
static volatile int step_case = -1;

static void say_where(int sig) {
  char line[160];
  int n = snprintf(line, sizeof line, "test_flow_cuda: signal %d in case %d at step: %s\n",
                   sig, step_case, step);
  if (n > 0)
    (void)!write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

#define STEP(k, what) (step_case = (k), step = (what))

static void require_device(void) {
  signal(SIGSEGV, say_where);
  signal(SIGBUS, say_where);
  signal(SIGFPE, say_where);
  signal(SIGABRT, say_where);
  signal(SIGILL, say_where);
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    cr_skip_test("no CUDA device");
}

TestSuite(flow_cuda, .init = require_device, .timeout = 300);

static uint64_t next_u64(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

typedef struct pcase {
  int L, H, T, nex;
  am_dtype dtype;
  am_fusion fusion;
  double discard;
  int left_pad;
  uint64_t seed;
} pcase_t;

static const pcase_t cases[] = {
    {2, 2, 9, 4, AM_DTYPE_F32, AM_FUSION_MEAN, 0.0, 0, 1},
    {3, 3, 37, 5, AM_DTYPE_F16, AM_FUSION_MAX, 0.3, 1, 2},
    {4, 2, 70, 3, AM_DTYPE_BF16, AM_FUSION_MIN, 0.0, 0, 3},
    {12, 4, 50, 6, AM_DTYPE_F32, AM_FUSION_MEAN, 0.2, 1, 4},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* Example e's valid length and target: a fully masked one, one token, a full row, ...;
 * targets cycle through cls, last, index 1, mean. */
static void shape_of(const pcase_t *c, int e, int *n, int *target) {
  static const int frac[6] = {0, 1, 100, 60, 35, 90};
  *n = e % 6 == 1 ? 1 : c->T * frac[e % 6] / 100;
  int kind = e % 4;
  *target = *n == 0 ? 0 : kind == 0 ? 0 : kind == 1 ? *n - 1 : kind == 2 ? (*n > 1) : -1;
}

static void put(unsigned char *dst, am_dtype dt, size_t k, float v) {
  size_t es = am_dtype_size(dt);
  uint16_t h = dt == AM_DTYPE_F16 ? am_f32_to_f16(v) : am_f32_to_bf16(v);
  memcpy(dst + k * es, dt == AM_DTYPE_F32 ? (const void *)&v : (const void *)&h, es);
}

/* Runs case c on the device and on the CPU; compares. */
static void run_case(const pcase_t *c, int k) {
  int L = c->L, H = c->H, T = c->T, nex = c->nex;
  size_t es = am_dtype_size(c->dtype), block = (size_t)H * T * T;
  size_t bytes = (size_t)nex * L * block * es;
  unsigned char *host = calloc(bytes, 1);
  int n[8], target[8];
  int32_t *idx = calloc((size_t)nex * T, sizeof *idx);
  uint64_t seed = c->seed;
  for (int e = 0; e < nex; e++) {
    shape_of(c, e, &n[e], &target[e]);
    int start = c->left_pad ? T - n[e] : 0;
    for (int j = 0; j < n[e]; j++)
      idx[(size_t)e * T + j] = start + j;
    for (int l = 0; l < L; l++)
      for (int h = 0; h < H; h++)
        for (int i = 0; i < n[e]; i++) {
          double w[128], sum = 0.0;
          for (int j = 0; j < n[e]; j++)
            sum += w[j] = exp(8.0 * (double)(next_u64(&seed) >> 11) / 9007199254740992.0);
          size_t row = (((size_t)e * L + l) * H + h) * T * T + (size_t)(start + i) * T;
          for (int j = 0; j < n[e]; j++)
            put(host, c->dtype, row + start + j, (float)(w[j] / sum));
        }
  }
  STEP(k, "device allocations");
  void *d_att = NULL, *d_idx = NULL, *d_ptrs = NULL, *d_out = NULL;
  const void **ptrs = malloc((size_t)nex * L * sizeof *ptrs);
  size_t out_count = (size_t)nex * T;
  float *got = malloc(out_count * sizeof *got), *again = malloc(out_count * sizeof *again);
  cr_assert_eq(cudaMalloc(&d_att, bytes), cudaSuccess);
  cr_assert_eq(cudaMalloc(&d_idx, (size_t)nex * T * sizeof *idx), cudaSuccess);
  cr_assert_eq(cudaMalloc(&d_ptrs, (size_t)nex * L * sizeof *ptrs), cudaSuccess);
  cr_assert_eq(cudaMalloc(&d_out, out_count * sizeof *got), cudaSuccess);
  for (int e = 0; e < nex; e++)
    for (int l = 0; l < L; l++)
      ptrs[e * L + l] = (unsigned char *)d_att + ((size_t)e * L + l) * block * es;
  STEP(k, "copies to the device");
  cudaMemcpy(d_att, host, bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(d_idx, idx, (size_t)nex * T * sizeof *idx, cudaMemcpyHostToDevice);
  cudaMemcpy(d_ptrs, ptrs, (size_t)nex * L * sizeof *ptrs, cudaMemcpyHostToDevice);
  am_cuda_flow_batch_t b = {.nex = nex,
                            .L = L,
                            .H = H,
                            .T = T,
                            .dtype = c->dtype,
                            .att = (const void *const *)d_ptrs,
                            .idx = (const int32_t *)d_idx,
                            .n = n,
                            .target = target,
                            .fusion = c->fusion,
                            .discard = c->discard,
                            .out = (float *)d_out};
  for (int run = 0; run < 2; run++) {
    float *dst = run ? again : got;
    for (size_t q = 0; q < out_count; q++)
      dst[q] = -7.0f; /* guard: positions past n stay -7 */
    cudaMemcpy(d_out, dst, out_count * sizeof *dst, cudaMemcpyHostToDevice);
    char err[256] = "";
    STEP(k, run ? "am_cuda_flow, second run" : "am_cuda_flow");
    cr_assert_eq(am_cuda_flow(&b, 0, err, sizeof err), AM_STATUS_OK, "case %d: %s", k, err);
    cudaMemcpy(dst, d_out, out_count * sizeof *dst, cudaMemcpyDeviceToHost);
  }
  cr_expect(!memcmp(got, again, out_count * sizeof *got), "case %d: two runs differ", k);
  STEP(k, "the CPU reference");
  am_cpu_scratch_t scratch = {0};
  for (int e = 0; e < nex; e++) {
    const void *att[16];
    for (int l = 0; l < L; l++)
      att[l] = host + ((size_t)e * L + l) * block * es;
    am_example_t ex = {.L = L,
                       .H = H,
                       .T = T,
                       .n = n[e],
                       .dtype = c->dtype,
                       .att = att,
                       .idx = idx + (size_t)e * T,
                       .target = target[e]};
    am_pass_options_t opt = {.fusion = c->fusion, .discard = c->discard};
    float ref[128];
    cr_assert_eq(am_cpu_flow(&ex, &opt, ref, &scratch), AM_STATUS_OK);
    for (int j = 0; j < T; j++) {
      float x = got[(size_t)e * T + j];
      if (j >= n[e]) {
        cr_expect_eq(x, -7.0f, "case %d (seed %llu) example %d: guard %d overwritten", k,
                     (unsigned long long)c->seed, e, j);
        continue;
      }
      cr_expect(!isnan(x) && fabs((double)x - ref[j]) <= 1e-6 * fabs(ref[j]) + 1e-9,
                "case %d (seed %llu) example %d token %d: device %.9g, cpu %.9g", k,
                (unsigned long long)c->seed, e, j, x, ref[j]);
    }
  }
  am_cpu_scratch_free(&scratch);
  STEP(k, "frees");
  cudaFree(d_att);
  cudaFree(d_idx);
  cudaFree(d_ptrs);
  cudaFree(d_out);
  free(again);
  free(got);
  free(ptrs);
  free(idx);
  free(host);
}

Test(flow_cuda, device_flow_matches_the_cpu_reference) {
  for (int k = 0; k < NCASES; k++)
    run_case(&cases[k], k);
}

Test(flow_cuda, bad_batches_are_rejected) {
  int n = 3, target = 3; /* target out of range */
  am_cuda_flow_batch_t b = {
      .nex = 1, .L = 2, .H = 1, .T = 4, .dtype = AM_DTYPE_F32, .n = &n, .target = &target};
  cr_expect_eq(am_cuda_flow(&b, 0, NULL, 0), AM_STATUS_INVALID_ARGUMENT);
  cr_expect_eq(am_cuda_flow(NULL, 0, NULL, 0), AM_STATUS_INVALID_ARGUMENT);
}

#else

Test(flow_cuda, device_flow_matches_the_cpu_reference) {
  cr_skip_test("built without CUDA");
}

#endif
