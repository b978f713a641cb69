/* test_agreement.c — the agreement metrics (host/cpu/agreement.c, docs/design.md §3
 * "Agreement").
 * Expected values come from scipy/numpy (fixtures/agreement_reference.h, made by
 * fixtures/make_agreement_reference.py); Kendall's tau-b, Spearman and the top-k orders are
 * also checked against O(m^2) definitions written here on seeded random vectors with ties;
 * plus symmetry, identical inputs, the NaN cases and guards around scratch and output. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/agreement.h"
#include "fixtures/agreement_reference.h"

#define RTOL 1e-9
#define ATOL 1e-12
#define GUARD 8
#define GUARD_VALUE (-12345.678)
#define SEED 0x5eed2024u

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static int rng_int(uint64_t *s, int n) { return (int)(rng_next(s) % (uint64_t)n); }
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1p-53; }

/* Random values; levels > 0 draws from that many integers (ties), levels == 0 draws
 * continuous values. Signs and zeros are mixed in. */
static void fill(float *v, int m, int levels, uint64_t *s) {
  for (int i = 0; i < m; i++)
    v[i] = levels > 0 ? (float)(rng_int(s, levels) - levels / 2)
                      : (float)(4.0 * rng_unit(s) - 2.0);
}

static int close_to(double got, double want) {
  if (isnan(want))
    return isnan(got);
  return !isnan(got) && fabs(got - want) <= ATOL + RTOL * fabs(want);
}

/* Runs am_cpu_agreement with exactly sized heap copies (so the sanitizer sees overreads)
 * and scratch and output surrounded by guard values that must stay untouched. */
static void run(const float *x, const float *y, int m, int k, double out[AM_METRIC_COUNT]) {
  size_t nw = AM_AGREEMENT_WORK(m);
  float *cx = malloc(((size_t)m + 1) * sizeof *cx),
        *cy = malloc(((size_t)m + 1) * sizeof *cy);
  double *work = malloc((nw + 2 * GUARD) * sizeof *work);
  double guarded[AM_METRIC_COUNT + 2 * GUARD];
  cr_assert(cx && cy && work);
  if (m > 0) {
    memcpy(cx, x, (size_t)m * sizeof *x);
    memcpy(cy, y, (size_t)m * sizeof *y);
  }
  for (size_t i = 0; i < nw + 2 * GUARD; i++)
    work[i] = GUARD_VALUE;
  for (int i = 0; i < AM_METRIC_COUNT + 2 * GUARD; i++)
    guarded[i] = GUARD_VALUE;
  am_cpu_agreement(cx, cy, m, k, work + GUARD, guarded + GUARD);
  for (int g = 0; g < GUARD; g++) {
    cr_assert(work[g] == GUARD_VALUE && work[nw + GUARD + g] == GUARD_VALUE,
              "scratch guard overwritten (m=%d)", m);
    cr_assert(guarded[g] == GUARD_VALUE &&
                  guarded[AM_METRIC_COUNT + GUARD + g] == GUARD_VALUE,
              "output guard overwritten (m=%d)", m);
  }
  for (int i = 0; i < m; i++)
    cr_assert(memcmp(&cx[i], &x[i], sizeof *x) == 0 &&
                  memcmp(&cy[i], &y[i], sizeof *y) == 0,
              "input modified at %d", i);
  memcpy(out, guarded + GUARD, AM_METRIC_COUNT * sizeof *out);
  free(cx);
  free(cy);
  free(work);
}

Test(agreement, metric_names_match_reference_order) {
  cr_assert_eq(AM_METRIC_COUNT, AGR_REF_METRICS);
  for (int i = 0; i < AM_METRIC_COUNT; i++)
    cr_assert_str_eq(am_metric_name((am_metric)i), agr_ref_metric_names[i]);
}

