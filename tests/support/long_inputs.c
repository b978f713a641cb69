/* long_inputs.c — long-context test inputs and their matrix form (long_inputs.h). The
 * matrix form is computed here straight from the definition, in double, independently of
 * host/cpu/long_*.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"
#include "support/long_inputs.h"

static double lc_uniform(uint64_t *state) { /* splitmix64 */
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

static double lc_normal(uint64_t *state) { /* Box-Muller */
  double u = lc_uniform(state), v = lc_uniform(state);
  return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static size_t esize(am_dtype dt) { return dt == AM_DTYPE_F32 ? 4 : 2; }

static void put(void *dst, am_dtype dt, size_t i, float v) {
  unsigned char *p = dst;
  if (dt == AM_DTYPE_F32) {
    memcpy(p + 4 * i, &v, 4);
  } else {
    uint16_t h = dt == AM_DTYPE_F16 ? am_f32_to_f16(v) : am_f32_to_bf16(v);
    memcpy(p + 2 * i, &h, 2);
  }
}

static void *fill(const lc_case_t *c, int heads, double spread, uint64_t *rng) {
  size_t count = (size_t)c->L * heads * c->T * c->d;
  void *t = malloc(count * esize(c->dtype));
  for (size_t i = 0; t && i < count; i++)
    put(t, c->dtype, i, (float)(spread * lc_normal(rng)));
  return t;
}

static const void **layers(const void *base, const lc_case_t *c, int heads) {
  const void **p = malloc((size_t)c->L * sizeof *p);
  size_t block = (size_t)heads * c->T * c->d * esize(c->dtype);
  for (int l = 0; p && l < c->L; l++)
    p[l] = (const unsigned char *)base + (size_t)l * block;
  return p;
}

static double load(const void *t, am_dtype dt, size_t i) {
  return am_load_float(t, dt, (int64_t)i);
}

/* q . k of valid rows i, j of head h (KV head kv) of layer l, in double. */
static double dot(const lc_data_t *x, const void *a, int ha, const void *b, int hb, int l,
                  int i, int j, int heads_a, int heads_b) {
  const lc_case_t *c = &x->c;
  size_t ra = (((size_t)l * heads_a + ha) * c->T + x->idx[i]) * c->d;
  size_t rb = (((size_t)l * heads_b + hb) * c->T + x->idx[j]) * c->d;
  double s = 0.0;
  for (int t = 0; t < c->d; t++)
    s += load(a, c->dtype, ra + t) * load(b, c->dtype, rb + t);
  return s;
}

void lc_data_scores(const lc_data_t *x, int l, int h, double *s) {
  const lc_case_t *c = &x->c;
  const am_attention_spec_t *a = &c->attn;
  int n = x->n, kv = h / (c->H / c->Hkv);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      double v = a->scale * dot(x, x->q, h, x->k, kv, l, i, j, c->H, c->Hkv);
      if (a->softcap > 0)
        v = a->softcap * tanh(v / a->softcap);
      long back = (long)x->idx[i] - x->idx[j];
      int hidden = (a->causal && back < 0) ||
                   (a->sliding_window > 0 && (back >= a->sliding_window ||
                                              (!a->causal && -back >= a->sliding_window)));
      s[(size_t)i * n + j] = hidden ? -INFINITY : v;
    }
}

/* att, grad of layer l, head h: softmax rows over the valid keys, dO . v for every valid
 * pair; padded rows and columns 0. */
static void matrix_head(lc_data_t *x, int l, int h, double *s) {
  const lc_case_t *c = &x->c;
  int n = x->n, T = c->T, kv = h / (c->H / c->Hkv);
  float *att = x->att + ((size_t)l * c->H + h) * T * T;
  float *grad = x->grad + ((size_t)l * c->H + h) * T * T;
  lc_data_scores(x, l, h, s);
  for (int i = 0; i < n; i++) {
    double m = -INFINITY, sum = 0.0;
    for (int j = 0; j < n; j++)
      m = s[(size_t)i * n + j] > m ? s[(size_t)i * n + j] : m;
    for (int j = 0; j < n; j++)
      sum += exp(s[(size_t)i * n + j] - m);
    for (int j = 0; j < n; j++) {
      size_t at = (size_t)x->idx[i] * T + x->idx[j];
      att[at] = (float)(exp(s[(size_t)i * n + j] - m) / sum);
      grad[at] = (float)dot(x, x->dout, h, x->v, kv, l, i, j, c->H, c->Hkv);
    }
  }
}

