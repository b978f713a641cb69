/* test_backend_analyze.c — `attnmap analyze` end to end on every backend other than the
 * CPU, against the CPU: the bundled real-model dataset (examples/data/minilm-sentiment,
 * every map, --all-rows, with gradients and saliency) analysed with --backend cuda:all and
 * with --backend cpu, the two run folders compared within the parity suite's tolerances
 * (support/compare_runs.c). On a GPU it runs on the device; in the CUDA emulator's build
 * (tests/cuda_emu, part of scripts/test.sh) on two emulated devices; elsewhere it skips. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "attnmap.h"
#include "support/compare_runs.h"
#include "support/dataset_builder.h"
#include "support/parity.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#define DATA ATTNMAP_SOURCE_DIR "/examples/data/minilm-sentiment"

static void analyze(const char *backend, const char *out) {
  cli_result_t r;
  cli_options_t o = {.timeout_s = 600};
  cr_assert_eq(cli_run(&r, &o, "analyze", DATA, "-o", out, "--backend", backend, "--quiet",
                       "--all-rows", "--threads", "2", NULL),
               0);
  cr_assert_eq(r.exit_code, 0, "analyze --backend %s: %s", backend, r.err);
  cli_result_free(&r);
}

Test(backend_analyze, cuda_all_against_cpu) {
  setenv("AM_EMU_DEVICES", "2", 0); /* the emulator's devices; a real GPU ignores it */
  am_ctx_t *gpu = par_ctx("cuda");
  if (!gpu)
    cr_skip_test("no CUDA backend or device");
  am_ctx_destroy(gpu);
  scratch_setup("backend-analyze");
  analyze("cpu", tmp_path("cpu"));
  analyze("cuda:all", tmp_path("cuda"));
  cr_expect_eq(cmp_runs(ctx, tmp_path("cuda"), tmp_path("cpu")), 0,
               "the CUDA run differs from the CPU run (stderr says where)");
  dsb_rmtree(tmp_path("cpu"));
  dsb_rmtree(tmp_path("cuda"));
  scratch_teardown();
}
