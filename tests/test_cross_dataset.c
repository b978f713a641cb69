/* test_cross_dataset.c — an encoder-decoder dataset's cross tensors (host/dataset/cross.c,
 * docs/generation.md "Encoder-decoder models"): found and bound per example, and every bad
 * shape, dtype, mask value, token list or shard mismatch refused with one line naming the
 * file, the tensor and the problem. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attnmap.h"
#include "cpu/cross.h"
#include "dataset/dataset.h"
#include "io/file.h"
#include "support/cross_dataset.h"
#include "support/dataset_builder.h"
#include "support/run_cli.h"

static char dir[128];
static am_ctx_t *ctx;

static void setup(void) {
  cr_assert_eq(dsb_tempdir(dir, sizeof dir, "cross"), 0);
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
}

static void teardown(void) {
  am_ctx_destroy(ctx);
  dsb_rmtree(dir);
}

TestSuite(cross_dataset, .init = setup, .fini = teardown);

enum { L = XDS_L, H = XDS_H, B = XDS_B, T = XDS_T, TE = XDS_TE };

static void xds_build(xds_t *x) { cr_assert_eq(xds_make(x), 0); }

static const char *TOKENS_META[2] = {"attnmap.source_tokens",
                                     "[[\"a\",\"b\",\"c\",\"d\"],[\"x\",\"y\",\"z\"]]"};

static const char *write(xds_t *x, const char *name, const char *const *meta, int nmeta) {
  static char path[256];
  dsb_join(path, sizeof path, dir, name);
  cr_assert_eq(dsb_write_list(path, x->ds->list, x->n, meta, nmeta), 0);
  return path;
}

/* Opens path expecting failure; the message must hold each of the needles. */
static void expect_refused(const char *path, const char *n1, const char *n2) {
  am_dataset_t *ds = NULL;
  const char *p[1] = {path};
  cr_assert_eq(am_dataset_open(ctx, p, 1, &ds), AM_STATUS_BAD_INPUT, "opened %s", path);
  const char *msg = am_last_error(ctx);
  cr_expect(strstr(msg, n1) && (!n2 || strstr(msg, n2)), "message: %s", msg);
  cr_expect(!strchr(msg, '\n'), "one line: %s", msg);
}

