/* test_backend_analyze.c — `attnmap analyze` end to end on every backend under test
 * (support/backends.c) against the reference: the bundled real-model dataset
 * (examples/data/minilm-sentiment, every map, --all-rows, with gradients and saliency)
 * analysed by the program with the backend's --backend spec (cuda:all: every device), and
 * by the library in this process on the reference context (the CPU's plain loops) with
 * the plan the program makes (the exporter's target, --all-rows); the two run folders are
 * compared within the parity suite's tolerances (support/compare_runs.c). The CUDA backend
 * runs on a GPU, or on two emulated devices in the CUDA emulator's build (tests/cuda_emu,
 * part of scripts/test.sh); a backend that cannot run here reports a skip. The same for a
 * long-context dataset (queries/keys/values/attention_output_grads: GQA, causal sliding
 * window, soft-cap, F16, padding on either side; tests/support/long_dataset.c). And
 * attention flow, which a device backend may leave to the CPU reference beside it
 * (ctx->reference; the CUDA backend does until its solver passes a GPU run, docs/cuda.md):
 * the run must equal the reference's all the same. And several targets (--target 1:-1), and
 * the encoder-decoder maps, which a device backend leaves to the CPU reference too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "attnmap.h"
#include "support/backends.h"
#include "support/compare_runs.h"
#include "support/cross_dataset.h"
#include "support/dataset_builder.h"
#include "support/long_dataset.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#define DATA ATTNMAP_SOURCE_DIR "/examples/data/minilm-sentiment"

static void analyze_cli(const char *data, const char *backend, const char *out,
                        const char *opt, const char *value) {
  cli_result_t r;
  cli_options_t o = {.timeout_s = 600};
  cr_assert_eq(cli_run(&r, &o, "analyze", data, "-o", out, "--backend", backend, "--quiet",
                       "--threads", "2", opt, value, NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "analyze --backend %s: %s", backend, r.err);
  cli_result_free(&r);
}

/* What `attnmap analyze data -o out [--all-rows] [--methods ...] [--target target]` does,
 * on the reference context (methods 0: the default; target NULL: the recorded one). */
static void analyze_reference_target(const char *data, const char *out, int all_rows,
                                     unsigned methods, const char *target) {
  am_ctx_t *ref = par_reference();
  cr_assert_not_null(ref);
  am_settings_t set;
  am_settings_init(&set);
  set.plan.target_recorded = 1; /* as host/cli/cmd_analyze.c */
  if (target)
    cr_assert_eq(am_settings_set(&set, "target", target, NULL, 0), AM_STATUS_OK);
  set.plan.all_rows = all_rows;
  if (methods)
    set.plan.methods = methods;
  const char *paths[] = {data};
  am_dataset_t *ds = NULL;
  am_status st = am_dataset_open(ref, paths, 1, &ds);
  if (st == AM_STATUS_OK)
    st = am_run_analyze(ref, ds, &set.plan, out, &set.run);
  cr_assert_eq(st, AM_STATUS_OK, "reference: %s", am_last_error(ref));
  am_dataset_close(ds);
  am_ctx_destroy(ref);
}

static void analyze_reference(const char *data, const char *out, int all_rows,
                              unsigned methods) {
  analyze_reference_target(data, out, all_rows, methods, NULL);
}

/* Several targets (docs/generation.md): the step rows, their mean and agreement.steps,
 * whether the backend computes the step rows or the pipeline runs one pass per step. */
PAR_TEST(backend_analyze, several_targets_against_the_reference) {
  setenv("AM_EMU_DEVICES", "2", 0);
  am_ctx_destroy(par_backend_open(be, PAR_PLAIN));
  if (!be->cli_spec)
    cr_skip_test("%s: no --backend spec", be->name);
  scratch_setup("backend-analyze-steps");
  static const int lengths[5] = {16, 9, 13, 4, 11};
  dsb_spec_t spec = {.L = 2,
                     .H = 3,
                     .B = 5,
                     .T = 16,
                     .lengths = lengths,
                     .left_pad = 1,
                     .grads = 1,
                     .saliency = 1,
                     .special = 1,
                     .seed = 17};
  const char *data = tmp_path("steps.safetensors");
  char path[512];
  snprintf(path, sizeof path, "%s", data);
  cr_assert_eq(dsb_make(&spec, path), 0);
  analyze_reference_target(path, tmp_path("ref"), 0, 0, "1:-1");
  analyze_cli(path, be->cli_spec, tmp_path("got"), "--target", "1:-1");
  cr_expect_eq(cmp_runs(ctx, tmp_path("got"), tmp_path("ref")), 0,
               "%s: the several-targets run of --backend %s differs from the reference's",
               be->name, be->cli_spec);
  scratch_teardown();
}

/* The encoder-decoder maps (docs/generation.md): a device backend leaves them to the CPU
 * reference beside it (ctx->reference, docs/cuda.md); the run must equal the reference's,
 * cross.<map>.steps and the source tensors included. */
