/* parity.h — inputs and comparisons for the backend parity suites (tests/test_parity.c;
 * the backends they run on: backends.h):
 * a batch of examples in the layout the pipeline hands a backend (per layer [B,H,T,T]
 * blocks at odd byte offsets, padding on either side, holes, empty rows, NaN in every
 * padded cell so that a read of padding shows), outputs fenced by guard values and
 * filled with a poison that every wanted value must overwrite, and the STYLE.md
 * comparison |x - ref| <= atol + rtol |ref| per element plus a normalised MSE bound. */
#ifndef TESTS_SUPPORT_PARITY_H
#define TESTS_SUPPORT_PARITY_H

#include <stdint.h>

#include "ops/backend.h"

/* Valid positions of an example: which tokens of its row are real. */
typedef enum par_mask {
  PAR_FULL,   /* n = T */
  PAR_RIGHT,  /* padding after */
  PAR_LEFT,   /* padding before */
  PAR_BOTH,   /* padding on both sides */
  PAR_HOLES,  /* every third position masked */
  PAR_EMPTY,  /* n = 0 */
  PAR_SINGLE, /* n = 1 */
  PAR_NMASKS
} par_mask;

typedef enum par_target { PAR_CLS, PAR_LAST, PAR_MEAN, PAR_SECOND } par_target;

typedef struct par_case {
  const char *name;
  int L, H, T, nex;
  am_dtype dtype;
  int grads;
  const int *lengths; /* [nex] right-padded lengths; NULL: masks cycle PAR_FULL.. */
  int no_empty;       /* 1: skip PAR_EMPTY in the cycle */
  unsigned want;      /* AM_PASS_* */
  am_fusion fusion;
  double discard;
  par_target target;
  am_normalize normalize;
  am_grid_t grid;
  uint64_t seed;
  int steps; /* several targets: steps per example (valid tokens (7s + 3) mod n, so
                unordered and, where n is small, repeated), for the *_STEPS outputs */
} par_case_t;

typedef struct par_data {
  par_case_t c;
  unsigned char *att_buf, *grad_buf; /* allocations; data starts 3 bytes in */
  unsigned char *att, *grad;         /* [L][nex][H][T][T] */
  const void **att_ptrs, **grad_ptrs;
  int32_t *idx;   /* [nex][T] */
  int32_t *steps; /* [nex][c.steps] */
  am_example_t *ex;
  am_pass_options_t opt;
} par_data_t;

/* Builds the batch of c (NULL on out of memory). */
par_data_t *par_make(const par_case_t *c);
void par_free(par_data_t *d);
/* Pointer to element (l, e, h, i, j) of the attentions (grad = 1: gradients). */
void *par_at(par_data_t *d, int grad, int l, int e, int h, int i, int j);
/* Stores v there in the batch's dtype. */
void par_store(par_data_t *d, int grad, int l, int e, int h, int i, int j, float v);
/* Stores v at `at` in dtype dt (F32, F16, BF16 or F64). */
void par_store_value(void *at, am_dtype dt, float v);

/* Outputs of a batch, each array fenced by guards and pre-filled with poison. */
typedef struct par_out {
  int nex;
  float *buf;
  am_pass_output_t *out;
  size_t *len; /* [nex*7] elements of each array */
} par_out_t;

par_out_t *par_out_make(const par_data_t *d);
void par_out_free(par_out_t *o);
/* Counts guards that changed and wanted values still holding poison (n >= 1), or maps of
 * an empty example that were written; reports the first to stderr. 0: clean. */
int par_out_check(const par_data_t *d, const par_out_t *o, const char *who);

/* Compares got against ref output by output; 0 when every element passes
 * |x - r| <= atol + rtol |r| (atol = rtol * max|r| of the array, rows: rtol_rows) and
 * sum (x-r)^2 <= rtol^2 sum r^2; both NaN passes, one NaN fails. Prints the first
 * failures with the case name and seed. */
int par_compare(const par_data_t *d, const par_out_t *got, const par_out_t *ref,
                double rtol, double rtol_rows);

/* One array: the same rules; name for messages. Returns failures. */
int par_compare_floats(const char *what, const float *got, const float *ref, size_t n,
                       double rtol, const char *case_name, uint64_t seed);

/* The backend's fused pass over the batch of d into o; f and bad as example_pass gives
 * them (bad -1 when no example was bad). */
am_status par_pass(am_ctx_t *ctx, par_data_t *d, par_out_t *o, am_fault_t *f, int *bad);

/* Deterministic random numbers. */
uint64_t par_rand(uint64_t *s);
double par_uniform(uint64_t *s); /* [0,1) */

#endif