Test(cross_dataset, found_and_bound) {
  xds_t x;
  xds_build(&x);
  const char *path = write(&x, "ok.safetensors", TOKENS_META, 1);
  am_dataset_t *ds = NULL;
  const char *p[1] = {path};
  cr_assert_eq(am_dataset_open(ctx, p, 1, &ds), AM_STATUS_OK, "%s", am_last_error(ctx));
  cr_expect(ds->cross && ds->cross_grads && ds->cross_dtype == AM_DTYPE_F32);
  cr_expect_eq(ds->Tenc_max, TE);
  const am_shard_t *sh = &ds->shards[0];
  int32_t idx[TE];
  cr_expect_eq(am_shard_source_positions(sh, 1, idx), 3);
  cr_expect(idx[0] == 1 && idx[2] == 3);
  cr_expect_str_eq(am_shard_source_token(sh, 1, 2, 1, 3), "y");
  size_t blk = sizeof(float) * H * T * TE; /* one example's [H,T,TE] */
  cr_expect(!memcmp(am_cross_layer_example(&sh->cross.att, sh, H, 1, 1),
                    (const char *)x.cross[1] + blk, blk));
  cr_expect(!memcmp(am_cross_layer_example(&sh->cross.grad, sh, H, 0, 1),
                    (const char *)x.cgrad[0] + blk, blk));
  /* a fault in words: file, tensor, example, padded positions */
  am_cross_fault_t f = {
      .f = {.kind = AM_FAULT_ATT_ROW_SUM, .layer = 1, .head = 0, .row = 2, .value = 0.9},
      .input = AM_CROSS_IN_CROSS_ATTENTIONS,
      .key = -1,
      .step = 1}; /* a step only counts in a per-step gradient */
  int32_t dec[3] = {0, 1, 2}, enc[3] = {1, 2, 3};
  cr_expect_eq(am_cross_report_fault(ctx, sh, L, 1, dec, 3, enc, 3, &f),
               AM_STATUS_BAD_INPUT);
  const char *msg = am_last_error(ctx);
  cr_expect(strstr(msg, "ok.safetensors: tensor cross_attentions.1: example 1, layer 1, "
                        "head 0, decoder position 2") &&
                strstr(msg, "valid source tokens"),
            "%s", msg);
  f = (am_cross_fault_t){.f = {.kind = AM_FAULT_GRAD_NOT_FINITE, .layer = 0, .row = 1},
                         .input = AM_CROSS_IN_CROSS_ATTENTION_GRADS,
                         .key = 2,
                         .step = -1};
  am_cross_report_fault(ctx, sh, L, 1, dec, 3, enc, 3, &f);
  cr_expect(strstr(am_last_error(ctx), "cross_attention_grads.0") &&
                strstr(am_last_error(ctx), "source position 3"),
            "%s", am_last_error(ctx));
  /* per-step gradients: bound, and a fault in one names the tensor and the step */
  cr_expect(ds->cross_step_grads && sh->cross.S_in == 2);
  size_t sblk = sizeof(float) * 2 * H * T * TE;
  cr_expect(!memcmp(am_cross_step_grad_example(sh, H, 1, 1),
                    (const char *)x.sgrad[1] + sblk, sblk));
  f.step = 1;
  am_cross_report_fault(ctx, sh, L, 1, dec, 3, enc, 3, &f);
  cr_expect(
      strstr(am_last_error(ctx), "tensor step_cross_attention_grads.0: example 1, step 1,"),
      "%s", am_last_error(ctx));
  f.input = AM_CROSS_IN_ATTENTION_GRADS;
  am_cross_report_fault(ctx, sh, L, 1, dec, 3, enc, 3, &f);
  cr_expect(strstr(am_last_error(ctx), "tensor step_attention_grads.0: example 1, step 1,"),
            "%s", am_last_error(ctx));
  am_dataset_close(ds);
  dsb_free(x.ds);
}

Test(cross_dataset, without_cross_nothing_changes) {
  static const int lengths[B] = {5, 3};
  dsb_spec_t spec = {.L = L, .H = H, .B = B, .T = T, .lengths = lengths, .per_layer = 1};
  char path[256];
  dsb_join(path, sizeof path, dir, "plain.safetensors");
  cr_assert_eq(dsb_make(&spec, path), 0);
  am_dataset_t *ds = NULL;
  const char *p[1] = {path};
  cr_assert_eq(am_dataset_open(ctx, p, 1, &ds), AM_STATUS_OK);
  cr_expect(!ds->cross && !ds->cross_grads && ds->Tenc_max == 0);
  am_dataset_close(ds);
}