Test(agreement, matches_scipy_reference) {
  const int ncases = (int)(sizeof agr_ref_cases / sizeof agr_ref_cases[0]);
  for (int c = 0; c < ncases; c++) {
    const agr_ref_case *rc = &agr_ref_cases[c];
    double out[AM_METRIC_COUNT];
    run(agr_ref_x + rc->offset, agr_ref_y + rc->offset, rc->m, rc->k, out);
    for (int i = 0; i < AM_METRIC_COUNT; i++)
      cr_expect(close_to(out[i], rc->expect[i]),
                "case %s (m=%d k=%d) %s: got %.17g want %.17g", rc->name, rc->m, rc->k,
                am_metric_name((am_metric)i), out[i], rc->expect[i]);
  }
}

static int sign(double d) { return (d > 0) - (d < 0); }

/* tau-b from the definition: every pair, ties counted per pair. */
static double kendall_pairs(const float *x, const float *y, int m) {
  int64_t con = 0, dis = 0, xtie = 0, ytie = 0;
  for (int i = 0; i < m; i++)
    for (int j = i + 1; j < m; j++) {
      int sx = sign((double)x[i] - x[j]), sy = sign((double)y[i] - y[j]);
      xtie += sx == 0;
      ytie += sy == 0;
      con += sx * sy > 0;
      dis += sx * sy < 0;
    }
  int64_t tot = (int64_t)m * (m - 1) / 2;
  if (tot == xtie || tot == ytie)
    return NAN;
  return (double)(con - dis) / sqrt((double)(tot - xtie) * (double)(tot - ytie));
}

/* Average rank from the definition: values below, plus the middle of the tied block. */
static double rank_pairs(const float *v, int m, int i) {
  int below = 0, equal = 0;
  for (int j = 0; j < m; j++) {
    below += v[j] < v[i];
    equal += v[j] == v[i];
  }
  return below + (equal + 1) / 2.0;
}

