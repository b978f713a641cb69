/* test_parity_long.c — the long-context form (docs/long-context.md) on every backend under
 * test (support/backends.c; CUDA: a GPU or the emulator of tests/cuda_emu) against the
 * reference, the CPU backend's long_pass, and against the matrix form of the same attention
 * (tests/support/long_inputs.c: A and G formed in double from the same stored Q, K, V, dO,
 * through the CPU's plain matrix loops). Cases: padding left, right, both sides and holes;
 * GQA, MHA and MQA; causal and bidirectional; sliding windows; soft-cap; F32, F16, BF16;
 * T and d not multiples of the tiles; a patch grid; targets cls, last, an index and mean;
 * --normalize; a batch of three examples of other lengths and an empty one; and the first
 * fault (inputs not finite, an overflowing score) in the CPU's order.
 *
 * Tolerance: |x - ref| <= rtol |ref| + ATOL per value. rtol = 1e-5 (STYLE.md's F32) for
 * F32 inputs everywhere and for F16/BF16 inputs on the CPU and the CUDA emulator: both
 * widen the same stored 16-bit values, whose products are exact in F32, and sum in F32 or
 * wider, so only the order of the sums differs (measured largest relative difference
 * printed by the test). On a GPU, F16/BF16 scores come from tensor cores, which add the
 * exact products with truncation rather than rounding (Fasi et al. 2021, "Numerical
 * behavior of NVIDIA tensor cores"): a score may be off by up to about d 2^-23 times
 * scale sum_k |q_k k_k|, and exp carries that into the weights; with d <= 32 and that sum
 * <= 8 (these cases), about 3e-5: RTOL_MMA = 1e-4 there, an analytic estimate until a GPU
 * run measures it (the test prints the largest difference).
 * ATOL = 1e-7
 * absorbs the float noise of values that are 0 or nearly so. Outputs are pre-filled with
 * a poison that every value must overwrite and followed by a guard that must stay. */
#include <cblas.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "cpu/example_pass.h"
#include "cpu/row_sweep.h"
#include "ops/backend.h"
#include "support/backends.h"
#include "support/long_inputs.h"

#define RTOL 1e-5
#define RTOL_MMA 1e-4 /* F16/BF16 inputs on tensor cores (above) */
#define ATOL 1e-7
#define POISON 12345.0f
#define GUARD -777.0f
#define WANT_ALL                                                                           \
  (AM_PASS_ATTENTION_LAST | AM_PASS_ROLLOUT | AM_PASS_GRAD_ROLLOUT | AM_PASS_HEAD_STATS |  \
   AM_PASS_HEAD_IMPORTANCE)

static am_ctx_t *ref, *dut;

static void setup(void) {
  openblas_set_num_threads(1);
  ref = par_reference();
  cr_assert_not_null(ref);
}

static void teardown(void) {
  am_ctx_destroy(dut);
  am_ctx_destroy(ref);
  dut = ref = NULL;
}

TestSuite(parity_long, .init = setup, .fini = teardown, .timeout = 900);