/* Each bad input: one edit of the good dataset, the words the message must hold. */
Test(cross_dataset, refused) {
  xds_t x;
  xds_build(&x);
  int n0 = x.n;
  am_named_tensor_t keep[64];
  memcpy(keep, x.ds->list, sizeof keep);
  int c1 = dsb_find(x.ds, x.n, "cross_attentions.1");
  int g0 = dsb_find(x.ds, x.n, "cross_attention_grads.0");
  int em = dsb_find(x.ds, x.n, "encoder_attention_mask");

  x.ds->list[c1].tensor.shape[1] = 1; /* H = 1 */
  x.ds->list[c1].tensor.nbytes /= 2;
  expect_refused(write(&x, "h.safetensors", NULL, 0), "cross_attentions.1",
                 "[B,H,Tdec,Tenc]");
  memcpy(x.ds->list, keep, sizeof keep);

  int s1 = dsb_find(x.ds, x.n, "step_cross_attention_grads.1");
  x.ds->list[s1].tensor.shape[1] = 1; /* S differs between layers */
  x.ds->list[s1].tensor.nbytes /= 2;
  expect_refused(write(&x, "steps.safetensors", NULL, 0), "step_cross_attention_grads.1",
                 "[B,S,H,Tdec,Tenc]");
  memcpy(x.ds->list, keep, sizeof keep);

  x.ds->list[g0].tensor.dtype = AM_DTYPE_I32;
  expect_refused(write(&x, "dt.safetensors", NULL, 0), "cross_attention_grads.0", "dtype");
  memcpy(x.ds->list, keep, sizeof keep);

  x.n = dsb_remove(x.ds, x.n, c1); /* one layer missing */
  expect_refused(write(&x, "layers.safetensors", NULL, 0), "cross_attentions.N",
                 "1 layers");
  memcpy(x.ds->list, keep, sizeof keep);
  x.n = n0;

  x.emask[3] = 2;
  expect_refused(write(&x, "mask.safetensors", NULL, 0), "encoder_attention_mask",
                 "not 0 or 1");
  x.emask[3] = 1;

  x.ds->list[em].tensor.shape[1] = TE - 1;
  x.ds->list[em].tensor.nbytes = sizeof(int64_t) * B * (TE - 1);
  expect_refused(write(&x, "mshape.safetensors", NULL, 0), "encoder_attention_mask",
                 "[B,Tenc]");
  memcpy(x.ds->list, keep, sizeof keep);

  const char *bad_tokens[2] = {"attnmap.source_tokens", "[[\"a\"],[\"x\",\"y\",\"z\"]]"};
  expect_refused(write(&x, "tok.safetensors", bad_tokens, 1), "attnmap.source_tokens",
                 "entry 0");

  for (int k = n0 - 1; k >= 0; k--) /* a source mask without any cross-attention */
    if (strstr(x.ds->list[k].name, "cross_"))
      x.n = dsb_remove(x.ds, x.n, k);
  expect_refused(write(&x, "alone.safetensors", NULL, 0), "encoder_attention_mask",
                 "without cross_attentions");
  memcpy(x.ds->list, keep, sizeof keep);
  x.n = n0;

  /* two shards: the second without the cross-attention gradients */
  char sub[256], a[256], b[256];
  dsb_join(sub, sizeof sub, dir, "shards");
  cr_assert_eq(mkdir(sub, 0700), 0);
  cr_assert_eq(
      dsb_write_list(dsb_join(a, sizeof a, sub, "a.safetensors"), x.ds->list, x.n, NULL, 0),
      0);
  for (int k = n0 - 1; k >= 0; k--)
    if (strncmp(x.ds->list[k].name, "cross_attention_grads.", 22) == 0)
      x.n = dsb_remove(x.ds, x.n, k);
  cr_assert_eq(
      dsb_write_list(dsb_join(b, sizeof b, sub, "b.safetensors"), x.ds->list, x.n, NULL, 0),
      0);
  expect_refused(sub, "b.safetensors: tensor cross_attention_grads.N: missing here", NULL);
  dsb_free(x.ds);
}

/* attnmap analyze with one target (cls): source_mask, source_lengths, source_ids and
 * cross.<name>.steps [N,1,Tenc] equal to the CPU op on the same example; a bad
 * cross-attention value stops the run with one line. */
