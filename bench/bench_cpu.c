/* bench_cpu.c — times the CPU backend's fused pass (rollout, grad rollout, head statistics,
 * head importance, attention_last) plus agreement on BERT-base shapes, F32 and F16, and
 * reports examples/s and GB/s of attention + gradient bytes read, beside this machine's
 * memory-read bandwidth measured in the same run.
 *   usage: bench_cpu [--examples N] [--tokens T] [--layers L] [--heads H] [--repeats R]
 *                    [--threads K] */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "core/ctx.h"
#include "core/half.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Memory-read floor: a sum over a buffer much larger than the caches, all threads. */
static double read_bandwidth(size_t bytes, int repeats) {
  size_t n = bytes / 8;
  double *buf = malloc(n * 8), best = 0, sink = 0;
  for (size_t i = 0; i < n; i++)
    buf[i] = (double)(i & 7);
  for (int r = 0; r < repeats; r++) {
    double t0 = now(), s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++)
      s += buf[i];
    double gbs = (double)bytes / (now() - t0) / 1e9;
    sink += s;
    best = gbs > best ? gbs : best;
  }
  free(buf);
  return sink > -1 ? best : 0;
}

static void fill_softmax(void *dst, am_dtype dt, int L, int B, int H, int T,
                         uint32_t seed) {
  float *row = malloc((size_t)T * sizeof *row);
  size_t k = 0;
  for (long r = 0; r < (long)L * B * H * T; r++) {
    double sum = 0;
    for (int j = 0; j < T; j++) {
      seed = seed * 1664525u + 1013904223u;
      row[j] = expf((float)(seed >> 8) / 16777216.0f * 4.0f);
      sum += row[j];
    }
    for (int j = 0; j < T; j++, k++) {
      float v = (float)(row[j] / sum);
      if (dt == AM_DTYPE_F32)
        memcpy((char *)dst + 4 * k, &v, 4);
      else {
        uint16_t h = am_f32_to_f16(v);
        memcpy((char *)dst + 2 * k, &h, 2);
      }
    }
  }
  free(row);
}

static void run(am_ctx_t *ctx, am_dtype dt, int N, int L, int H, int T, int repeats,
                double floor_gbs) {
  size_t es = am_dtype_size(dt), per_layer = (size_t)N * H * T * T;
  void *att = malloc((size_t)L * per_layer * es),
       *grad = malloc((size_t)L * per_layer * es);
  fill_softmax(att, dt, L, N, H, T, 1);
  fill_softmax(grad, dt, L, N, H, T, 2); /* any finite values serve as gradients */
  am_example_t *ex = calloc((size_t)N, sizeof *ex);
  const void **ap = calloc((size_t)N * L, sizeof *ap),
             **gp = calloc((size_t)N * L, sizeof *gp);
  int32_t *idx = malloc((size_t)T * sizeof *idx);
  for (int i = 0; i < T; i++)
    idx[i] = i;
  am_pass_output_t *out = calloc((size_t)N, sizeof *out);
  float *maps = calloc((size_t)N * 3 * T, sizeof *maps);
  float *stats = calloc((size_t)N * (AM_STAT_COUNT + 1) * L * H, sizeof *stats);
  for (int e = 0; e < N; e++) {
    for (int l = 0; l < L; l++) {
      ap[e * L + l] = (char *)att + ((size_t)l * N + e) * H * T * T * es;
      gp[e * L + l] = (char *)grad + ((size_t)l * N + e) * H * T * T * es;
    }
    ex[e] = (am_example_t){L, H, T, T, dt, ap + e * L, gp + e * L, idx, 0};
    out[e] = (am_pass_output_t){maps + (size_t)e * 3 * T,
                                maps + (size_t)e * 3 * T + T,
                                maps + (size_t)e * 3 * T + 2 * T,
                                NULL,
                                NULL,
                                stats + (size_t)e * (AM_STAT_COUNT + 1) * L * H,
                                stats + (size_t)e * (AM_STAT_COUNT + 1) * L * H +
                                    AM_STAT_COUNT * L * H};
  }
  am_pass_options_t opt = {.want = AM_PASS_ATTENTION_LAST | AM_PASS_ROLLOUT |
                                   AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_STATS |
                                   AM_PASS_HEAD_IMPORTANCE};
  double *times = malloc((size_t)repeats * sizeof *times);
  am_fault_t fault;
  int bad = -1;
  /* check once: the grads here are not gradients but rows still sum to 1 */
  am_status st =
      ctx->backend->example_pass(ctx->backend_state, ex, N, &opt, out, &fault, &bad);
  double rs = 0;
  for (int i = 0; i < T; i++)
    rs += maps[T + i];
  printf("check: status %s, rollout row 0 sums to %.6f (expect 1)\n", am_status_str(st),
         rs);
  for (int r = 0; r < repeats; r++) {
    double t0 = now();
    ctx->backend->example_pass(ctx->backend_state, ex, N, &opt, out, &fault, &bad);
    times[r] = now() - t0;
  }
  qsort(times, (size_t)repeats, sizeof *times, cmp_double);
  double med = times[repeats / 2], bytes = 2.0 * (double)L * (double)per_layer * (double)es;
  printf("%-4s L=%d H=%d T=%d N=%d threads=%d: median %.4f s  %.1f examples/s  %.2f GB/s  "
         "(%.0f%% of the %.2f GB/s read floor)\n",
         am_dtype_name(dt), L, H, T, N, am_ctx_threads(ctx), med, N / med,
         bytes / med / 1e9, 100.0 * bytes / med / 1e9 / floor_gbs, floor_gbs);
  free(att), free(grad), free(ex), free(ap), free(gp), free(idx), free(out), free(maps);
  free(stats), free(times);
}

int main(int argc, char **argv) {
  int N = 32, L = 12, H = 12, T = 128, repeats = 5, threads = 0, c;
  static const struct option opts[] = {{"examples", 1, 0, 'n'},
                                       {"tokens", 1, 0, 'T'},
                                       {"layers", 1, 0, 'L'},
                                       {"heads", 1, 0, 'H'},
                                       {"repeats", 1, 0, 'r'},
                                       {"threads", 1, 0, 't'},
                                       {0, 0, 0, 0}};
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'n':
      N = atoi(optarg);
      break;
    case 'T':
      T = atoi(optarg);
      break;
    case 'L':
      L = atoi(optarg);
      break;
    case 'H':
      H = atoi(optarg);
      break;
    case 'r':
      repeats = atoi(optarg);
      break;
    case 't':
      threads = atoi(optarg);
      break;
    default:
      return 2;
    }
  }
  if (N < 1 || T < 1 || L < 1 || H < 1 || repeats < 1)
    return 2;
  am_ctx_options_t o = {.backend = "cpu", .threads = threads};
  am_ctx_t *ctx = NULL;
  char err[256];
  if (am_ctx_create(&o, &ctx, err, sizeof err) != AM_STATUS_OK) {
    fprintf(stderr, "bench_cpu: %s\n", err);
    return 1;
  }
  double floor_gbs = read_bandwidth((size_t)1 << 30, 5);
  printf("device: %s; memory read floor %.2f GB/s (sum over 1 GiB, best of 5)\n",
         am_ctx_device_name(ctx), floor_gbs);
  run(ctx, AM_DTYPE_F32, N, L, H, T, repeats, floor_gbs);
  run(ctx, AM_DTYPE_F16, N, L, H, T, repeats, floor_gbs);
  am_ctx_destroy(ctx);
  return 0;
}
