/* parity.c — inputs and comparisons of the backend parity suite (parity.h). */
#include "support/parity.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"

#define GUARD 4
#define GUARD_BITS 0xDEADBEEFu
#define POISON_BITS 0x7FC0DEADu
#define NARRAYS 10

uint64_t par_rand(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double par_uniform(uint64_t *s) { return (double)(par_rand(s) >> 11) * 0x1p-53; }

static double gauss(uint64_t *s) {
  double u = par_uniform(s), v = par_uniform(s);
  return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

void par_store_value(void *at, am_dtype dt, float v) {
  unsigned char *p = at;
  switch (dt) {
  case AM_DTYPE_F16: {
    uint16_t h = am_f32_to_f16(v);
    memcpy(p, &h, 2);
    break;
  }
  case AM_DTYPE_BF16: {
    uint16_t h = am_f32_to_bf16(v);
    memcpy(p, &h, 2);
    break;
  }
  case AM_DTYPE_F64: {
    double d = v;
    memcpy(p, &d, 8);
    break;
  }
  default:
    memcpy(p, &v, 4);
    break;
  }
}

void *par_at(par_data_t *d, int grad, int l, int e, int h, int i, int j) {
  const par_case_t *c = &d->c;
  size_t at = ((((size_t)l * c->nex + e) * c->H + h) * c->T + i) * c->T + j;
  return (grad ? d->grad : d->att) + at * am_dtype_size(c->dtype);
}

void par_store(par_data_t *d, int grad, int l, int e, int h, int i, int j, float v) {
  par_store_value((unsigned char *)par_at(d, grad, l, e, h, i, j), d->c.dtype, v);
}

/* Valid positions of example e; returns n. */
static int make_mask(const par_case_t *c, int e, int32_t *idx) {
  const int T = c->T;
  int n = 0;
  if (c->lengths) {
    for (int p = 0; p < c->lengths[e]; p++)
      idx[n++] = p;
    return n;
  }
  int kind = e % PAR_NMASKS;
  if (c->no_empty && kind == PAR_EMPTY)
    kind = PAR_FULL;
  int lo = 0, hi = T; /* [lo, hi) */
  switch (kind) {
  case PAR_RIGHT:
    hi = T - 1 - e % 5 > 1 ? T - 1 - e % 5 : 1;
    break;
  case PAR_LEFT:
    lo = 2 + e % 3 < T ? 2 + e % 3 : T - 1;
    break;
  case PAR_BOTH:
    lo = T >= 5 ? 2 : 0;
    hi = T >= 5 ? T - 2 : T;
    break;
  case PAR_HOLES:
    for (int p = 0; p < T; p++)
      if (p % 3 != 1 || T < 3)
        idx[n++] = p;
    return n;
  case PAR_EMPTY:
    return 0;
  case PAR_SINGLE:
    lo = T / 2;
    hi = lo + 1;
    break;
  default:
    break;
  }
  for (int p = lo; p < hi; p++)
    idx[n++] = p;
  return n;
}

static int target_of(par_target t, int n) {
  switch (t) {
  case PAR_LAST:
    return n - 1;
  case PAR_MEAN:
    return AM_ROW_MEAN;
  case PAR_SECOND:
    return n > 1 ? 1 : 0;
  default:
    return 0;
  }
}

/* Softmax rows over the valid keys, gradients of either sign, NaN in padding. */
static void fill(par_data_t *d, uint64_t *rng) {
  const par_case_t *c = &d->c;
  const size_t cells = (size_t)c->L * c->nex * c->H * c->T * c->T;
  const size_t es = am_dtype_size(c->dtype);
  double *z = malloc((size_t)c->T * sizeof *z);
  for (size_t k = 0; k < cells; k++) {
    par_store_value(d->att + k * es, c->dtype, NAN);
    if (d->grad)
      par_store_value(d->grad + k * es, c->dtype, NAN);
  }
  for (int l = 0; l < c->L; l++)
    for (int e = 0; e < c->nex; e++) {
      const am_example_t *x = &d->ex[e];
      for (int h = 0; h < c->H; h++) {
        const double scale = 0.3 + 0.9 * h + 0.2 * l; /* flat to peaky heads */
        for (int i = 0; i < x->n; i++) {
          double mx = -1e300, sum = 0.0;
          for (int j = 0; j < x->n; j++) {
            z[j] = scale * gauss(rng);
            mx = z[j] > mx ? z[j] : mx;
          }
          for (int j = 0; j < x->n; j++)
            sum += (z[j] = exp(z[j] - mx));
          for (int j = 0; j < x->n; j++) {
            par_store(d, 0, l, e, h, x->idx[i], x->idx[j], (float)(z[j] / sum));
            if (d->grad)
              par_store(d, 1, l, e, h, x->idx[i], x->idx[j],
                        (float)((2.0 * par_uniform(rng) - 1.0) * (1 + h)));
          }
        }
      }
    }
  free(z);
}

par_data_t *par_make(const par_case_t *c) {
  par_data_t *d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->c = *c;
  const size_t bytes = (size_t)c->L * c->nex * c->H * c->T * c->T * am_dtype_size(c->dtype);
  d->att_buf = malloc(bytes + 8);
  d->grad_buf = c->grads ? malloc(bytes + 8) : NULL;
  d->att_ptrs = calloc((size_t)c->nex * c->L, sizeof *d->att_ptrs);
  d->grad_ptrs = calloc((size_t)c->nex * c->L, sizeof *d->grad_ptrs);
  d->idx = calloc((size_t)c->nex * c->T + 1, sizeof *d->idx);
  d->ex = calloc((size_t)c->nex, sizeof *d->ex);
  d->steps = calloc((size_t)c->nex * c->steps + 1, sizeof *d->steps);
  if (!d->att_buf || (c->grads && !d->grad_buf) || !d->att_ptrs || !d->grad_ptrs ||
      !d->idx || !d->ex || !d->steps) {
    par_free(d);
    return NULL;
  }
  d->att = d->att_buf + 3; /* odd offsets: nothing may assume alignment */
  d->grad = d->grad_buf ? d->grad_buf + 3 : NULL;
  for (int e = 0; e < c->nex; e++) {
    int32_t *idx = d->idx + (size_t)e * c->T;
    const int n = make_mask(c, e, idx);
    for (int l = 0; l < c->L; l++) {
      d->att_ptrs[(size_t)e * c->L + l] = par_at(d, 0, l, e, 0, 0, 0);
      d->grad_ptrs[(size_t)e * c->L + l] = d->grad ? par_at(d, 1, l, e, 0, 0, 0) : NULL;
    }
    d->ex[e] = (am_example_t){.L = c->L,
                              .H = c->H,
                              .T = c->T,
                              .n = n,
                              .dtype = c->dtype,
                              .att = d->att_ptrs + (size_t)e * c->L,
                              .grad = d->grad ? d->grad_ptrs + (size_t)e * c->L : NULL,
                              .idx = idx,
                              .target = n > 0 ? target_of(c->target, n) : 0,
                              .nsteps = c->steps,
                              .steps = d->steps + (size_t)e * c->steps};
    for (int s = 0; s < c->steps && n > 0; s++)
      d->steps[(size_t)e * c->steps + s] = (7 * s + 3) % n;
  }
  uint64_t rng = c->seed;
  fill(d, &rng);
  d->opt = (am_pass_options_t){.want = c->want,
                               .fusion = c->fusion,
                               .discard = c->discard,
                               .normalize = c->normalize,
                               .grid = c->grid};
  return d;
}

void par_free(par_data_t *d) {
  if (!d)
    return;
  free(d->att_buf);
  free(d->grad_buf);
  free(d->att_ptrs);
  free(d->grad_ptrs);
  free(d->idx);
  free(d->ex);
  free(d->steps);
  free(d);
}

/* ---- outputs --------------------------------------------------------------------- */

static const char *const array_names[NARRAYS] = {
    "attention_last",    "rollout",           "grad_rollout",    "rollout_rows",
    "grad_rollout_rows", "head_stats",        "head_importance", "attention_last_steps",
    "rollout_steps",     "grad_rollout_steps"};
static const unsigned array_bits[NARRAYS] = {
    AM_PASS_ATTENTION_LAST,    AM_PASS_ROLLOUT,
    AM_PASS_GRAD_ROLLOUT,      AM_PASS_ROLLOUT_ROWS,
    AM_PASS_GRAD_ROLLOUT_ROWS, AM_PASS_HEAD_STATS,
    AM_PASS_HEAD_IMPORTANCE,   AM_PASS_ATTENTION_LAST_STEPS,
    AM_PASS_ROLLOUT_STEPS,     AM_PASS_GRAD_ROLLOUT_STEPS};

static float **slot(am_pass_output_t *o, int k) {
  float **s[NARRAYS] = {&o->attention_last,    &o->rollout,
                        &o->grad_rollout,      &o->rollout_rows,
                        &o->grad_rollout_rows, &o->head_stats,
                        &o->head_importance,   &o->attention_last_steps,
                        &o->rollout_steps,     &o->grad_rollout_steps};
  return s[k];
}

static size_t array_len(const par_data_t *d, int e, int k) {
  const size_t n = (size_t)d->ex[e].n, LH = (size_t)d->c.L * d->c.H;
  const size_t sn = (size_t)d->c.steps * n;
  const size_t lens[NARRAYS] = {n, n, n, n * n, n * n, AM_STAT_COUNT * LH, LH, sn, sn, sn};
  return (d->c.want & array_bits[k]) ? lens[k] : 0;
}

static void fill_bits(float *p, size_t n, uint32_t bits) {
  for (size_t i = 0; i < n; i++)
    memcpy(p + i, &bits, 4);
}

static int has_bits(const float *p, uint32_t bits) {
  uint32_t b;
  memcpy(&b, p, 4);
  return b == bits;
}

par_out_t *par_out_make(const par_data_t *d) {
  par_out_t *o = calloc(1, sizeof *o);
  size_t total = GUARD;
  o->nex = d->c.nex;
  o->out = calloc((size_t)o->nex, sizeof *o->out);
  o->len = calloc((size_t)o->nex * NARRAYS, sizeof *o->len);
  for (int e = 0; e < o->nex; e++)
    for (int k = 0; k < NARRAYS; k++)
      total += (o->len[e * NARRAYS + k] = array_len(d, e, k)) + GUARD;
  o->buf = malloc(total * sizeof(float));
  fill_bits(o->buf, total, GUARD_BITS);
  float *at = o->buf + GUARD;
  for (int e = 0; e < o->nex; e++)
    for (int k = 0; k < NARRAYS; k++) {
      const size_t len = o->len[e * NARRAYS + k];
      if (d->c.want & array_bits[k]) {
        *slot(&o->out[e], k) = at;
        fill_bits(at, len, POISON_BITS);
      }
      at += len + GUARD;
    }
  return o;
}

void par_out_free(par_out_t *o) {
  if (!o)
    return;
  free(o->buf);
  free(o->out);
  free(o->len);
  free(o);
}

int par_out_check(const par_data_t *d, const par_out_t *o, const char *who) {
  int bad = 0;
  const float *at = o->buf;
  for (int g = 0; g < GUARD; g++)
    bad += !has_bits(at + g, GUARD_BITS);
  at += GUARD;
  for (int e = 0; e < o->nex; e++)
    for (int k = 0; k < NARRAYS; k++) {
      const size_t len = o->len[e * NARRAYS + k];
      const int map = k < 5; /* maps of an empty example stay untouched */
      for (size_t i = 0; i < len; i++) {
        const int poison = has_bits(at + i, POISON_BITS);
        if (poison != (map && d->ex[e].n == 0)) {
          if (!bad)
            fprintf(stderr, "%s %s: example %d (n %d) %s[%zu] %s\n", d->c.name, who, e,
                    d->ex[e].n, array_names[k], i, poison ? "never written" : "written");
          bad++;
        }
      }
      for (int g = 0; g < GUARD; g++)
        if (!has_bits(at + len + g, GUARD_BITS)) {
          if (!bad)
            fprintf(stderr, "%s %s: example %d: guard after %s overwritten\n", d->c.name,
                    who, e, array_names[k]);
          bad++;
        }
      at += len + GUARD;
    }
  return bad;
}

int par_compare_floats(const char *what, const float *got, const float *ref, size_t n,
                       double rtol, const char *case_name, uint64_t seed) {
  double scale = 0.0, se = 0.0, sr = 0.0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(ref[i]) && fabs(ref[i]) > scale)
      scale = fabs(ref[i]);
  const double atol = rtol * scale;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    const double x = got[i], r = ref[i];
    int ok;
    if (isnan(r) || isnan(x)) {
      ok = isnan(r) && isnan(x);
    } else {
      ok = fabs(x - r) <= atol + rtol * fabs(r);
      se += (x - r) * (x - r);
      sr += r * r;
    }
    if (!ok && bad++ < 3)
      fprintf(stderr, "%s (seed %llu): %s[%zu]: got %.9g, expected %.9g\n", case_name,
              (unsigned long long)seed, what, i, x, r);
  }
  if (sr > 0.0 && se > rtol * rtol * sr) {
    fprintf(stderr, "%s (seed %llu): %s: normalised MSE %.3g above %.3g\n", case_name,
            (unsigned long long)seed, what, se / sr, rtol * rtol);
    bad++;
  }
  return bad;
}

int par_compare(const par_data_t *d, const par_out_t *got, const par_out_t *ref,
                double rtol, double rtol_rows) {
  int bad = 0;
  for (int e = 0; e < d->c.nex; e++)
    for (int k = 0; k < NARRAYS; k++) {
      const size_t len = ref->len[e * NARRAYS + k];
      if (!len)
        continue;
      char what[96];
      snprintf(what, sizeof what, "example %d (n %d) %s", e, d->ex[e].n, array_names[k]);
      bad += par_compare_floats(what, *slot(&got->out[e], k), *slot(&ref->out[e], k), len,
                                k == 3 || k == 4 ? rtol_rows : rtol, d->c.name, d->c.seed);
    }
  return bad;
}

am_status par_pass(am_ctx_t *ctx, par_data_t *d, par_out_t *o, am_fault_t *f, int *bad) {
  *bad = -1;
  memset(f, 0, sizeof *f);
  return ctx->backend->example_pass(ctx->backend_state, d->ex, d->c.nex, &d->opt, o->out, f,
                                    bad);
}