Test(cross_dataset, analyze_single_target) {
  xds_t x;
  xds_build(&x);
  const char *path = write(&x, "run-in.safetensors", TOKENS_META, 1);
  char run[256];
  dsb_join(run, sizeof run, dir, "run");
  cli_result_t r;
  cr_assert_eq(cli_run(&r, NULL, "analyze", path, "-o", run, "--quiet", NULL), 0);
  cr_assert_eq(r.exit_code, 0, "%s", r.err);
  cli_result_free(&r);
  char ex[300];
  am_file_t *f = NULL;
  cr_assert_eq(am_file_open(ctx, dsb_join(ex, sizeof ex, run, "examples.safetensors"), &f),
               AM_STATUS_OK);
  const am_tensor_t *mask = am_file_find(f, "source_mask"),
                    *ids = am_file_find(f, "source_ids");
  const am_tensor_t *roll = am_file_find(f, "cross.rollout.steps");
  const am_tensor_t *gr = am_file_find(f, "cross.grad_rollout.steps");
  cr_assert(mask && ids && roll && gr && am_file_find(f, "source_lengths") &&
            am_file_find(f, "cross.attention_last.steps") &&
            am_file_find(f, "cross.grad_x_attention.steps"));
  cr_expect(roll->ndim == 3 && roll->shape[0] == B && roll->shape[1] == 1 &&
            roll->shape[2] == TE);
  /* example 1: source tokens 1..3, decoder target cls (its first valid token) */
  am_dataset_t *ds = NULL;
  const char *p[1] = {path};
  cr_assert_eq(am_dataset_open(ctx, p, 1, &ds), AM_STATUS_OK);
  const am_shard_t *sh = &ds->shards[0];
  int32_t dec[T], enc[TE];
  int n = am_shard_valid_positions(sh, 1, dec), m = am_shard_source_positions(sh, 1, enc);
  const void *att[L], *grad[L], *cr[L], *cg[L];
  for (int l = 0; l < L; l++) {
    att[l] = am_layers_example(&sh->att, sh, H, l, 1);
    grad[l] = am_layers_example(&sh->grad, sh, H, l, 1);
    cr[l] = am_cross_layer_example(&sh->cross.att, sh, H, l, 1);
    cg[l] = am_cross_layer_example(&sh->cross.grad, sh, H, l, 1);
  }
  int32_t step = 0;
  am_cross_example_t cx = {.dec = {.L = L,
                                   .H = H,
                                   .T = T,
                                   .n = n,
                                   .dtype = AM_DTYPE_F32,
                                   .att = att,
                                   .grad = grad,
                                   .idx = dec,
                                   .nsteps = 1,
                                   .steps = &step},
                           .Tenc = TE,
                           .n_enc = m,
                           .enc_idx = enc,
                           .dtype = AM_DTYPE_F32,
                           .cross = cr,
                           .cross_grad = cg};
  float want_r[TE], want_g[TE];
  am_cross_output_t o = {.rollout = want_r, .grad_rollout = want_g};
  am_pass_options_t opt = {.fusion = AM_FUSION_MEAN};
  am_cross_fault_t fault;
  cr_assert_eq(
      am_cpu_cross(&cx, AM_CROSS_ROLLOUT | AM_CROSS_GRAD_ROLLOUT, &opt, &o, &fault),
      AM_STATUS_OK);
  float got_r[TE], got_g[TE];
  uint8_t got_m[TE];
  memcpy(got_r, (const char *)roll->data + sizeof got_r, sizeof got_r);
  memcpy(got_g, (const char *)gr->data + sizeof got_g, sizeof got_g);
  memcpy(got_m, (const char *)mask->data + TE, TE);
  for (int j = 0, k = 0; j < TE; j++) {
    int valid = k < m && enc[k] == j;
    cr_expect_eq(got_m[j], valid);
    cr_expect_eq(got_r[j], valid ? want_r[k] : 0.0f, "rollout at %d", j);
    cr_expect_eq(got_g[j], valid ? want_g[k] : 0.0f, "grad_rollout at %d", j);
    k += valid;
  }
  am_dataset_close(ds);
  am_file_close(f);
  /* a NaN in a valid cross-attention cell: one line naming file, tensor and place */
  x.cross[1][((size_t)(1 * H + 1) * T + 0) * TE + 2] = NAN;
  path = write(&x, "run-bad.safetensors", NULL, 0);
  dsb_join(run, sizeof run, dir, "run-bad");
  cr_assert_eq(cli_run(&r, NULL, "analyze", path, "-o", run, "--quiet", NULL), 0);
  cr_expect_eq(r.exit_code, 2);
  cr_expect(strstr(r.err,
                   "run-bad.safetensors: tensor cross_attentions.1: example 1, layer "
                   "1, head 1, decoder position 0, source position 2: attention "
                   "weight is not finite") &&
                cli_count_lines(r.err) == 1,
            "%s", r.err);
  cr_expect(!dsb_exists(run));
  cli_result_free(&r);
  dsb_free(x.ds);
}