/* The cases: every one with T (and most with d) not a multiple of the 64-row tiles. */
static const lc_case_t cases[] = {
    /* GQA, causal, left padding, F32 */
    {.L = 2,
     .H = 4,
     .Hkv = 2,
     .T = 150,
     .d = 16,
     .pad_left = 7,
     .attn = {0.25, 1, 0, 0},
     .dtype = AM_DTYPE_F32,
     .seed = 21},
    /* MHA, bidirectional, right padding, d = 8 (padded to 16 on the device) */
    {.L = 2,
     .H = 2,
     .Hkv = 2,
     .T = 131,
     .d = 8,
     .pad_right = 11,
     .attn = {0.3, 0, 0, 0},
     .dtype = AM_DTYPE_F32,
     .sharp = 2.0,
     .seed = 22},
    /* MQA, causal sliding window, both sides, F16 */
    {.L = 2,
     .H = 3,
     .Hkv = 1,
     .T = 140,
     .d = 32,
     .pad_left = 5,
     .pad_right = 9,
     .attn = {0.18, 1, 37, 0},
     .dtype = AM_DTYPE_F16,
     .seed = 23},
    /* bidirectional window, holes, soft-cap, BF16 */
    {.L = 2,
     .H = 2,
     .Hkv = 1,
     .T = 100,
     .d = 24,
     .pad_left = 3,
     .pad_right = 4,
     .hole_every = 9,
     .attn = {0.25, 0, 20, 5.0},
     .dtype = AM_DTYPE_BF16,
     .sharp = 3.0,
     .seed = 24},
    /* soft-cap, causal, GQA, F16, three layers */
    {.L = 3,
     .H = 4,
     .Hkv = 2,
     .T = 70,
     .d = 16,
     .pad_left = 2,
     .attn = {0.25, 1, 0, 30.0},
     .dtype = AM_DTYPE_F16,
     .sharp = 3.0,
     .seed = 25},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

typedef struct outs {
  float *buf; /* five arrays, each followed by a guard */
  am_pass_output_t out;
  size_t len[5];
} outs_t;

static void outs_make(outs_t *o, int n, int L, int H) {
  const size_t len[5] = {(size_t)n, (size_t)n, (size_t)n, (size_t)AM_STAT_COUNT * L * H,
                         (size_t)L * H};
  size_t total = 0;
  for (int k = 0; k < 5; k++)
    total += (o->len[k] = len[k]) + 1;
  o->buf = malloc(total * sizeof *o->buf);
  cr_assert_not_null(o->buf);
  float *p[5];
  for (int k = 0, at = 0; k < 5; at += (int)len[k] + 1, k++) {
    p[k] = o->buf + at;
    for (size_t i = 0; i < len[k]; i++)
      p[k][i] = POISON;
    p[k][len[k]] = GUARD;
  }
  o->out = (am_pass_output_t){.attention_last = p[0],
                              .rollout = p[1],
                              .grad_rollout = p[2],
                              .head_stats = p[3],
                              .head_importance = p[4]};
}

static const float *array_of(const outs_t *o, int k) {
  const float *a[5] = {o->out.attention_last, o->out.rollout, o->out.grad_rollout,
                       o->out.head_stats, o->out.head_importance};
  return a[k];
}

/* the largest |x - ref| / |ref| seen (|ref| > 1e-3): against the CPU, the matrix form */
static double worst_cpu, worst_matrix;

/* got against want (one example's outputs); who names the comparison. */
/* The tolerance for inputs of dtype dt on the backend under test (above). */
static double rtol_for(am_dtype dt) {
  const int emulated = strstr(am_ctx_device_name(dut), "cuda_emu") != NULL;
  return dt == AM_DTYPE_F32 || emulated || strcmp(dut->backend->name, "cuda") != 0
             ? RTOL
             : RTOL_MMA;
}

static void expect_outs(const outs_t *got, const outs_t *want, const char *who,
                        const char *label, double *worst_rel, double rtol) {
  static const char *names[5] = {"attention_last", "rollout", "grad_rollout", "head_stats",
                                 "head_importance"};
  for (int k = 0; k < 5; k++) {
    const float *g = array_of(got, k), *w = array_of(want, k);
    cr_expect(g[got->len[k]] == GUARD, "%s %s: %s: the guard after it was overwritten", who,
              label, names[k]);
    int shown = 0;
    for (size_t i = 0; i < got->len[k]; i++) {
      const double err = fabs((double)g[i] - (double)w[i]), r = fabs((double)w[i]);
      if (r > 1e-3 && err / r > *worst_rel)
        *worst_rel = err / r;
      const int ok = (isnan(g[i]) && isnan(w[i])) ||
                     (g[i] != POISON && isfinite(g[i]) && err <= ATOL + rtol * r);
      if (!ok && shown++ < 3)
        cr_expect(ok, "%s %s: %s[%zu]: %.9g, expected %.9g", who, label, names[k], i, g[i],
                  w[i]);
    }
  }
}

static am_status long_pass(am_ctx_t *c, const am_lc_example_t *ex, int nex,
                           const am_pass_options_t *opt, outs_t *o, am_fault_t *f,
                           int *bad) {
  am_pass_output_t out[8];
  cr_assert(nex <= 8);
  for (int e = 0; e < nex; e++)
    out[e] = o[e].out;
  *bad = -1;
  memset(f, 0, sizeof *f);
  cr_assert_not_null(c->backend->long_pass, "%s has no long_pass", c->backend->name);
  return c->backend->long_pass(c->backend_state, ex, nex, opt, out, f, bad);
}

/* The matrix form of x through the CPU's plain loops. */
static void matrix_pass(const lc_data_t *x, int target, const am_pass_options_t *opt,
                        outs_t *o) {
  am_example_t ex;
  lc_data_matrix_example(x, target, &ex);
  am_cpu_scratch_t scratch = {.kernels = am_cpu_kernels_plain()};
  am_fault_t fault;
  const am_status st = am_cpu_example_pass(&ex, opt, &o->out, &scratch, &fault);
  am_cpu_scratch_free(&scratch);
  cr_assert_eq(st, AM_STATUS_OK, "matrix form: status %d", st);
}

/* Case c with one target and normalisation: the backend against the CPU's long form and
 * the matrix form. */
static void compare_case(const par_backend_t *be, int c, int target, am_normalize norm,
                         const am_grid_t *grid) {
  lc_data_t x;
  cr_assert_eq(lc_data_make(&x, &cases[c]), 0);
  const int L = cases[c].L, H = cases[c].H, n = x.n;
  const int t = target == -2 ? n - 1 : target;
  am_pass_options_t opt = {.want = WANT_ALL, .fusion = AM_FUSION_MEAN, .normalize = norm};
  if (grid)
    opt.grid = *grid;
  am_lc_example_t ex;
  lc_data_example(&x, t, &ex);
  outs_t got, want, mat;
  outs_make(&got, n, L, H);
  outs_make(&want, n, L, H);
  outs_make(&mat, n, L, H);
  am_fault_t f;
  int bad;
  cr_assert_eq(long_pass(ref, &ex, 1, &opt, &want, &f, &bad), AM_STATUS_OK);
  const am_status st = long_pass(dut, &ex, 1, &opt, &got, &f, &bad);
  cr_assert_eq(st, AM_STATUS_OK, "%s case %d: status %d (%s)", be->name, c, st,
               am_last_error(dut));
  matrix_pass(&x, t, &opt, &mat);
  char label[96];
  snprintf(label, sizeof label, "case %d (seed %llu) target %d normalize %d", c,
           (unsigned long long)cases[c].seed, t, norm);
  expect_outs(&got, &want, be->name, label, &worst_cpu, rtol_for(cases[c].dtype));
  expect_outs(&got, &mat, "matrix form", label, &worst_matrix, rtol_for(cases[c].dtype));
  free(got.buf);
  free(want.buf);
  free(mat.buf);
  lc_data_free(&x);
}

PAR_TEST(parity_long, every_output_equals_the_cpu_and_the_matrix_form) {
  dut = par_backend_open(be, PAR_PLAIN);
  static const int targets[4] = {0, -2, 3, AM_ROW_MEAN}; /* -2: the last token */
  for (int c = 0; c < NCASES; c++)
    compare_case(be, c, targets[c % 4], AM_NORMALIZE_NONE, NULL);
  compare_case(be, 0, AM_ROW_MEAN, AM_NORMALIZE_MINMAX, NULL);
  compare_case(be, 2, 0, AM_NORMALIZE_MAX, NULL);
  compare_case(be, 3, -2, AM_NORMALIZE_SUM, NULL);
  fprintf(stderr,
          "parity_long (%s): largest relative difference %.3g to the CPU's long pass, "
          "%.3g to the matrix form\n",
          be->name, worst_cpu, worst_matrix);
}

PAR_TEST(parity_long, patch_grid_and_one_token) {
  dut = par_backend_open(be, PAR_PLAIN);
  /* one prefix token and 4 x 5 patches, bidirectional; then a single valid token */
  static const lc_case_t vit = {.L = 2,
                                .H = 2,
                                .Hkv = 2,
                                .T = 21,
                                .d = 8,
                                .attn = {0.35, 0, 0, 0},
                                .dtype = AM_DTYPE_F32,
                                .seed = 26};
  static const lc_case_t one = {.L = 2,
                                .H = 2,
                                .Hkv = 1,
                                .T = 5,
                                .d = 4,
                                .pad_left = 4,
                                .attn = {0.5, 1, 0, 0},
                                .dtype = AM_DTYPE_BF16,
                                .seed = 27};
  const lc_case_t *cs[2] = {&vit, &one};
  const am_grid_t grid = {4, 5, 1};
  for (int k = 0; k < 2; k++) {
    lc_data_t x;
    cr_assert_eq(lc_data_make(&x, cs[k]), 0);
    am_pass_options_t opt = {.want = WANT_ALL, .fusion = AM_FUSION_MEAN};
    if (k == 0)
      opt.grid = grid;
    am_lc_example_t ex;
    lc_data_example(&x, 0, &ex);
    outs_t got, want;
    outs_make(&got, x.n, cs[k]->L, cs[k]->H);
    outs_make(&want, x.n, cs[k]->L, cs[k]->H);
    am_fault_t f;
    int bad;
    cr_assert_eq(long_pass(ref, &ex, 1, &opt, &want, &f, &bad), AM_STATUS_OK);
    cr_assert_eq(long_pass(dut, &ex, 1, &opt, &got, &f, &bad), AM_STATUS_OK, "%s",
                 am_last_error(dut));
    expect_outs(&got, &want, be->name, k ? "one token" : "patch grid", &worst_cpu,
                rtol_for(cs[k]->dtype));
    free(got.buf);
    free(want.buf);
    lc_data_free(&x);
  }
}

/* Three examples of other lengths (one empty) in one call: each as alone on the CPU, and
 * the same bits alone and on a second run. */
PAR_TEST(parity_long, a_batch_of_examples) {
  dut = par_backend_open(be, PAR_PLAIN);
  lc_case_t c = {.L = 2,
                 .H = 2,
                 .Hkv = 1,
                 .T = 80,
                 .d = 16,
                 .attn = {0.25, 1, 0, 0},
                 .dtype = AM_DTYPE_F16,
                 .seed = 28};
  lc_data_t x[3];
  am_lc_example_t ex[3];
  outs_t got[3], want[3];
  const int pads[3] = {0, 80, 30}; /* the second example is all padding: n = 0 */
  am_pass_options_t opt = {.want = WANT_ALL, .fusion = AM_FUSION_MEAN};
  for (int e = 0; e < 3; e++) {
    c.pad_right = pads[e];
    c.seed = 28 + e;
    cr_assert_eq(lc_data_make(&x[e], &c), 0);
    lc_data_example(&x[e], e == 2 ? AM_ROW_MEAN : 0, &ex[e]);
    outs_make(&got[e], x[e].n, c.L, c.H);
    outs_make(&want[e], x[e].n, c.L, c.H);
  }
  am_fault_t f;
  int bad;
  cr_assert_eq(long_pass(ref, ex, 3, &opt, want, &f, &bad), AM_STATUS_OK);
  cr_assert_eq(long_pass(dut, ex, 3, &opt, got, &f, &bad), AM_STATUS_OK, "%s",
               am_last_error(dut));
  /* deterministic: example 0 alone, and the batch again, give the same bits */
  outs_t alone, again[3];
  outs_make(&alone, x[0].n, c.L, c.H);
  for (int e = 0; e < 3; e++)
    outs_make(&again[e], x[e].n, c.L, c.H);
  cr_assert_eq(long_pass(dut, ex, 1, &opt, &alone, &f, &bad), AM_STATUS_OK);
  cr_assert_eq(long_pass(dut, ex, 3, &opt, again, &f, &bad), AM_STATUS_OK);
  const size_t floats = 3 * (size_t)x[0].n + (AM_STAT_COUNT + 1) * (size_t)c.L * c.H + 5;
  cr_expect(memcmp(alone.buf, got[0].buf, floats * sizeof(float)) == 0,
            "%s: example 0 alone differs from example 0 in the batch", be->name);
  for (int e = 0; e < 3; e++) {
    const size_t fe = 3 * (size_t)x[e].n + (AM_STAT_COUNT + 1) * (size_t)c.L * c.H + 5;
    cr_expect(memcmp(again[e].buf, got[e].buf, fe * sizeof(float)) == 0,
              "%s: example %d differs between two runs", be->name, e);
    free(again[e].buf);
  }
  free(alone.buf);
  for (int e = 0; e < 3; e++) {
    char label[32];
    snprintf(label, sizeof label, "batch example %d (n %d)", e, x[e].n);
    expect_outs(&got[e], &want[e], be->name, label, &worst_cpu, rtol_for(c.dtype));
    free(got[e].buf);
    free(want[e].buf);
    lc_data_free(&x[e]);
  }
}

/* Stores v at element (l, head, valid row i, c) of a [L,heads,T,d] F32 tensor. */
static void poke(const lc_data_t *x, void *t, int heads, int l, int h, int i, int c,
                 float v) {
  ((float *)t)[(((size_t)l * heads + h) * x->c.T + x->idx[i]) * x->c.d + c] = v;
}

/* The first fault: the same example, kind, layer, head and row as the CPU. */
PAR_TEST(parity_long, the_first_fault_is_the_cpus) {
  dut = par_backend_open(be, PAR_PLAIN);
  const lc_case_t c = {.L = 3,
                       .H = 4,
                       .Hkv = 2,
                       .T = 150,
                       .d = 8,
                       .pad_left = 3,
                       .attn = {0.25, 1, 0, 0},
                       .dtype = AM_DTYPE_F32,
                       .seed = 31};
  /* each scenario: what is injected into example 1 of a batch of 2 */
  enum { NSCEN = 5 };
  for (int s = 0; s < NSCEN; s++) {
    lc_data_t x[2];
    am_lc_example_t ex[2];
    outs_t got[2], want[2];
    for (int e = 0; e < 2; e++) {
      cr_assert_eq(lc_data_make(&x[e], &c), 0);
      lc_data_example(&x[e], 0, &ex[e]);
      outs_make(&got[e], x[e].n, c.L, c.H);
      outs_make(&want[e], x[e].n, c.L, c.H);
    }
    lc_data_t *y = &x[1];
    switch (s) {
    case 0: /* a NaN in K of KV head 1 (query heads 2, 3), and a later row of Q, head 1 */
      poke(y, y->k, 2, 1, 1, 100, 3, NAN);
      poke(y, y->q, 4, 1, 1, 120, 0, INFINITY);
      break;
    case 1: /* K of KV head 1 at row 5 comes before Q of head 1 at row 120 (head field) */
      poke(y, y->k, 2, 1, 1, 5, 3, NAN);
      poke(y, y->q, 4, 1, 1, 120, 0, INFINITY);
      break;
    case 2: /* an overflowing score in a higher layer comes before a NaN lower down */
      poke(y, y->q, 4, 2, 3, 70, 0, 3e38f);
      poke(y, y->k, 2, 2, 1, 10, 0, 3e38f);
      poke(y, y->dout, 4, 1, 0, 0, 0, NAN);
      break;
    case 3: /* dO of head 2, V of KV head 0 */
      poke(y, y->dout, 4, 0, 2, 140, 7, -INFINITY);
      poke(y, y->v, 2, 0, 0, 141, 1, NAN);
      break;
    default: /* an overflowing score at head 0 before an input fault at head 3 */
      poke(y, y->q, 4, 1, 0, 130, 2, -3e38f);
      poke(y, y->k, 2, 1, 0, 20, 2, 3e38f);
      poke(y, y->q, 4, 1, 3, 0, 0, NAN);
      break;
    }
    am_pass_options_t opt = {.want = WANT_ALL, .fusion = AM_FUSION_MEAN};
    am_fault_t fr, fg;
    int br, bg;
    const am_status sr = long_pass(ref, ex, 2, &opt, want, &fr, &br);
    const am_status sg = long_pass(dut, ex, 2, &opt, got, &fg, &bg);
    cr_assert_eq(sr, AM_STATUS_BAD_INPUT, "scenario %d: the CPU found no fault", s);
    cr_expect(sg == sr && bg == br && fg.kind == fr.kind && fg.layer == fr.layer &&
                  fg.head == fr.head && fg.row == fr.row &&
                  (fg.value == fr.value || (isnan(fg.value) && isnan(fr.value))),
              "scenario %d: %s status %d example %d fault %d l%d h%d row %d value %g; "
              "cpu status %d example %d fault %d l%d h%d row %d value %g",
              s, be->name, sg, bg, fg.kind, fg.layer, fg.head, fg.row, fg.value, sr, br,
              fr.kind, fr.layer, fr.head, fr.row, fr.value);
    for (int e = 0; e < 2; e++) {
      free(got[e].buf);
      free(want[e].buf);
      lc_data_free(&x[e]);
    }
  }
}

/* Every device of the context (cuda:all; three on the emulator, tests/cuda_emu/run.sh):
 * examples are dealt to the devices in turn, and the batch gives the bits of one device;
 * with faults in examples 3 and 5 of 7 the first fault is example 3's, as the CPU says. */
PAR_TEST(parity_long, every_device_gives_the_same_bits_and_the_first_fault) {
  am_ctx_t *all = par_backend_open(be, PAR_ALL_DEVICES);
  dut = par_backend_open(be, PAR_PLAIN);
  lc_case_t c = {.L = 2,
                 .H = 4,
                 .Hkv = 2,
                 .T = 70,
                 .d = 8,
                 .attn = {0.25, 1, 0, 0},
                 .dtype = AM_DTYPE_BF16,
                 .seed = 51};
  enum { NEX = 7 };
  lc_data_t x[NEX];
  am_lc_example_t ex[NEX];
  outs_t one[NEX], many[NEX], cpu[NEX];
  am_pass_options_t opt = {.want = WANT_ALL, .fusion = AM_FUSION_MEAN};
  for (int e = 0; e < NEX; e++) {
    c.pad_right = e == 4 ? 70 : (e * 11) % 40; /* example 4 is all padding */
    c.seed = 51 + e;
    cr_assert_eq(lc_data_make(&x[e], &c), 0);
    lc_data_example(&x[e], e % 2 ? AM_ROW_MEAN : 0, &ex[e]);
    outs_make(&one[e], x[e].n, c.L, c.H);
    outs_make(&many[e], x[e].n, c.L, c.H);
    outs_make(&cpu[e], x[e].n, c.L, c.H);
  }
  am_fault_t f, fc;
  int bad, badc;
  cr_assert_eq(long_pass(dut, ex, NEX, &opt, one, &f, &bad), AM_STATUS_OK, "%s",
               am_last_error(dut));
  cr_assert_eq(long_pass(all, ex, NEX, &opt, many, &f, &bad), AM_STATUS_OK, "%s",
               am_last_error(all));
  for (int e = 0; e < NEX; e++) {
    size_t floats = 4;
    for (int k = 0; k < 5; k++)
      floats += one[e].len[k];
    cr_expect(memcmp(one[e].buf, many[e].buf, floats * sizeof(float)) == 0,
              "%s: example %d: one device and %s differ", be->name, e,
              am_ctx_device_name(all));
  }
  /* faults: a NaN in V of example 5, then an infinity in Q of example 3 */
  ((uint16_t *)x[5].v)[x[5].idx[2] * c.d] = 0x7FC0;     /* BF16 NaN, layer 0, head 0 */
  ((uint16_t *)x[3].q)[x[3].idx[9] * c.d + 1] = 0x7F80; /* BF16 +inf, layer 0, head 0 */
  const am_status sc = long_pass(ref, ex, NEX, &opt, cpu, &fc, &badc);
  const am_status sg = long_pass(all, ex, NEX, &opt, many, &f, &bad);
  cr_assert_eq(sc, AM_STATUS_BAD_INPUT, "the CPU found no fault");
  cr_expect(sg == sc && bad == badc && f.kind == fc.kind && f.layer == fc.layer &&
                f.head == fc.head && f.row == fc.row,
            "%s: status %d example %d fault %d l%d h%d row %d; cpu status %d example %d "
            "fault %d l%d h%d row %d",
            am_ctx_device_name(all), sg, bad, f.kind, f.layer, f.head, f.row, sc, badc,
            fc.kind, fc.layer, fc.head, fc.row);
  for (int e = 0; e < NEX; e++) {
    free(one[e].buf);
    free(many[e].buf);
    free(cpu[e].buf);
    lc_data_free(&x[e]);
  }
  am_ctx_destroy(all);
}
