/* test_dataset.c — dataset discovery (docs/design.md §2): the same examples stored as one
 * stacked
 * safetensors file, as per-layer tensors, as a directory of .npy files named after their
 * roles, as .npy files named on the command line, and split into shards of different B
 * and T, all give the same per-example results; directory shards are read in name order. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attnmap.h"
#include "support/dataset_builder.h"

static char dir[128];
static am_ctx_t *ctx;

static void setup(void) {
  cr_assert_eq(dsb_tempdir(dir, sizeof dir, "dataset"), 0);
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
}

static void teardown(void) {
  am_ctx_destroy(ctx);
  dsb_rmtree(dir);
}

TestSuite(dataset, .init = setup, .fini = teardown);

static const int lengths[6] = {7, 3, 9, 9, 1, 5};

static dsb_spec_t spec(void) {
  return (dsb_spec_t){
      .L = 2, .H = 2, .B = 6, .T = 9, .lengths = lengths, .grads = 1, .seed = 3};
}

/* Analyses paths into run_name; returns the run folder's rollout, grad_rollout and
 * head.entropy bytes concatenated (malloc'd) and its length. */
static char *analyze(const char *const *paths, int n, const char *run_name, size_t *len) {
  char run[256];
  dsb_join(run, sizeof run, dir, run_name);
  am_dataset_t *ds = NULL;
  cr_assert_eq(am_dataset_open(ctx, paths, n, &ds), AM_STATUS_OK, "%s", am_last_error(ctx));
  am_plan_t plan;
  am_plan_init(&plan);
  cr_assert_eq(am_run_analyze(ctx, ds, &plan, run, NULL), AM_STATUS_OK, "%s",
               am_last_error(ctx));
  am_dataset_close(ds);
  char path[512];
  am_file_t *f = NULL;
  cr_assert_eq(
      am_file_open(ctx, dsb_join(path, sizeof path, run, "examples.safetensors"), &f),
      AM_STATUS_OK);
  const char *names[] = {"rollout", "grad_rollout", "head.entropy", "lengths", "mask"};
  size_t total = 0;
  for (int i = 0; i < 5; i++)
    total += am_file_find(f, names[i])->nbytes;
  char *out = malloc(total), *p = out;
  for (int i = 0; i < 5; i++) {
    const am_tensor_t *t = am_file_find(f, names[i]);
    memcpy(p, t->data, t->nbytes);
    p += t->nbytes;
  }
  am_file_close(f);
  *len = total;
  return out;
}

static void write_npy(const char *folder, const char *name, const am_tensor_t *t) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.npy", folder, name);
  cr_assert_eq(am_npy_write(ctx, path, t), AM_STATUS_OK, "%s", am_last_error(ctx));
}

Test(dataset, stacked_per_layer_and_npy_give_the_same_results) {
  char stacked[256], layered[256], npydir[256];
  dsb_spec_t s = spec();
  cr_assert_eq(dsb_make(&s, dsb_join(stacked, sizeof stacked, dir, "stacked.safetensors")),
               0);
  s.per_layer = 1;
  cr_assert_eq(dsb_make(&s, dsb_join(layered, sizeof layered, dir, "layered.safetensors")),
               0);
  /* the same tensors as .npy files named after their roles */
  dsb_join(npydir, sizeof npydir, dir, "npy");
  mkdir(npydir, 0777);
  s.per_layer = 0;
  dsb_t *d = dsb_build(&s);
  int n = dsb_tensors(d);
  for (int i = 0; i < n; i++)
    write_npy(npydir, d->list[i].name, &d->list[i].tensor);
  dsb_free(d);
  size_t la, lb, lc, ld;
  const char *p1[] = {stacked}, *p2[] = {layered}, *p3[] = {npydir};
  char *a = analyze(p1, 1, "r1", &la), *b = analyze(p2, 1, "r2", &lb);
  char *c = analyze(p3, 1, "r3", &lc);
  /* .npy files named one by one on the command line form one shard too */
  char att[512], grad[512], mask[512];
  const char *p4[] = {dsb_join(att, sizeof att, npydir, "attentions.npy"),
                      dsb_join(grad, sizeof grad, npydir, "attention_grads.npy"),
                      dsb_join(mask, sizeof mask, npydir, "attention_mask.npy")};
  char *e = analyze(p4, 3, "r4", &ld);
  cr_expect(la == lb && memcmp(a, b, la) == 0, "per-layer differs from stacked");
  cr_expect(la == lc && memcmp(a, c, la) == 0, "npy directory differs from safetensors");
  cr_expect(la == ld && memcmp(a, e, la) == 0, "npy files differ from safetensors");
  free(a), free(b), free(c), free(e);
}

