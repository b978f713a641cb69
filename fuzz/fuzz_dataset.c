/* fuzz_dataset.c — libFuzzer harness of dataset discovery and checking: the input is
 * split at FUZZ_SEP into 1-4 files, each named by its first byte from a table of shard
 * and role names, written into a scratch folder on tmpfs; the folder (or, when bit 7 of
 * the first name byte is set, the files one by one) is opened with am_dataset_open, and
 * a dataset that opens is read through am_dataset_check (every attention row) and, when
 * bit 6 is set, analysed into a run folder with am_run_analyze. Whatever happens, no
 * crash, no read out of bounds, a one-line message on failure, no run folder left
 * behind by a failed analysis (nor RUN.partial by bad input). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_support.h"

static const char *const names[16] = {
    "s0.safetensors",       "s1.safetensors",          "s2.safetensors",
    "attentions.npy",       "attention_mask.npy",      "attention_grads.npy",
    "attentions.0.npy",     "attentions.1.npy",        "saliency.ig.npy",
    "input_ids.npy",        "special_tokens_mask.npy", "labels.npy",
    "inputs_embeds.npy",    "inputs_embeds_grads.npy", "predictions.npy",
    "attention_grads.0.npy"};

static int exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static void analyze(am_ctx_t *ctx, am_dataset_t *ds, const char *dir) {
  char run[256], tmp[300], partial[300];
  snprintf(run, sizeof run, "%s/run", dir);
  snprintf(partial, sizeof partial, "%s/run.partial", dir);
  am_plan_t plan;
  am_plan_init(&plan);
  am_run_options_t opts;
  am_run_options_init(&opts);
  am_status st = am_run_analyze(ctx, ds, &plan, run, &opts);
  fuzz_check_message(ctx, st);
  snprintf(tmp, sizeof tmp, "%s/run.tmp-%ld", dir, (long)getpid());
  /* bad input removes RUN.partial; only an I/O failure may leave it (for --resume) */
  int bad = st == AM_STATUS_BAD_INPUT || st == AM_STATUS_INVALID_ARGUMENT;
  const char *left = exists(tmp)                                      ? tmp
                     : st != AM_STATUS_OK && exists(run)              ? run
                     : (bad || st == AM_STATUS_OK) && exists(partial) ? partial
                                                                      : NULL;
  if (left) {
    fprintf(stderr, "fuzz: status %d left %s behind\n", (int)st, left);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  am_ctx_t *ctx = fuzz_ctx();
  const char *top = fuzz_dir();
  char dir[256], files[FUZZ_MAX_PARTS][300];
  snprintf(dir, sizeof dir, "%s/ds", top);
  fuzz_clear(top);
  if (mkdir(dir, 0700) != 0)
    abort();
  fuzz_part_t parts[FUZZ_MAX_PARTS];
  int n = fuzz_split(data, size, parts, FUZZ_MAX_PARTS), flags = 0;
  const char *paths[FUZZ_MAX_PARTS];
  int npaths = 0;
  for (int i = 0; i < n; i++) {
    if (parts[i].size == 0)
      continue;
    int pick = parts[i].data[0];
    if (npaths == 0)
      flags = pick;
    snprintf(files[npaths], sizeof files[0], "%s/%s", dir, names[pick & 15]);
    if (fuzz_write(files[npaths], parts[i].data + 1, parts[i].size - 1) != 0)
      abort();
    paths[npaths] = files[npaths];
    npaths++;
  }
  if (npaths == 0)
    return 0;
  const char *whole[1] = {dir};
  int by_file = (flags & 0x80) != 0;
  am_dataset_t *ds = NULL;
  am_status st = am_dataset_open(ctx, by_file ? paths : whole, by_file ? npaths : 1, &ds);
  fuzz_check_message(ctx, st);
  if (st != AM_STATUS_OK) {
    if (ds)
      abort();
    return 0;
  }
  am_dataset_info_t info;
  am_dataset_get_info(ds, &info);
  for (int s = 0; s < am_dataset_shard_count(ds); s++)
    for (int f = 0; f < am_dataset_shard_file_count(ds, s); f++)
      (void)fuzz_touch_file(am_dataset_shard_file(ds, s, f));
  st = am_dataset_check(ctx, ds);
  fuzz_check_message(ctx, st);
  if (st == AM_STATUS_OK && (flags & 0x40))
    analyze(ctx, ds, top);
  am_dataset_close(ds);
  return 0;
}
