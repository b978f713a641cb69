/* test_memory.c — bounded memory (issue 8): am_shard_release_rows lets the pages of rows
 * already read leave the process's resident set (a pass over a dataset larger than memory
 * calls it after each chunk), and the data reads back unchanged afterwards; a small file
 * that claims many layers and heads does not make the CLI reserve gigabytes: it must run
 * within 2 GB of address space (the CUDA libraries a CUDA build links map about 0.9 GB
 * before main; the 88-byte file's 60,244-layer summary.json of 48 MB needs ~0.35 GB). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dataset/dataset.h"
#include "pipeline/chunk.h"
#include "pipeline/layout.h"
#include "support/dataset_builder.h"
#include "support/run_limited.h"

static char work[128];
static void setup(void) { cr_assert_eq(dsb_tempdir(work, sizeof work, "memory"), 0); }
static void teardown(void) { dsb_rmtree(work); }
TestSuite(memory, .init = setup, .fini = teardown, .timeout = 60);

/* Resident kilobytes of this process (VmRSS), or -1. */
static long rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = atol(line + 6);
  if (f)
    fclose(f);
  return kb;
}

/* Sums every attention and gradient byte of the dataset (touching every page). */
static uint64_t touch_all(const am_dataset_t *ds) {
  uint64_t sum = 0;
  for (int s = 0; s < ds->nshards; s++) {
    const am_shard_t *sh = &ds->shards[s];
    size_t per = (size_t)ds->H * (size_t)sh->T * (size_t)sh->T * 4; /* F32 */
    for (int l = 0; l < ds->L; l++)
      for (int64_t b = 0; b < sh->B; b++) {
        const unsigned char *a = am_layers_example(&sh->att, sh, ds->H, l, b);
        const unsigned char *g = am_layers_example(&sh->grad, sh, ds->H, l, b);
        for (size_t k = 0; k < per; k++)
          sum += a[k] + (g ? g[k] : 0);
      }
  }
  return sum;
}

Test(memory, released_rows_leave_the_resident_set_and_read_back_unchanged) {
  /* 2 x 64 x 4 x 64 x 64 F32 = 8 MiB of attentions, as much again of gradients */
  dsb_spec_t spec = {.L = 2, .H = 4, .B = 64, .T = 64, .grads = 1, .seed = 9};
  char path[256];
  cr_assert_eq(dsb_make(&spec, dsb_join(path, sizeof path, work, "big.safetensors")), 0);
  am_ctx_t *ctx = NULL;
  am_dataset_t *ds = NULL;
  cr_assert_eq(am_ctx_create(NULL, &ctx, NULL, 0), AM_STATUS_OK);
  const char *paths[] = {path};
  cr_assert_eq(am_dataset_open(ctx, paths, 1, &ds), AM_STATUS_OK, "%s", am_last_error(ctx));
  uint64_t before = touch_all(ds);
  long touched = rss_kb();
  for (int64_t row = 0; row < 64; row += 16) /* in chunks, as a pass releases them */
    am_shard_release_rows(ds, 0, row, 16);
  long released = rss_kb();
  cr_expect(touched > 0 && touched - released > 12 * 1024,
            "VmRSS %ld kB after reading 16 MiB, %ld kB after releasing it", touched,
            released);
  cr_expect_eq(touch_all(ds), before, "the data changed after release");
  /* out-of-range requests do nothing */
  am_shard_release_rows(ds, 0, 60, 10);
  am_shard_release_rows(ds, 0, -1, 2);
  am_shard_release_rows(ds, 0, 0, 0);
  cr_expect_eq(touch_all(ds), before);
  am_dataset_close(ds);
  am_ctx_destroy(ctx);
}

Test(memory, many_heads_in_a_small_file_fit_in_two_gigabytes) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  cr_skip_test("sanitizer build: its shadow memory needs terabytes of address space");
#endif
  char b0[256], lh[256], ok[256], run[256];
  /* 88 bytes: [60244,0,1,4,4] F32, no examples; 256 KB: 256 layers x 256 heads, T = 1 */
  am_named_tensor_t t = {"attentions", {AM_DTYPE_F32, 5, {60244, 0, 1, 4, 4}, NULL, 0}};
  cr_assert_eq(
      dsb_write_list(dsb_join(b0, sizeof b0, work, "b0.safetensors"), &t, 1, NULL, 0), 0);
  static float ones[256 * 256];
  for (int i = 0; i < 256 * 256; i++)
    ones[i] = 1.0f;
  t.tensor = (am_tensor_t){AM_DTYPE_F32, 5, {256, 1, 256, 1, 1}, ones, sizeof ones};
  cr_assert_eq(
      dsb_write_list(dsb_join(lh, sizeof lh, work, "lh.safetensors"), &t, 1, NULL, 0), 0);
  dsb_spec_t spec = {.L = 2, .H = 2, .B = 8, .T = 16, .grads = 1, .seed = 4};
  cr_assert_eq(dsb_make(&spec, dsb_join(ok, sizeof ok, work, "ok.safetensors")), 0);
  const rlim_t limit = (rlim_t)2 << 30;
  const char *inputs[] = {ok, b0, lh};
  for (int i = 0; i < 3; i++) {
    const char *inspect[] = {ATTNMAP_CLI, "inspect", inputs[i], NULL};
    char err[1024];
    int status = run_limited(inspect, RLIMIT_AS, limit, 0, err, sizeof err);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "inspect %s does not fit in 2 GB of address space: %s", inputs[i], err);
    dsb_join(run, sizeof run, work, "run");
    dsb_rmtree(run);
    const char *analyze[] = {ATTNMAP_CLI, "analyze", inputs[i], "-o", run, "--quiet", NULL};
    status = run_limited(analyze, RLIMIT_AS, limit, 0, err, sizeof err);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "analyze %s does not fit in 2 GB of address space: %s", inputs[i], err);
  }
}

/* Examples per chunk without --chunk: a 256 MiB budget of input bytes, but never fewer
 * examples than threads (the CPU backend runs a chunk's examples in parallel: one 8.6 GB
 * example of 32 x 32 x 2048 per chunk left every core but one idle), nor more than the
 * largest shard holds. The shapes are claimed by the dataset struct; no file is read. */
Test(memory, a_chunk_has_an_example_per_thread_however_long_the_examples) {
  am_shard_t shard = {.B = 10};
  am_dataset_t ds = {.shards = &shard, .nshards = 1, .L = 32, .H = 32, .Tmax = 2048};
  ds.dtype = AM_DTYPE_BF16;
  am_layout_t lay = {0};
  struct {
    int threads, B, T, want;
  } cases[] = {{4, 10, 2048, 4}, {1, 10, 2048, 1}, {4, 3, 2048, 3}, {2, 10, 16, 10}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    am_ctx_options_t o = {.backend = "cpu", .threads = cases[k].threads};
    am_ctx_t *ctx = NULL;
    char err[256];
    cr_assert_eq(am_ctx_create(&o, &ctx, err, sizeof err), AM_STATUS_OK, "%s", err);
    shard.B = cases[k].B;
    ds.Tmax = cases[k].T;
    cr_expect_eq(am_run_chunk_examples(ctx, &ds, &lay), cases[k].want,
                 "%d threads, %d examples of T = %d: %d per chunk, want %d",
                 cases[k].threads, cases[k].B, cases[k].T,
                 am_run_chunk_examples(ctx, &ds, &lay), cases[k].want);
    am_ctx_destroy(ctx);
  }
}