Test(dataset, shards_of_different_b_and_t_in_name_order) {
  char shards[256], one[256], path[512];
  dsb_join(shards, sizeof shards, dir, "shards");
  mkdir(shards, 0777);
  /* examples 0..2 padded to T=9 in "b-…", examples 3..5 padded to T=12 in "a-…": name
   * order puts the second part first */
  dsb_spec_t s = spec();
  s.B = 3;
  s.first = 3;
  s.lengths = lengths + 3;
  s.T = 12;
  s.left_pad = 1;
  cr_assert_eq(dsb_make(&s, dsb_join(path, sizeof path, shards, "a-part.safetensors")), 0);
  s.first = 0;
  s.lengths = lengths;
  s.T = 9;
  s.left_pad = 0;
  cr_assert_eq(dsb_make(&s, dsb_join(path, sizeof path, shards, "b-part.safetensors")), 0);
  am_dataset_t *ds = NULL;
  const char *p[] = {shards};
  cr_assert_eq(am_dataset_open(ctx, p, 1, &ds), AM_STATUS_OK, "%s", am_last_error(ctx));
  am_dataset_info_t info;
  am_dataset_get_info(ds, &info);
  cr_expect_eq(info.examples, 6);
  cr_expect_eq(info.max_tokens, 12);
  cr_expect_eq(info.shards, 2);
  cr_expect(strstr(am_dataset_shard_path(ds, 0), "a-part") != NULL, "name order");
  am_dataset_close(ds);
  /* every example's valid values equal those of one file holding all six in order */
  dsb_spec_t all = spec();
  cr_assert_eq(dsb_make(&all, dsb_join(one, sizeof one, dir, "all.safetensors")), 0);
  const char *p1[] = {shards}, *p2[] = {one};
  size_t la, lb;
  free(analyze(p1, 1, "split", &la));
  free(analyze(p2, 1, "whole", &lb));
  float vs[6][12], vw[6][12];
  int ns[6], nw[6];
  const char *runs[2] = {"split", "whole"};
  for (int r = 0; r < 2; r++) {
    char run[256];
    am_file_t *f = NULL;
    dsb_join(run, sizeof run, dir, runs[r]);
    cr_assert_eq(
        am_file_open(ctx, dsb_join(path, sizeof path, run, "examples.safetensors"), &f),
        AM_STATUS_OK);
    const am_tensor_t *roll = am_file_find(f, "rollout"), *mask = am_file_find(f, "mask");
    int T = (int)roll->shape[1];
    for (int e = 0; e < 6; e++) {
      int k = 0;
      for (int q = 0; q < T; q++)
        if (((const unsigned char *)mask->data)[e * T + q])
          memcpy(r ? &vw[e][k++] : &vs[e][k++], (const char *)roll->data + 4 * (e * T + q),
                 4);
      (r ? nw : ns)[e] = k;
    }
    am_file_close(f);
  }
  for (int e = 0; e < 6; e++) { /* split row e holds example (e + 3) % 6 */
    int w = (e + 3) % 6;
    cr_expect_eq(ns[e], nw[w], "example %d length", w);
    cr_expect(memcmp(vs[e], vw[w], sizeof(float) * (size_t)nw[w]) == 0, "example %d values",
              w);
  }
}
