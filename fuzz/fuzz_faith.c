/* fuzz_faith.c — libFuzzer harness of the PROBS.safetensors reader behind `attnmap
 * faithfulness` (host/pipeline/faith_probs.c): the input is a whole PROBS file image,
 * parsed from memory and checked against a small run folder made once per process (2
 * examples of 3 tokens, maps attention_last and rollout), without the metadata's record of
 * the run's examples file (mutations would never match its CRC-32C). An accepted file must
 * give a summary section (faith_json.c, faith_rank.c) without a crash or an out-of-bounds
 * read; a refused one must leave a one-line message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_support.h"
#include "io/file.h"
#include "pipeline/faith.h"
#include "pipeline/run_folder.h"

/* The run: uniform attention over 3 tokens, every token valid. */
static am_run_t *make_run(am_ctx_t *ctx) {
  char dir[300], ds_path[400], run_dir[400];
  snprintf(dir, sizeof dir, "%s/faith", fuzz_dir());
  mkdir(dir, 0700);
  snprintf(ds_path, sizeof ds_path, "%s/ds.safetensors", dir);
  snprintf(run_dir, sizeof run_dir, "%s/run", dir);
  static float att[2 * 3 * 3];
  static int64_t mask[2 * 3];
  for (int i = 0; i < 18; i++)
    att[i] = 1.0f / 3;
  for (int i = 0; i < 6; i++)
    mask[i] = 1;
  am_named_tensor_t t[2] = {
      {"attentions",
       {.dtype = AM_DTYPE_F32,
        .ndim = 5,
        .shape = {1, 2, 1, 3, 3},
        .data = att,
        .nbytes = sizeof att}},
      {"attention_mask",
       {.dtype = AM_DTYPE_I64,
        .ndim = 2,
        .shape = {2, 3},
        .data = mask,
        .nbytes = sizeof mask}},
  };
  am_dataset_t *ds = NULL;
  am_run_t *run = NULL;
  am_plan_t plan;
  am_plan_init(&plan);
  am_run_options_t opts;
  am_run_options_init(&opts);
  opts.force = 1;
  const char *in = ds_path;
  if (am_safetensors_write(ctx, ds_path, t, 2, NULL, 0) != AM_STATUS_OK ||
      am_dataset_open(ctx, &in, 1, &ds) != AM_STATUS_OK ||
      am_run_analyze(ctx, ds, &plan, run_dir, &opts) != AM_STATUS_OK ||
      am_run_open(ctx, run_dir, &run) != AM_STATUS_OK) {
    fprintf(stderr, "fuzz_faith: cannot make the run: %s\n", am_last_error(ctx));
    abort();
  }
  am_dataset_close(ds);
  return run;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  am_ctx_t *ctx = fuzz_ctx();
  static am_run_t *run;
  if (!run)
    run = make_run(ctx);
  am_file_t *pf = NULL;
  am_faith_t f;
  memset(&f, 0, sizeof f);
  json_t *prov = NULL;
  am_status st = am_safetensors_parse(ctx, "probs.safetensors", data, size, &pf);
  if (st == AM_STATUS_OK)
    st = am_faith_probs_check(ctx, pf, run, 0, &f, &prov);
  if (st == AM_STATUS_OK) {
    json_t *sec = am_faith_section(&f, run->summary);
    char *text = sec ? json_dumps(sec, JSON_COMPACT) : NULL;
    if (!text)
      abort();
    free(text);
    json_decref(sec);
  }
  fuzz_check_message(ctx, st);
  json_decref(prov);
  am_faith_free(&f);
  am_file_close(pf);
  return 0;
}
