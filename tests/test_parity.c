/* test_parity.c — every op of every backend under test (support/backends.c: the CPU's x86
 * sweeps, CUDA) against the reference, the CPU backend's plain loops (STYLE.md, "Tests:
 * parity"; ggml's test-backend-ops is the model: op cases x backends): the fused pass
 * (head fusion, rollout in row form and all-rows form, discard, gradient-weighted rollout,
 * head statistics with and without a patch grid, head importance, attention_last, readout
 * normalisation, F32/F16/BF16/F64 widening) on a table of shapes (T not a multiple of 32,
 * T = 1, every row-length class up to 4096, padding on either or both sides, holes, empty
 * examples), work cut small, the out-of-memory fall-back, device pointers, the
 * asynchronous submit/wait and several devices. Faults, argument errors, agreement,
 * saliency and widening: test_parity_ops.c.
 *
 * Tolerance: every backend widens the same stored values and accumulates in float or
 * double, so the F32 bound rtol = 1e-5 of STYLE.md holds for every dtype (the looser
 * F16/BF16 starting values are not needed); atol = rtol * max|ref| of each array. The
 * all-rows products are float GEMMs summed in different orders by cuBLAS and OpenBLAS:
 * the error of a sum of n positive products is at most ~n u (n = 700: 4e-5), so those
 * arrays get 1e-4 (a bound from that analysis, not yet a measurement on a GPU).
 * A backend that cannot run here (no device, no x86 sweeps), or a test that needs what it
 * does not have (devices, slabs, device memory), reports a skip naming it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "ops/backend.h"
#include "support/backends.h"
#include "support/parity.h"

#define RTOL 1e-5
#define RTOL_ROWS 1e-4
#define ALL 0x7Fu
#define NO_ROWS (ALL & ~(AM_PASS_ROLLOUT_ROWS | AM_PASS_GRAD_ROLLOUT_ROWS))
#define ATT_ONLY                                                                           \
  (AM_PASS_ATTENTION_LAST | AM_PASS_ROLLOUT | AM_PASS_ROLLOUT_ROWS | AM_PASS_HEAD_STATS)

static am_ctx_t *ref;    /* the reference: the CPU's plain loops */
static am_ctx_t *dut[2]; /* the backend under test's contexts, destroyed by teardown */
static const char *who;  /* its name */

static void setup(void) {
  ref = par_reference();
  cr_assert_not_null(ref);
}

static void teardown(void) {
  for (int k = 0; k < 2; k++)
    am_ctx_destroy(dut[k]);
  am_ctx_destroy(ref);
  dut[0] = dut[1] = ref = NULL;
}

/* be's context of variant v in slot 0 or 1 (what the slot held is destroyed first); the
 * test skips without one. */
static am_ctx_t *open_dut(const par_backend_t *be, par_variant v, int slot) {
  who = be->name;
  am_ctx_destroy(dut[slot]);
  dut[slot] = NULL;
  return dut[slot] = par_backend_open(be, v);
}

TestSuite(parity, .init = setup, .fini = teardown, .timeout = 900);

/* Runs c on the reference and on ctx and compares everything. */
static void check_on(am_ctx_t *ctx, const par_case_t *c) {
  par_data_t *d = par_make(c);
  cr_assert_not_null(d, "%s: out of memory", c->name);
  par_out_t *want = par_out_make(d), *got = par_out_make(d);
  am_fault_t f;
  int bad;
  cr_assert_eq(par_pass(ref, d, want, &f, &bad), AM_STATUS_OK, "%s: reference: %s", c->name,
               am_last_error(ref));
  am_status st = par_pass(ctx, d, got, &f, &bad);
  cr_assert_eq(st, AM_STATUS_OK, "%s: %s: %s (fault example %d kind %d)", c->name, who,
               am_last_error(ctx), bad, f.kind);
  cr_expect_eq(par_out_check(d, want, "reference"), 0, "%s: reference outputs", c->name);
  cr_expect_eq(par_out_check(d, got, who), 0, "%s: %s outputs (guards, poison)", c->name,
               who);
  cr_expect_eq(par_compare(d, got, want, RTOL, RTOL_ROWS), 0, "%s: %s (seed %llu)", c->name,
               who, (unsigned long long)c->seed);
  par_out_free(want);
  par_out_free(got);
  par_free(d);
}

