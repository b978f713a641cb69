/* bench_long.c — time and peak memory of the long-context form on the CPU
 * (docs/long-context.md) per example at growing T, for a small decoder shape (default
 * L = 2, H = 8, Hkv = 2, d = 64, causal, F16 inputs with gradients, target last, every
 * analysis but flow), the inputs made on the fly (no files).
 *
 * First it checks the pass once against the CPU matrix path at T = --check-tokens (A and G
 * formed in double from the same inputs by tests/support/long_inputs.c): the largest
 * relative difference over every output. Then each T runs in a child process of its own,
 * so that its peak resident size (getrusage of the child) is its own: inputs made, one
 * warm-up pass (T < 8192), then --repeats timed passes (median). Flops counted: the score
 * sweeps 2 x 2 n^2 d, dO V^T and P V 2 x 2 n^2 d, halved by the causal mask, per head and
 * layer; a T x T matrix of the same example would hold L H T^2 x 2 bytes (F16) per form.
 *   usage: bench_long [--threads K] [--tokens 1024,4096,16384] [--repeats R]
 *                     [--check-tokens N (0: no check)] [--kernels simd|plain]
 * --kernels plain: the plain C per-tile loops (expf, key by key), for before/after on one
 * binary; simd (default): this CPU's fastest. CPU-s: the process's CPU time over the
 * timed pass (every thread), beside its wall time.
 * Every pass runs in a child process: the parent never starts OpenMP's threads, which a
 * fork would leave behind. Last line: RESULT key=value ... */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/half.h"
#include "cpu/example_pass.h"
#include "cpu/long_kernels.h"
#include "cpu/long_pass.h"
#include "cpu/row_sweep.h"
#include "tests/support/long_inputs.h"

enum { L = 2, H = 8, HKV = 2, D = 64 };
#define WANT_ALL                                                                           \
  (AM_PASS_ATTENTION_LAST | AM_PASS_ROLLOUT | AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_STATS |  \
   AM_PASS_HEAD_IMPORTANCE)

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }

typedef struct outs {
  float *maps, stats[AM_STAT_COUNT * L * H], importance[L * H];
  am_pass_output_t out;
} outs_t;

static void outs_init(outs_t *o, int n) {
  o->maps = calloc(3 * (size_t)n, sizeof(float));
  o->out = (am_pass_output_t){.attention_last = o->maps,
                              .rollout = o->maps + n,
                              .grad_rollout = o->maps + 2 * (size_t)n,
                              .head_stats = o->stats,
                              .head_importance = o->importance};
}

static double max_rel(const float *a, const float *b, size_t count, double floor) {
  double worst = 0.0;
  for (size_t k = 0; k < count; k++) {
    double r = fabs((double)b[k]), e = fabs((double)a[k] - (double)b[k]);
    if (!isfinite(a[k]) || !isfinite(b[k]))
      return INFINITY;
    if (r > floor && e / r > worst)
      worst = e / r;
  }
  return worst;
}

/* The pass against the matrix path at T tokens; returns the largest relative difference. */
static double check(int T, int threads, const am_cpu_kernels_t *kernels) {
  lc_case_t c = {.L = L,
                 .H = H,
                 .Hkv = HKV,
                 .T = T,
                 .d = D,
                 .pad_left = 3,
                 .attn = {1.0 / 8.0, 1, 0, 0},
                 .dtype = AM_DTYPE_F16,
                 .seed = 7};
  lc_data_t x;
  if (lc_data_make(&x, &c) != 0)
    return INFINITY;
  am_pass_options_t opt = {.want = WANT_ALL};
  outs_t a, m;
  outs_init(&a, x.n);
  outs_init(&m, x.n);
  am_lc_example_t lex;
  am_example_t mex;
  lc_data_example(&x, x.n - 1, &lex);
  lc_data_matrix_example(&x, x.n - 1, &mex);
  am_fault_t f;
  int fe;
  am_cpu_scratch_t scratch = {.kernels = am_cpu_kernels_plain()};
  double worst = INFINITY;
  if (am_cpu_lc_pass_with(kernels, &lex, 1, &opt, &a.out, threads, &f, &fe) ==
          AM_STATUS_OK &&
      am_cpu_example_pass(&mex, &opt, &m.out, &scratch, &f) == AM_STATUS_OK) {
    worst = max_rel(a.maps, m.maps, 3 * (size_t)x.n, 1e-3 / x.n);
    double s = max_rel(a.stats, m.stats, AM_STAT_COUNT * L * H, 1e-6);
    double i = max_rel(a.importance, m.importance, L * H, 1e-6);
    worst = fmax(worst, fmax(s, i));
  }
  am_cpu_scratch_free(&scratch);
  free(a.maps);
  free(m.maps);
  lc_data_free(&x);
  return worst;
}