static double spearman_pairs(const float *x, const float *y, int m, double *rx,
                             double *ry) {
  double mean = (m + 1) / 2.0, sxx = 0, syy = 0, sxy = 0;
  for (int i = 0; i < m; i++) {
    rx[i] = rank_pairs(x, m, i) - mean;
    ry[i] = rank_pairs(y, m, i) - mean;
    sxx += rx[i] * rx[i];
    syy += ry[i] * ry[i];
    sxy += rx[i] * ry[i];
  }
  return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

/* Top-k by repeated selection: largest |v| not yet taken, the lower position on ties. */
static void top_k_select(const float *v, int m, int k, int *order, char *taken) {
  memset(taken, 0, (size_t)m);
  for (int r = 0; r < k; r++) {
    int best = -1;
    for (int i = 0; i < m; i++)
      if (!taken[i] && (best < 0 || fabsf(v[i]) > fabsf(v[best])))
        best = i;
    taken[best] = 1;
    order[r] = best;
  }
}

static void top_k_pairs(const float *x, const float *y, int m, int k, double want[3]) {
  int *ox = malloc((size_t)m * sizeof *ox), *oy = malloc((size_t)m * sizeof *oy);
  char *taken = malloc((size_t)m);
  cr_assert(ox && oy && taken);
  if (k > m)
    k = m;
  top_k_select(x, m, k, ox, taken);
  top_k_select(y, m, k, oy, taken);
  int common = 0, same = 0;
  for (int r = 0; r < k; r++) {
    same += ox[r] == oy[r];
    for (int t = 0; t < k; t++)
      common += ox[r] == oy[t];
  }
  want[0] = (double)common / (2 * k - common);
  want[1] = (double)common / k;
  want[2] = (double)same / k;
  free(ox);
  free(oy);
  free(taken);
}

Test(agreement, matches_pairwise_definitions_on_random_ties) {
  enum { NVEC = 200, MAXM = 300 };
  static float x[MAXM], y[MAXM];
  static double rx[MAXM], ry[MAXM];
  for (int t = 0; t < NVEC; t++) {
    uint64_t seed = SEED + (uint64_t)t, s = seed;
    int m = 2 + rng_int(&s, t < NVEC / 2 ? 40 : MAXM - 1);
    int k = 1 + rng_int(&s, m + 2);
    fill(x, m, rng_int(&s, 9), &s); /* 0: continuous, 1: constant, else ties */
    fill(y, m, rng_int(&s, 9), &s);
    for (int i = 0; t % 2 && i < m; i++) { /* non-negative maps take the top-k order from */
      x[i] = fabsf(x[i]);                  /* the ascending sort (rank.c): both paths */
      y[i] = fabsf(y[i]);
    }
    double out[AM_METRIC_COUNT], want[3];
    run(x, y, m, k, out);
    double tau = kendall_pairs(x, y, m), rho = spearman_pairs(x, y, m, rx, ry);
    cr_expect(close_to(out[AM_METRIC_KENDALL], tau),
              "seed %llu m=%d kendall %.17g want %.17g", (unsigned long long)seed, m,
              out[AM_METRIC_KENDALL], tau);
    cr_expect(close_to(out[AM_METRIC_SPEARMAN], rho),
              "seed %llu m=%d spearman %.17g want %.17g", (unsigned long long)seed, m,
              out[AM_METRIC_SPEARMAN], rho);
    top_k_pairs(x, y, m, k, want);
    for (int i = 0; i < 3; i++)
      cr_expect(out[AM_METRIC_JACCARD + i] == want[i],
                "seed %llu m=%d k=%d %s %.17g want %.17g", (unsigned long long)seed, m, k,
                am_metric_name((am_metric)(AM_METRIC_JACCARD + i)),
                out[AM_METRIC_JACCARD + i], want[i]);
  }
}

Test(agreement, symmetric_in_its_arguments) {
  enum { MAXM = 120 };
  static float x[MAXM], y[MAXM];
  for (int t = 0; t < 100; t++) {
    uint64_t seed = SEED + 1000u + (uint64_t)t, s = seed;
    int m = 1 + rng_int(&s, MAXM), k = 1 + rng_int(&s, m);
    fill(x, m, rng_int(&s, 6), &s);
    fill(y, m, rng_int(&s, 6), &s);
    double xy[AM_METRIC_COUNT], yx[AM_METRIC_COUNT];
    run(x, y, m, k, xy);
    run(y, x, m, k, yx);
    for (int i = 0; i < AM_METRIC_COUNT; i++)
      cr_expect(close_to(yx[i], xy[i]), "seed %llu m=%d %s: %.17g vs %.17g",
                (unsigned long long)seed, m, am_metric_name((am_metric)i), xy[i], yx[i]);
  }
}

Test(agreement, identical_vectors_agree_fully) {
  enum { MAXM = 200 };
  static float x[MAXM];
  const double want[AM_METRIC_COUNT] = {1, 1, 1, 1, 1, 1, 1, 0, 0};
  for (int t = 0; t < 50; t++) {
    uint64_t seed = SEED + 2000u + (uint64_t)t, s = seed;
    int m = 2 + rng_int(&s, MAXM - 1), k = 1 + rng_int(&s, m + 3);
    fill(x, m, t % 2 ? 0 : 5, &s);
    x[0] = 1.0f; /* neither constant nor all zero */
    x[1] = -2.0f;
    double out[AM_METRIC_COUNT];
    run(x, x, m, k, out);
    for (int i = 0; i < AM_METRIC_COUNT; i++)
      cr_expect(fabs(out[i] - want[i]) <= ATOL, "seed %llu m=%d %s = %.17g",
                (unsigned long long)seed, m, am_metric_name((am_metric)i), out[i]);
  }
}

static void expect_nan(const double out[AM_METRIC_COUNT], unsigned mask, const char *what) {
  for (int i = 0; i < AM_METRIC_COUNT; i++)
    if (mask >> i & 1u)
      cr_expect(isnan(out[i]), "%s: %s = %.17g, want NaN", what,
                am_metric_name((am_metric)i), out[i]);
    else
      cr_expect(!isnan(out[i]), "%s: %s is NaN", what, am_metric_name((am_metric)i));
}

#define CORR                                                                               \
  ((1u << AM_METRIC_SPEARMAN) | (1u << AM_METRIC_KENDALL) | (1u << AM_METRIC_PEARSON))
#define TOPK                                                                               \
  ((1u << AM_METRIC_JACCARD) | (1u << AM_METRIC_FEATURE_AGREEMENT) |                       \
   (1u << AM_METRIC_RANK_AGREEMENT))
#define DIV ((1u << AM_METRIC_JSD) | (1u << AM_METRIC_TVD))
#define ALL ((1u << AM_METRIC_COUNT) - 1u)

/* An overflowed map (inf) once gave cosine -1 and JSD 0, "identical": fmax(-1, NaN) is -1
 * and fmax(0, NaN) is 0. Every metric of a non-finite input is undefined. */
Test(agreement, infinite_inputs_are_nan_never_a_bound) {
  double out[AM_METRIC_COUNT];
  float x[] = {INFINITY, 1.0f, 2.0f, 0.5f}, y[] = {1.0f, 2.0f, 3.0f, 0.25f};
  float big[] = {3e38f, 3e38f, 3e38f,
                 3e38f}; /* finite, but x*x overflows F32, not double */
  run(x, y, 4, 2, out);
  expect_nan(out, ALL, "inf in x");
  run(y, x, 4, 2, out);
  expect_nan(out, ALL, "inf in y");
  x[0] = -INFINITY;
  run(x, x, 4, 2, out);
  expect_nan(out, ALL, "-inf in both");
  run(big, y, 4, 2, out);
  cr_expect(fabs(out[AM_METRIC_COSINE] - 0.83333333333333337) < 1e-6, "cosine %.17g",
            out[AM_METRIC_COSINE]);
}

Test(agreement, undefined_values_are_nan) {
  double out[AM_METRIC_COUNT];
  float x[] = {0.3f, -1.0f, 2.0f, 0.0f, 5.0f}, y[] = {1.0f, 2.0f, -0.5f, 4.0f, 0.25f};
  float c[] = {2.0f, 2.0f, 2.0f, 2.0f, 2.0f}, z[] = {0.0f, -0.0f, 0.0f, 0.0f, 0.0f};
  am_cpu_agreement(NULL, NULL, 0, 3, NULL, out); /* m == 0 reads nothing */
  expect_nan(out, ALL, "m=0");
  run(x, y, 1, 1, out);
  expect_nan(out, CORR, "m=1");
  run(c, y, 5, 2, out);
  expect_nan(out, CORR, "constant x");
  run(x, c, 5, 2, out);
  expect_nan(out, CORR, "constant y");
  run(z, y, 5, 2, out);
  expect_nan(out, CORR | DIV | (1u << AM_METRIC_COSINE), "zero x");
  run(x, z, 5, 2, out);
  expect_nan(out, CORR | DIV | (1u << AM_METRIC_COSINE), "zero y");
  run(x, y, 5, 0, out);
  expect_nan(out, TOPK, "k=0");
  run(x, y, 5, -4, out);
  expect_nan(out, TOPK, "k<0");
  for (int i = 0; i < 5; i++) {
    float xn[5], yn[5];
    memcpy(xn, x, sizeof xn);
    memcpy(yn, y, sizeof yn);
    xn[i] = NAN;
    run(xn, y, 5, 2, out);
    expect_nan(out, ALL, "NaN in x");
    yn[i] = NAN;
    run(x, yn, 5, 2, out);
    expect_nan(out, ALL, "NaN in y");
  }
}

Test(agreement, k_is_clipped_to_m) {
  float x[] = {0.1f, 0.9f, -0.5f, 0.2f}, y[] = {0.8f, 0.1f, 0.4f, -0.3f};
  double at_m[AM_METRIC_COUNT], over[AM_METRIC_COUNT];
  run(x, y, 4, 4, at_m);
  run(x, y, 4, 1000, over);
  for (int i = 0; i < AM_METRIC_COUNT; i++)
    cr_expect(at_m[i] == over[i], "%s", am_metric_name((am_metric)i));
  cr_expect(over[AM_METRIC_JACCARD] == 1.0 && over[AM_METRIC_FEATURE_AGREEMENT] == 1.0);
}
