/* bench_long_cuda.cu — the long-context form on the CUDA backend (docs/long-context.md,
 * docs/cuda.md): time and device memory per example at growing T, inputs made on the fly.
 *   small   bench_long.c's decoder shape: L = 2, H = 8, Hkv = 2, d = 64, causal, F16 with
 *           gradients, every analysis but flow; T = 1k, 4k, 16k, 32k;
 *   8b      one layer of a Llama-3-8B shape: H = 32, Hkv = 8, d = 128, causal, BF16 with
 *           gradients; T = 4k, 16k, 32k.
 * First it checks the backend once against the CPU's long pass at T = 1024 (small shape,
 * padding on the left): the largest relative difference over every output. Each timing is
 * the median of --repeats passes after a warm-up, wall clock of the backend's long_pass
 * (host staging, copies and kernels: what `attnmap analyze` waits for). Flops counted: QK^T
 * three times (two row sweeps, the column pass) and dO V^T twice, 2 n^2 d each, halved by
 * the causal mask, per head and layer: the tensor-core work. Memory: the device and pinned
 * buffers the backend holds after the passes (a fresh context per row: that T's need).
 * The last line is JSON for bench/gpu_check.sh.
 *   usage: bench_long_cuda [--repeats R] [--quick (check at 256; T = 256 and 512 only)] */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/cuda_internal.h"

extern "C" {
#include "core/half.h"
#include "tests/support/long_inputs.h"
}

#define WANT_ALL                                                                           \
  (AM_PASS_ATTENTION_LAST | AM_PASS_ROLLOUT | AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_STATS |  \
   AM_PASS_HEAD_IMPORTANCE)

typedef struct shape {
  const char *name;
  int L, H, Hkv, d;
  am_dtype dtype;
  int tokens[4];
} shape_t;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct outs {
  float *buf;
  am_pass_output_t out;
} outs_t;

static void outs_init(outs_t *o, int n, int L, int H) {
  o->buf = (float *)calloc(3 * (size_t)n + (AM_STAT_COUNT + 1) * (size_t)L * H, 4);
  o->out = am_pass_output_t{};
  o->out.attention_last = o->buf;
  o->out.rollout = o->buf + n;
  o->out.grad_rollout = o->buf + 2 * (size_t)n;
  o->out.head_stats = o->buf + 3 * (size_t)n;
  o->out.head_importance = o->buf + 3 * (size_t)n + (size_t)AM_STAT_COUNT * L * H;
}

static double run(am_ctx_t *c, const am_lc_example_t *ex, outs_t *o) {
  am_pass_options_t opt = {};
  opt.want = WANT_ALL;
  am_fault_t f;
  int bad = -1;
  const double t0 = now_s();
  const am_status st =
      c->backend->long_pass(c->backend_state, ex, 1, &opt, &o->out, &f, &bad);
  if (st != AM_STATUS_OK) {
    fprintf(stderr, "bench_long_cuda: %s: %s\n", c->backend->name, am_last_error(c));
    exit(1);
  }
  return now_s() - t0;
}

/* The CUDA pass against the CPU's at T tokens: the largest relative difference. */
static double check(am_ctx_t *gpu, am_ctx_t *cpu, int T) {
  lc_case_t c = {};
  c.L = 2, c.H = 8, c.Hkv = 2, c.T = T, c.d = 64, c.pad_left = 3;
  c.attn = am_attention_spec_t{1.0 / 8.0, 1, 0, 0};
  c.dtype = AM_DTYPE_F16, c.seed = 7;
  lc_data_t x;
  if (lc_data_make(&x, &c) != 0)
    return INFINITY;
  am_lc_example_t ex;
  lc_data_example(&x, x.n - 1, &ex);
  outs_t a, b;
  outs_init(&a, x.n, c.L, c.H);
  outs_init(&b, x.n, c.L, c.H);
  run(gpu, &ex, &a);
  run(cpu, &ex, &b);
  double worst = 0.0;
  const size_t count = 3 * (size_t)x.n + (AM_STAT_COUNT + 1) * (size_t)c.L * c.H;
  for (size_t k = 0; k < count; k++) {
    const double r = fabs((double)b.buf[k]), e = fabs((double)a.buf[k] - (double)b.buf[k]);
    if (!isfinite(a.buf[k]))
      worst = INFINITY;
    else if (r > 1e-6 && e / r > worst)
      worst = e / r;
  }
  free(a.buf);
  free(b.buf);
  lc_data_free(&x);
  return worst;
}

static void *random_16(size_t count, double spread, am_dtype dt, uint64_t *state) {
  uint16_t *t = (uint16_t *)malloc(count * sizeof *t);
  for (size_t i = 0; t && i < count; i++) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    const double u = (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
    const float v = (float)(spread * (2.0 * u - 1.0) * 1.7320508);
    t[i] = dt == AM_DTYPE_F16 ? am_f32_to_f16(v) : am_f32_to_bf16(v);
  }
  return t;
}