PAR_TEST(backend_analyze, cross_against_the_reference) {
  setenv("AM_EMU_DEVICES", "2", 0);
  am_ctx_destroy(par_backend_open(be, PAR_PLAIN));
  if (!be->cli_spec)
    cr_skip_test("%s: no --backend spec", be->name);
  scratch_setup("backend-analyze-cross");
  xds_t *x = calloc(1, sizeof *x);
  cr_assert(x && xds_make(x) == 0);
  char path[512];
  snprintf(path, sizeof path, "%s", tmp_path("cross.safetensors"));
  cr_assert_eq(dsb_write_list(path, x->ds->list, x->n, NULL, 0), 0);
  analyze_reference_target(path, tmp_path("ref"), 0, 0, "-2:");
  analyze_cli(path, be->cli_spec, tmp_path("got"), "--target", "-2:");
  cr_expect_eq(cmp_runs(ctx, tmp_path("got"), tmp_path("ref")), 0,
               "%s: the encoder-decoder run of --backend %s differs from the reference's",
               be->name, be->cli_spec);
  dsb_free(x->ds);
  free(x);
  scratch_teardown();
}

PAR_TEST(backend_analyze, against_the_reference) {
  setenv("AM_EMU_DEVICES", "2", 0); /* the emulator's devices; a real GPU ignores it */
  am_ctx_destroy(par_backend_open(be, PAR_PLAIN)); /* skips where it cannot run */
  if (!be->cli_spec)
    cr_skip_test("%s: no --backend spec", be->name);
  scratch_setup("backend-analyze");
  analyze_reference(DATA, tmp_path("ref"), 1, 0);
  analyze_cli(DATA, be->cli_spec, tmp_path("got"), "--all-rows", NULL);
  cr_expect_eq(cmp_runs(ctx, tmp_path("got"), tmp_path("ref")), 0,
               "%s: the run of --backend %s differs from the reference's (stderr says "
               "where)",
               be->name, be->cli_spec);
  dsb_rmtree(tmp_path("ref"));
  dsb_rmtree(tmp_path("got"));
  scratch_teardown();
}

PAR_TEST(backend_analyze, long_form_against_the_reference) {
  setenv("AM_EMU_DEVICES", "2", 0);
  am_ctx_destroy(par_backend_open(be, PAR_PLAIN));
  if (!be->cli_spec)
    cr_skip_test("%s: no --backend spec", be->name);
  scratch_setup("backend-analyze-long");
  const lc_case_t c = {.L = 2,
                       .H = 4,
                       .Hkv = 2,
                       .T = 90,
                       .d = 16,
                       .attn = {0.25, 1, 24, 20.0},
                       .dtype = AM_DTYPE_F16,
                       .seed = 41};
  char data[512];
  snprintf(data, sizeof data, "%s", tmp_path("long.safetensors"));
  cr_assert_eq(lcd_write(&c, 4, 1, data, NULL), 0);
  analyze_reference(data, tmp_path("ref"), 0, 0);
  analyze_cli(data, be->cli_spec, tmp_path("got"), NULL, NULL); /* NULL ends the args */
  cr_expect_eq(cmp_runs(ctx, tmp_path("got"), tmp_path("ref")), 0,
               "%s: the long-context run of --backend %s differs from the reference's",
               be->name, be->cli_spec);
  dsb_rmtree(tmp_path("ref"));
  dsb_rmtree(tmp_path("got"));
  scratch_teardown();
}

PAR_TEST(backend_analyze, flow_against_the_reference) {
  setenv("AM_EMU_DEVICES", "2", 0);
  am_ctx_destroy(par_backend_open(be, PAR_PLAIN));
  if (!be->cli_spec)
    cr_skip_test("%s: no --backend spec", be->name);
  scratch_setup("backend-analyze-flow");
  const int lengths[5] = {0, 1, 23, 40, 17}; /* a fully masked example, one token */
  dsb_spec_t spec = {.L = 3,
                     .H = 2,
                     .B = 5,
                     .T = 40,
                     .dtype = AM_DTYPE_F16,
                     .lengths = lengths,
                     .left_pad = 1,
                     .seed = 17};
  char data[512];
  snprintf(data, sizeof data, "%s", tmp_path("flow.safetensors"));
  cr_assert_eq(dsb_make(&spec, data), 0);
  analyze_reference(data, tmp_path("ref"), 0, AM_METHOD_FLOW | AM_METHOD_ROLLOUT);
  /* the CPU reference beside the device (the default), then the device's own solver */
  for (int device = 0; device < 2; device++) {
    if (device)
      setenv("ATTNMAP_CUDA_FLOW", "device", 1);
    analyze_cli(data, be->cli_spec, tmp_path("got"), "--methods", "flow,rollout");
    unsetenv("ATTNMAP_CUDA_FLOW");
    cr_expect_eq(cmp_runs(ctx, tmp_path("got"), tmp_path("ref")), 0,
                 "%s: the attention flow of --backend %s%s differs from the reference's",
                 be->name, be->cli_spec, device ? " with ATTNMAP_CUDA_FLOW=device" : "");
    dsb_rmtree(tmp_path("got"));
  }
  dsb_rmtree(tmp_path("ref"));
  scratch_teardown();
}