static void *random_f16(size_t count, double spread, uint64_t *state) {
  uint16_t *t = malloc(count * sizeof *t);
  for (size_t i = 0; t && i < count; i++) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    double u = (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0; /* [0,1) */
    t[i] = am_f32_to_f16((float)(spread * (2.0 * u - 1.0) * 1.7320508));
  }
  return t;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The child: inputs, passes, one line "seconds input_bytes". */
static int child(int T, int threads, int repeats, const am_cpu_kernels_t *kernels,
                 int pipe_fd) {
  uint64_t rng = 11;
  size_t qn = (size_t)H * T * D, kn = (size_t)HKV * T * D;
  void *q[L], *k[L], *v[L], *dout[L];
  for (int l = 0; l < L; l++) {
    q[l] = random_f16(qn, 1.0, &rng);
    k[l] = random_f16(kn, 1.0, &rng);
    v[l] = random_f16(kn, 1.0, &rng);
    dout[l] = random_f16(qn, 0.1, &rng);
    if (!q[l] || !k[l] || !v[l] || !dout[l])
      return 1;
  }
  int32_t *idx = malloc((size_t)T * sizeof *idx);
  for (int i = 0; i < T; i++)
    idx[i] = i;
  am_lc_example_t ex = {.L = L,
                        .H = H,
                        .Hkv = HKV,
                        .T = T,
                        .d = D,
                        .n = T,
                        .dtype = AM_DTYPE_F16,
                        .q = (const void *const *)q,
                        .k = (const void *const *)k,
                        .v = (const void *const *)v,
                        .dout = (const void *const *)dout,
                        .idx = idx,
                        .target = T - 1,
                        .attn = {1.0 / 8.0, 1, 0, 0}};
  am_pass_options_t opt = {.want = WANT_ALL};
  outs_t o;
  outs_init(&o, T);
  am_fault_t f;
  int fe;
  double times[64], cpu[64];
  int runs = repeats < 64 ? repeats : 64;
  if (T < 8192 &&
      am_cpu_lc_pass_with(kernels, &ex, 1, &opt, &o.out, threads, &f, &fe) != AM_STATUS_OK)
    return 1;
  for (int r = 0; r < runs; r++) {
    double t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (am_cpu_lc_pass_with(kernels, &ex, 1, &opt, &o.out, threads, &f, &fe) !=
        AM_STATUS_OK)
      return 1;
    times[r] = now() - t0;
    cpu[r] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
  }
  qsort(times, (size_t)runs, sizeof *times, cmp_double);
  qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
  char line[128];
  int len = snprintf(line, sizeof line, "%.6f %.6f %zu\n", times[runs / 2], cpu[runs / 2],
                     (size_t)L * 2 * (qn + kn) * 2);
  return write(pipe_fd, line, (size_t)len) == len ? 0 : 1;
}

int main(int argc, char **argv) {
  int threads = 2, repeats = 3, check_tokens = 1024;
  const am_cpu_kernels_t *kernels = am_cpu_kernels_for_this_cpu();
  char tokens[256] = "1024,4096,16384";
  static const struct option longopts[] = {
      {"threads", 1, 0, 't'},      {"tokens", 1, 0, 'n'},  {"repeats", 1, 0, 'r'},
      {"check-tokens", 1, 0, 'c'}, {"kernels", 1, 0, 'k'}, {0, 0, 0, 0}};
  for (int ch; (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1;) {
    if (ch == 't')
      threads = atoi(optarg);
    else if (ch == 'n')
      snprintf(tokens, sizeof tokens, "%s", optarg);
    else if (ch == 'r')
      repeats = atoi(optarg);
    else if (ch == 'c')
      check_tokens = atoi(optarg);
    else if (ch == 'k' && (!strcmp(optarg, "plain") || !strcmp(optarg, "simd")))
      kernels =
          strcmp(optarg, "plain") ? am_cpu_kernels_for_this_cpu() : am_cpu_kernels_plain();
    else
      return 2;
  }
  openblas_set_num_threads(1); /* as the CPU backend: threads over (example, head) */
  double loads[3] = {0};
  if (getloadavg(loads, 3) < 0)
    loads[0] = NAN;
  printf("bench_long: L=%d H=%d Hkv=%d d=%d causal F16, threads %d, kernels %s, load "
         "average %.2f\n",
         L, H, HKV, D, threads, am_lc_kernels_for(kernels)->name, loads[0]);
  double worst = 0.0;
  if (check_tokens > 0) { /* in a child too: OpenMP's threads do not survive a fork */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      worst = check(check_tokens, threads, kernels);
      printf("check at T=%d: largest relative difference to the matrix path %.3g\n",
             check_tokens, worst);
      fflush(stdout);
      _exit(worst <= 1e-4 ? 0 : 1);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
      printf("check FAILED\n");
      return 1;
    }
    worst = -1.0; /* printed by the child */
  }
  printf("%8s %12s %10s %10s %12s %12s %16s\n", "T", "s/example", "CPU-s", "GFLOP/s",
         "peak MiB", "inputs MiB", "T x T F16 MiB");
  char result[1024];
  int rl = snprintf(result, sizeof result, "RESULT checked=%d", worst < 0.0);
  for (char *tok = strtok(tokens, ","); tok; tok = strtok(NULL, ",")) {
    int T = atoi(tok), fds[2];
    if (T < 1 || pipe(fds) != 0)
      return 2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      _exit(child(T, threads, T >= 8192 ? 1 : repeats, kernels, fds[1]));
    }
    close(fds[1]);
    char buf[128] = "";
    ssize_t got = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) ||
        got <= 0) {
      printf("%8d failed\n", T);
      continue;
    }
    double secs = 0.0, cpus = 0.0;
    size_t in_bytes = 0;
    sscanf(buf, "%lf %lf %zu", &secs, &cpus, &in_bytes);
    double n = T, flops = (double)L * H * 4.0 * 2.0 * n * n * D / 2.0;
    double matrix = (double)L * H * n * n * 2.0 / 1048576.0;
    printf("%8d %12.3f %10.3f %10.1f %12.1f %12.1f %16.0f\n", T, secs, cpus,
           flops / secs / 1e9, (double)ru.ru_maxrss / 1024.0, (double)in_bytes / 1048576.0,
           matrix);
    rl += snprintf(result + rl, sizeof result - (size_t)rl,
                   " t%d=%.3f cpu%d=%.3f rss%d_mib=%.1f", T, secs, T, cpus, T,
                   (double)ru.ru_maxrss / 1024.0);
  }
  printf("%s\n", result);
  return 0;
}