/* One shape at T tokens: median seconds, flops, device bytes. */
static void measure(const shape_t *s, int T, int repeats, char *json, size_t *jl,
                    size_t cap) {
  am_ctx_options_t co = {"cuda", 0};
  am_ctx_t *gpu = NULL;
  if (am_ctx_create(&co, &gpu, NULL, 0) != AM_STATUS_OK)
    exit(1);
  uint64_t rng = 11;
  const size_t qn = (size_t)s->H * T * s->d, kn = (size_t)s->Hkv * T * s->d;
  void **t = (void **)calloc(4 * (size_t)s->L, sizeof *t);
  for (int l = 0; l < s->L; l++) {
    t[l] = random_16(qn, 1.0, s->dtype, &rng);
    t[s->L + l] = random_16(kn, 1.0, s->dtype, &rng);
    t[2 * s->L + l] = random_16(kn, 1.0, s->dtype, &rng);
    t[3 * s->L + l] = random_16(qn, 0.1, s->dtype, &rng);
  }
  int32_t *idx = (int32_t *)malloc((size_t)T * sizeof *idx);
  for (int i = 0; i < T; i++)
    idx[i] = i;
  am_lc_example_t ex = {};
  ex.L = s->L, ex.H = s->H, ex.Hkv = s->Hkv, ex.T = T, ex.d = s->d, ex.n = T;
  ex.dtype = s->dtype;
  ex.q = (const void *const *)t;
  ex.k = (const void *const *)t + s->L;
  ex.v = (const void *const *)t + 2 * s->L;
  ex.dout = (const void *const *)t + 3 * s->L;
  ex.idx = idx, ex.target = T - 1;
  ex.attn = am_attention_spec_t{1.0 / sqrt((double)s->d), 1, 0, 0};
  outs_t o;
  outs_init(&o, T, s->L, s->H);
  run(gpu, &ex, &o); /* warm-up; the backend's buffers grow to fit */
  double times[64];
  const int runs = repeats < 64 ? repeats : 64;
  for (int r = 0; r < runs; r++)
    times[r] = run(gpu, &ex, &o);
  qsort(times, (size_t)runs, sizeof *times, cmp_double);
  const double secs = times[runs / 2], n = T;
  const double flops = (double)s->L * s->H * 5.0 * 2.0 * n * n * s->d / 2.0;
  const am_cu_aux_t *aux = &((const am_cu_state_t *)gpu->backend_state)->aux;
  const double dev_mib = (double)aux->d_cap / 1048576.0;
  const double pin_mib = (double)aux->h_cap / 1048576.0;
  const double in_mib = (double)s->L * 2.0 * (qn + kn) * 2.0 / 1048576.0;
  const double matrix_mib = (double)s->L * s->H * n * n * 2.0 / 1048576.0;
  printf("%-6s %7d %12.4f %10.2f %12.1f %12.1f %12.1f %16.0f\n", s->name, T, secs,
         flops / secs / 1e12, dev_mib, pin_mib, in_mib, matrix_mib);
  *jl += (size_t)snprintf(json + *jl, cap - *jl,
                          "%s{\"shape\":\"%s\",\"T\":%d,\"s\":%.6f,\"tflops\":%.3f,"
                          "\"device_mib\":%.1f,\"pinned_mib\":%.1f}",
                          *jl > 1 ? "," : "", s->name, T, secs, flops / secs / 1e12,
                          dev_mib, pin_mib);
  for (int k = 0; k < 4 * s->L; k++)
    free(t[k]);
  free(t);
  free(idx);
  free(o.buf);
  am_ctx_destroy(gpu);
}

int main(int argc, char **argv) {
  int repeats = 5, quick = 0, c;
  static const struct option opts[] = {
      {"repeats", 1, 0, 'r'}, {"quick", 0, 0, 'q'}, {0, 0, 0, 0}};
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'r')
      repeats = atoi(optarg) > 0 ? atoi(optarg) : 1;
    else if (c == 'q')
      quick = 1;
    else {
      fprintf(stderr, "usage: bench_long_cuda [--repeats R] [--quick]\n");
      return 2;
    }
  }
  am_ctx_options_t o = {"cuda", 0};
  am_ctx_t *gpu = NULL, *cpu = NULL;
  char err[1024] = "";
  if (am_ctx_create(&o, &gpu, err, sizeof err) != AM_STATUS_OK) {
    fprintf(stderr, "bench_long_cuda: %s\n", err);
    return 1;
  }
  o.backend = "cpu";
  if (am_ctx_create(&o, &cpu, err, sizeof err) != AM_STATUS_OK) {
    fprintf(stderr, "bench_long_cuda: %s\n", err);
    return 1;
  }
  printf("device: %s; repeats %d\n", am_ctx_device_name(gpu), repeats);
  const int check_T = quick ? 256 : 1024;
  const double worst = check(gpu, cpu, check_T);
  printf("check at T=%d (small shape): largest relative difference to the CPU %.3g "
         "(<= 1e-5: within the parity bound)\n",
         check_T, worst);
  shape_t shapes[2] = {{"small", 2, 8, 2, 64, AM_DTYPE_F16, {1024, 4096, 16384, 32768}},
                       {"8b", 1, 32, 8, 128, AM_DTYPE_BF16, {4096, 16384, 32768, 0}}};
  if (quick) {
    shapes[0].tokens[0] = 256, shapes[0].tokens[1] = 512, shapes[0].tokens[2] = 0;
    shapes[1].tokens[0] = 256, shapes[1].tokens[1] = 0;
  }
  printf("%-6s %7s %12s %10s %12s %12s %12s %16s\n", "shape", "T", "s/example", "TFLOP/s",
         "device MiB", "pinned MiB", "inputs MiB", "T x T F16 MiB");
  char json[2048] = "[";
  size_t jl = 1;
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < 4 && shapes[k].tokens[i] > 0; i++)
      measure(&shapes[k], shapes[k].tokens[i], repeats, json, &jl, sizeof json - 64);
  printf("{\"long_cuda\":%s],\"check_max_rel\":%.3g}\n", json, worst);
  am_ctx_destroy(cpu);
  am_ctx_destroy(gpu);
  return worst <= 1e-5 ? 0 : 1;
}