/* Runs c on be's default context, made once per test. */
static void check(const par_backend_t *be, const par_case_t *c) {
  check_on(dut[0] ? dut[0] : open_dut(be, PAR_PLAIN, 0), c);
}

/* ---- the fused pass on a table of shapes ------------------------------------------- */

PAR_TEST(parity, mixed_masks_every_dtype) {
  const par_case_t cases[] = {
      {.name = "f32 mixed",
       .L = 2,
       .H = 3,
       .T = 33,
       .nex = 14,
       .dtype = AM_DTYPE_F32,
       .grads = 1,
       .want = NO_ROWS,
       .seed = 1},
      {.name = "f16 mixed, last, max",
       .L = 3,
       .H = 2,
       .T = 40,
       .nex = 14,
       .dtype = AM_DTYPE_F16,
       .grads = 1,
       .want = NO_ROWS,
       .target = PAR_LAST,
       .normalize = AM_NORMALIZE_MAX,
       .seed = 2},
      {.name = "bf16 mixed, mean, sum",
       .L = 2,
       .H = 4,
       .T = 31,
       .nex = 14,
       .dtype = AM_DTYPE_BF16,
       .grads = 1,
       .want = NO_ROWS,
       .target = PAR_MEAN,
       .normalize = AM_NORMALIZE_SUM,
       .seed = 3},
      {.name = "f64 mixed, second, minmax",
       .L = 2,
       .H = 2,
       .T = 20,
       .nex = 7,
       .dtype = AM_DTYPE_F64,
       .grads = 1,
       .want = NO_ROWS,
       .target = PAR_SECOND,
       .normalize = AM_NORMALIZE_MINMAX,
       .seed = 4},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
    check(be, &cases[k]);
}

PAR_TEST(parity, one_token_rows) {
  const par_case_t c = {.name = "T = 1",
                        .L = 2,
                        .H = 2,
                        .T = 1,
                        .nex = 7,
                        .dtype = AM_DTYPE_F32,
                        .grads = 1,
                        .want = ALL,
                        .seed = 5};
  check(be, &c);
}

PAR_TEST(parity, attentions_only) {
  const par_case_t c = {.name = "no gradients",
                        .L = 2,
                        .H = 3,
                        .T = 45,
                        .nex = 14,
                        .dtype = AM_DTYPE_F16,
                        .want = ATT_ONLY,
                        .target = PAR_MEAN,
                        .seed = 6};
  check(be, &c);
}

PAR_TEST(parity, every_row_length_class) {
  /* 8, 16 and 32 lanes per row, one tile up to 512, tiles past it */
  static const int lengths[] = {1, 8, 31, 127, 128, 129, 255, 256, 257, 511, 512, 513, 600};
  const par_case_t c = {.name = "length classes",
                        .L = 2,
                        .H = 2,
                        .T = 600,
                        .nex = 13,
                        .dtype = AM_DTYPE_F16,
                        .grads = 1,
                        .lengths = lengths,
                        .want = NO_ROWS,
                        .seed = 7};
  check(be, &c);
}

PAR_TEST(parity, long_rows) {
  static const int lengths[] = {4096, 3001};
  const par_case_t c = {.name = "long rows",
                        .L = 2,
                        .H = 2,
                        .T = 4096,
                        .nex = 2,
                        .dtype = AM_DTYPE_F16,
                        .grads = 1,
                        .lengths = lengths,
                        .want = NO_ROWS,
                        .target = PAR_LAST,
                        .seed = 8};
  check(be, &c);
}

/* Several targets (docs/generation.md): the *_STEPS rows beside every other output, on
 * mixed masks (empty and one-token examples, holes), every dtype, fusion, discard and
 * --normalize, rows past 512 (the matrix form) and more steps than 8 (two step blocks). */
#define STEPS                                                                              \
  (AM_PASS_ATTENTION_LAST_STEPS | AM_PASS_ROLLOUT_STEPS | AM_PASS_GRAD_ROLLOUT_STEPS)
static const int step_lengths[] = {600, 9, 1};
static const par_case_t step_cases[] = {
    {.name = "steps f16 mixed, mean",
     .L = 3,
     .H = 3,
     .T = 37,
     .nex = 9,
     .dtype = AM_DTYPE_F16,
     .grads = 1,
     .want = NO_ROWS | STEPS,
     .normalize = AM_NORMALIZE_SUM,
     .steps = 5,
     .seed = 41},
    {.name = "steps bf16, rows, max, discard",
     .L = 2,
     .H = 2,
     .T = 20,
     .nex = 7,
     .dtype = AM_DTYPE_BF16,
     .grads = 1,
     .want = ALL | STEPS,
     .fusion = AM_FUSION_MAX,
     .discard = 0.2,
     .normalize = AM_NORMALIZE_MINMAX,
     .steps = 11,
     .seed = 42},
    {.name = "steps f32 alone, min, no gradients",
     .L = 2,
     .H = 2,
     .T = 26,
     .nex = 7,
     .dtype = AM_DTYPE_F32,
     .want = AM_PASS_ATTENTION_LAST_STEPS | AM_PASS_ROLLOUT_STEPS,
     .fusion = AM_FUSION_MIN,
     .normalize = AM_NORMALIZE_MAX,
     .steps = 3,
     .seed = 43},
    {.name = "steps f64, long rows",
     .L = 2,
     .H = 2,
     .T = 600,
     .nex = 3,
     .dtype = AM_DTYPE_F64,
     .grads = 1,
     .lengths = step_lengths,
     .want = STEPS | AM_PASS_GRAD_ROLLOUT,
     .steps = 9,
     .seed = 44},
};

PAR_TEST(parity, several_targets) {
  for (size_t k = 0; k < sizeof step_cases / sizeof *step_cases; k++)
    check(be, &step_cases[k]);
}

/* Several slabs: each slab's step targets and rows at their own offsets. */
PAR_TEST(parity, several_targets_in_small_slabs) {
  check_on(open_dut(be, PAR_SMALL_WORK, 0), &step_cases[1]);
}

PAR_TEST(parity, discard_and_fusions) {
  static const int lengths[] = {700, 301, 5};
  const par_case_t cases[] = {
      {.name = "discard 0.3, max",
       .L = 2,
       .H = 3,
       .T = 50,
       .nex = 14,
       .dtype = AM_DTYPE_F32,
       .grads = 1,
       .want = ALL,
       .fusion = AM_FUSION_MAX,
       .discard = 0.3,
       .seed = 9},
      {.name = "discard 0.1, min, long",
       .L = 2,
       .H = 2,
       .T = 700,
       .nex = 3,
       .dtype = AM_DTYPE_F32,
       .grads = 1,
       .lengths = lengths,
       .want = NO_ROWS,
       .fusion = AM_FUSION_MIN,
       .discard = 0.1,
       .seed = 10},
      {.name = "max, no discard",
       .L = 3,
       .H = 3,
       .T = 37,
       .nex = 14,
       .dtype = AM_DTYPE_BF16,
       .grads = 1,
       .want = NO_ROWS,
       .fusion = AM_FUSION_MAX,
       .seed = 11},
      /* bfloat16 maxima tie often: which tie goes decides the numbers */
      {.name = "discard 0.5 over ties",
       .L = 2,
       .H = 4,
       .T = 26,
       .nex = 14,
       .dtype = AM_DTYPE_BF16,
       .grads = 1,
       .want = ALL,
       .fusion = AM_FUSION_MAX,
       .discard = 0.5,
       .seed = 24},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
    check(be, &cases[k]);
}

PAR_TEST(parity, all_rows) {
  static const int same[] = {64, 64, 64, 20, 64, 20};
  const par_case_t cases[] = {
      {.name = "all rows, mixed",
       .L = 4,
       .H = 2,
       .T = 70,
       .nex = 14,
       .dtype = AM_DTYPE_F32,
       .grads = 1,
       .want = ALL,
       .seed = 12},
      {.name = "all rows, two lengths",
       .L = 3,
       .H = 3,
       .T = 64,
       .nex = 6,
       .dtype = AM_DTYPE_F16,
       .grads = 1,
       .lengths = same,
       .want = ALL,
       .seed = 13},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
    check(be, &cases[k]);
}

PAR_TEST(parity, patch_grid_distance) {
  static const int lengths[] = {17, 16, 20, 17, 1};
  const par_case_t c = {.name = "grid 4x4+1",
                        .L = 2,
                        .H = 2,
                        .T = 20,
                        .nex = 5,
                        .dtype = AM_DTYPE_F32,
                        .grads = 1,
                        .lengths = lengths,
                        .want = NO_ROWS,
                        .grid = {.rows = 4, .cols = 4, .prefix = 1},
                        .seed = 14};
  check(be, &c);
}

PAR_TEST(parity, small_slabs_and_memory_fallback) {
  const par_case_t c = {.name = "many slabs",
                        .L = 2,
                        .H = 3,
                        .T = 64,
                        .nex = 40,
                        .dtype = AM_DTYPE_F32,
                        .grads = 1,
                        .want = ALL,
                        .seed = 15};
  check_on(open_dut(be, PAR_SMALL_WORK, 0), &c);
  /* allocations that fail above a bound: the backend splits its work until they fit */
  check_on(open_dut(be, PAR_TIGHT_MEMORY, 1), &c);
}

PAR_TEST(parity, every_device_gives_the_same_bits) {
  /* all rows are left out: cuBLAS may pick another algorithm for another batch count */
  const par_case_t c = {.name = "all devices",
                        .L = 2,
                        .H = 3,
                        .T = 48,
                        .nex = 30,
                        .dtype = AM_DTYPE_F16,
                        .grads = 1,
                        .want = NO_ROWS,
                        .seed = 16};
  am_ctx_t *all = open_dut(be, PAR_ALL_DEVICES, 1);
  am_ctx_t *single = open_dut(be, PAR_PLAIN, 0);
  check_on(all, &c);
  par_data_t *d = par_make(&c);
  par_out_t *one = par_out_make(d), *many = par_out_make(d);
  am_fault_t f;
  int bad;
  cr_assert_eq(par_pass(single, d, one, &f, &bad), AM_STATUS_OK);
  cr_assert_eq(par_pass(all, d, many, &f, &bad), AM_STATUS_OK);
  size_t total = 0;
  for (int k = 0; k < d->c.nex * 7; k++)
    total += one->len[k] + 4;
  cr_expect(memcmp(one->buf, many->buf, (total + 4) * sizeof(float)) == 0,
            "%s: one device and %s differ", who, am_ctx_device_name(all));
  par_out_free(one);
  par_out_free(many);
  par_free(d);
}

/* ---- device pointers and the asynchronous form -------------------------------------- */

/* Points d's layer pointers into dev (a device copy of d's buffers), or back. */
static void rebase(par_data_t *d, unsigned char *from_a, unsigned char *from_g,
                   unsigned char *to_a, unsigned char *to_g) {
  for (int k = 0; k < d->c.nex * d->c.L; k++) {
    d->att_ptrs[k] = to_a + ((const unsigned char *)d->att_ptrs[k] - from_a);
    d->grad_ptrs[k] = to_g + ((const unsigned char *)d->grad_ptrs[k] - from_g);
  }
}

/* Runs d on the device of gpu from device copies of its buffers. */
static am_status pass_device(am_ctx_t *gpu, par_data_t *d, par_out_t *o, am_fault_t *f,
                             int *bad) {
  const size_t bytes =
      (size_t)d->c.L * d->c.nex * d->c.H * d->c.T * d->c.T * am_dtype_size(d->c.dtype) + 8;
  unsigned char *da = gpu->backend->device_copy(gpu->backend_state, d->att_buf, bytes);
  unsigned char *dg = gpu->backend->device_copy(gpu->backend_state, d->grad_buf, bytes);
  cr_assert(da && dg, "device copies");
  rebase(d, d->att_buf, d->grad_buf, da, dg);
  d->opt.device_pointers = 1;
  const am_status st = par_pass(gpu, d, o, f, bad);
  d->opt.device_pointers = 0;
  rebase(d, da, dg, d->att_buf, d->grad_buf);
  gpu->backend->device_free(gpu->backend_state, da);
  gpu->backend->device_free(gpu->backend_state, dg);
  return st;
}

PAR_TEST(parity, device_pointers) {
  am_ctx_t *gpu = open_dut(be, PAR_PLAIN, 0);
  if (!gpu->backend->device_copy)
    cr_skip_test("%s: no device memory (device_copy)", who);
  const par_case_t c = {.name = "device pointers",
                        .L = 2,
                        .H = 3,
                        .T = 30,
                        .nex = 14,
                        .dtype = AM_DTYPE_BF16,
                        .grads = 1,
                        .want = ALL | STEPS, /* step targets beside the position tables */
                        .seed = 19,
                        .steps = 4};
  par_data_t *d = par_make(&c);
  par_out_t *want = par_out_make(d), *got = par_out_make(d);
  am_fault_t fc, fg;
  int bc, bg;
  cr_assert_eq(par_pass(ref, d, want, &fc, &bc), AM_STATUS_OK);
  cr_assert_eq(pass_device(gpu, d, got, &fg, &bg), AM_STATUS_OK, "%s: %s", who,
               am_last_error(gpu));
  cr_expect_eq(par_out_check(d, got, who), 0);
  cr_expect_eq(par_compare(d, got, want, RTOL, RTOL_ROWS), 0);
  /* a fault is described from device memory as the reference describes it from the host */
  par_store(d, 0, 1, 3, 2, d->ex[3].idx[1], d->ex[3].idx[2], -0.5f);
  cr_assert_eq(par_pass(ref, d, want, &fc, &bc), AM_STATUS_BAD_INPUT);
  cr_expect_eq(pass_device(gpu, d, got, &fg, &bg), AM_STATUS_BAD_INPUT);
  cr_expect_eq(bg, bc);
  cr_expect(fg.kind == fc.kind && fg.value == fc.value && fg.row == fc.row &&
                fg.layer == fc.layer && fg.head == fc.head,
            "%s: kind %d/%d value %g/%g", who, fg.kind, fc.kind, fg.value, fc.value);
  par_out_free(want);
  par_out_free(got);
  par_free(d);
}

PAR_TEST(parity, submit_and_wait) {
  am_ctx_t *ctx = open_dut(be, PAR_PLAIN, 0);
  const am_backend_t *b = ctx->backend;
  if (!b->pass_submit || !b->pass_wait)
    cr_skip_test("%s: no asynchronous pass (pass_submit, pass_wait)", who);
  const par_case_t a = {.name = "async a",
                        .L = 2,
                        .H = 2,
                        .T = 36,
                        .nex = 14,
                        .dtype = AM_DTYPE_F16,
                        .grads = 1,
                        .want = ALL,
                        .seed = 20};
  const par_case_t c = {.name = "async b",
                        .L = 2,
                        .H = 2,
                        .T = 52,
                        .nex = 9,
                        .dtype = AM_DTYPE_F16,
                        .grads = 1,
                        .want = NO_ROWS,
                        .target = PAR_MEAN,
                        .seed = 21};
  par_data_t *da = par_make(&a), *db = par_make(&c);
  par_out_t *ga = par_out_make(da), *gb = par_out_make(db);
  par_out_t *ra = par_out_make(da), *rb = par_out_make(db);
  am_fault_t f;
  int bad;
  cr_assert_eq(b->pass_submit(ctx->backend_state, da->ex, a.nex, &da->opt, ga->out),
               AM_STATUS_OK);
  cr_assert_eq(b->pass_submit(ctx->backend_state, db->ex, c.nex, &db->opt, gb->out),
               AM_STATUS_OK);
  cr_assert_eq(par_pass(ref, da, ra, &f, &bad), AM_STATUS_OK);
  cr_assert_eq(par_pass(ref, db, rb, &f, &bad), AM_STATUS_OK);
  cr_expect_eq(b->pass_wait(ctx->backend_state, &f, &bad), AM_STATUS_OK);
  cr_expect_eq(b->pass_wait(ctx->backend_state, &f, &bad), AM_STATUS_OK);
  cr_expect_eq(par_compare(da, ga, ra, RTOL, RTOL_ROWS), 0);
  cr_expect_eq(par_compare(db, gb, rb, RTOL, RTOL_ROWS), 0);
  cr_expect_eq(par_out_check(da, ga, who), 0);
  cr_expect_eq(par_out_check(db, gb, who), 0);
  par_out_free(ga);
  par_out_free(gb);
  par_out_free(ra);
  par_out_free(rb);
  par_free(da);
  par_free(db);
}
