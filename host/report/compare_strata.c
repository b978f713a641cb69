/* compare_strata.c — the length side of the nightly comparison. Head statistics such as
 * entropy and distance grow with the number of tokens, so a set whose length mix changed
 * drifts with no change in the model. Two things are computed here: the length mix of both
 * runs from summary.json (positions.count, so runs made before this work too), and, with
 * `report --stratify-length`, the change of one per-example quantity stratified by length
 * from both runs' examples.safetensors: examples are put into strata of similar length
 * (width a factor sqrt 2), the per-stratum mean differences are averaged with the pooled
 * share of each stratum held by both runs as weights (direct standardisation), and divided by
 * the pooled within-stratum standard deviation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/compare.h"

#define NSTRATA 64

int am_length_stratum(int64_t n) {
  if (n <= 1)
    return 0;
  int s = (int)floor(2.0 * log2((double)n));
  return s < NSTRATA ? s : NSTRATA - 1;
}

typedef struct moments {
  double n, mean, m2;
} moments_t;

static void add(moments_t *m, double v) {
  m->n += 1;
  double d = v - m->mean;
  m->mean += d / m->n;
  m->m2 += d * (v - m->mean);
}

static void accumulate(const am_strata_input_t *in, moments_t *acc) {
  for (int64_t i = 0; i < in->N; i++) {
    float v = am_rr_f32(in->values, i * in->stride + in->offset);
    if (isfinite(v))
      add(&acc[am_length_stratum(am_rr_int(in->lengths, i))], v);
  }
}

void am_compare_stratified(const am_strata_input_t *run, const am_strata_input_t *base,
                           double *mean_run, double *mean_base, double *delta, double *sd,
                           double *z) {
  moments_t a[NSTRATA], b[NSTRATA];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  accumulate(run, a);
  accumulate(base, b);
  double w = 0, d = 0, ma = 0, mb = 0, m2 = 0, n = 0;
  int strata = 0;
  for (int s = 0; s < NSTRATA; s++) {
    if (a[s].n < 1 || b[s].n < 1) /* a length only one run holds cannot be compared */
      continue;
    double ws = a[s].n + b[s].n;
    w += ws;
    d += ws * (a[s].mean - b[s].mean);
    ma += ws * a[s].mean;
    mb += ws * b[s].mean;
    m2 += a[s].m2 + b[s].m2;
    n += ws;
    strata++;
  }
  if (w == 0) {
    *mean_run = *mean_base = *delta = *sd = *z = NAN;
    return;
  }
  *delta = d / w;
  *mean_run = ma / w;
  *mean_base = mb / w;
  *sd = n - 2.0 * strata > 0 ? sqrt(m2 / (n - 2.0 * strata)) : NAN;
  if (*sd > 0 && isfinite(*sd))
    *z = *delta / *sd;
  else
    *z = *delta == 0 ? 0.0 : (*delta > 0 ? INFINITY : -INFINITY);
}

/* Mean and sample variance of the lengths from positions.count (count[i] = examples with
 * more than i tokens), and the histogram of lengths into hist (capacity cap). */
static double length_moments(json_t *summary, double *mean, double *var, double *hist,
                             int cap) {
  json_t *count = am_jget(summary, "positions", NULL);
  count = count ? json_object_get(count, "count") : NULL;
  size_t T = json_array_size(count);
  double n = am_jnum(json_array_get(count, 0)), s = 0, s2 = 0;
  for (int k = 0; k < cap; k++)
    hist[k] = 0;
  for (size_t i = 0; i < T; i++) {
    double here = am_jnum(json_array_get(count, i));
    double next = i + 1 < T ? am_jnum(json_array_get(count, i + 1)) : 0;
    double exact = here - next; /* examples of exactly i + 1 tokens */
    if (!(exact > 0))
      continue;
    s += exact * (double)(i + 1);
    s2 += exact * (double)(i + 1) * (double)(i + 1);
    hist[am_length_stratum((int64_t)i + 1)] += exact;
  }
  if (!(n > 0))
    return 0;
  *mean = s / n;
  *var = n > 1 ? (s2 - s * s / n) / (n - 1) : 0;
  return n;
}

json_t *am_compare_length_mix(json_t *run, json_t *base, double threshold) {
  double ha[NSTRATA], hb[NSTRATA], ma = NAN, va = NAN, mb = NAN, vb = NAN;
  double na = length_moments(run, &ma, &va, ha, NSTRATA);
  double nb = length_moments(base, &mb, &vb, hb, NSTRATA);
  if (!(na > 0) || !(nb > 0))
    return json_null();
  double sd = NAN;
  double z = am_compare_z(na, ma, va * (na - 1), nb, mb, vb * (nb - 1), &sd);
  double tvd = 0;
  for (int s = 0; s < NSTRATA; s++)
    tvd += fabs(ha[s] / na - hb[s] / nb);
  tvd /= 2;
  /* the same threshold as every other entry, on the mean length; a reshuffled mix with the
   * same mean shows in the distance between the length histograms (strata of sqrt 2) */
  int changed = (isfinite(z) && fabs(z) > threshold) || isinf(z) || tvd > 0.2;
  return json_pack("{s:f,s:f,s:f,s:f,s:o,s:f,s:b}", "run_mean", ma, "baseline_mean", mb,
                   "run_sd", sqrt(va), "baseline_sd", sqrt(vb),
                   "z", isfinite(z) ? json_real(z) : json_null(), "tvd", tvd, "changed",
                   changed);
}