int lc_data_make(lc_data_t *x, const lc_case_t *c) {
  memset(x, 0, sizeof *x);
  x->c = *c;
  x->idx = malloc((size_t)c->T * sizeof *x->idx);
  if (!x->idx)
    return 1;
  for (int p = c->pad_left; p < c->T - c->pad_right; p++)
    if (!(c->hole_every > 0 && p > c->pad_left && (p - c->pad_left) % c->hole_every == 0))
      x->idx[x->n++] = p;
  uint64_t rng = c->seed * 0x2545F4914F6CDD1Dull + 1;
  double sharp = c->sharp > 0 ? c->sharp : 1.0;
  x->q = fill(c, c->H, sharp, &rng);
  x->k = fill(c, c->Hkv, 1.0, &rng);
  x->v = fill(c, c->Hkv, 1.0, &rng);
  x->dout = fill(c, c->H, 0.1, &rng);
  x->qp = layers(x->q, c, c->H);
  x->kp = layers(x->k, c, c->Hkv);
  x->vp = layers(x->v, c, c->Hkv);
  x->dp = layers(x->dout, c, c->H);
  size_t block = (size_t)c->H * c->T * c->T;
  x->att = calloc((size_t)c->L * block, sizeof *x->att);
  x->grad = calloc((size_t)c->L * block, sizeof *x->grad);
  x->ap = malloc((size_t)c->L * sizeof *x->ap);
  x->gp = malloc((size_t)c->L * sizeof *x->gp);
  double *s = malloc((size_t)x->n * x->n * sizeof *s + 1);
  if (!x->q || !x->k || !x->v || !x->dout || !x->qp || !x->kp || !x->vp || !x->dp ||
      !x->att || !x->grad || !x->ap || !x->gp || !s) {
    free(s);
    return 1;
  }
  for (int l = 0; l < c->L; l++) {
    x->ap[l] = x->att + l * block;
    x->gp[l] = x->grad + l * block;
    for (int h = 0; h < c->H; h++)
      matrix_head(x, l, h, s);
  }
  free(s);
  return 0;
}

void lc_data_free(lc_data_t *x) {
  free(x->idx);
  free(x->q);
  free(x->k);
  free(x->v);
  free(x->dout);
  free(x->qp);
  free(x->kp);
  free(x->vp);
  free(x->dp);
  free(x->att);
  free(x->grad);
  free(x->ap);
  free(x->gp);
  memset(x, 0, sizeof *x);
}

void lc_data_example(const lc_data_t *x, int target, am_lc_example_t *ex) {
  const lc_case_t *c = &x->c;
  *ex = (am_lc_example_t){.L = c->L,
                          .H = c->H,
                          .Hkv = c->Hkv,
                          .T = c->T,
                          .d = c->d,
                          .n = x->n,
                          .dtype = c->dtype,
                          .q = x->qp,
                          .k = x->kp,
                          .v = x->vp,
                          .dout = x->dp,
                          .idx = x->idx,
                          .target = target,
                          .attn = c->attn};
}

void lc_data_matrix_example(const lc_data_t *x, int target, am_example_t *ex) {
  const lc_case_t *c = &x->c;
  *ex = (am_example_t){.L = c->L,
                       .H = c->H,
                       .T = c->T,
                       .n = x->n,
                       .dtype = AM_DTYPE_F32,
                       .att = x->ap,
                       .grad = x->gp,
                       .idx = x->idx,
                       .target = target};
}
