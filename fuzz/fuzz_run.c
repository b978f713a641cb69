/* fuzz_run.c — libFuzzer harness of the run-folder reader (am_run_open, run_folder.c)
 * behind `attnmap merge`, with the summary's record of the examples file's checksum made
 * to match the mutated file (fuzz_fix_checksum) so that mutations reach the checks behind
 * it: the
 * input is split at FUZZ_SEP into summary.json and examples.safetensors of one run folder
 * (each part's first byte is ignored, kept for the common input format) and, when a third
 * part is present, a second run folder with that summary.json and the same examples
 * file. am_run_merge combines the run(s) into a new folder; whatever happens, no crash, no
 * read out of bounds, a one-line message on failure, and no output (nor temporary) folder
 * left behind by a failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_support.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  am_ctx_t *ctx = fuzz_ctx();
  const char *top = fuzz_dir();
  char run1[256], run2[256], out[256], tmp[300];
  snprintf(run1, sizeof run1, "%s/r1", top);
  snprintf(run2, sizeof run2, "%s/r2", top);
  snprintf(out, sizeof out, "%s/merged", top);
  fuzz_clear(top);
  fuzz_part_t parts[3];
  int n = fuzz_split(data, size, parts, 3);
  if (n < 2)
    return 0;
  if (mkdir(run1, 0700) != 0)
    abort();
  fuzz_put_part(run1, "summary.json", &parts[0]);
  fuzz_put_part(run1, "examples.safetensors", &parts[1]);
  if (n == 3) {
    if (mkdir(run2, 0700) != 0)
      abort();
    fuzz_put_part(run2, "summary.json", &parts[2]);
    fuzz_put_part(run2, "examples.safetensors", &parts[1]);
  }
  fuzz_fix_checksum(run1);
  if (n == 3)
    fuzz_fix_checksum(run2);
  const char *runs[2] = {run1, run2};
  am_run_options_t opts;
  am_run_options_init(&opts);
  am_status st = am_run_merge(ctx, runs, n == 3 ? 2 : 1, out, &opts);
  fuzz_check_message(ctx, st);
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
  if (fuzz_exists(tmp) || (st != AM_STATUS_OK && fuzz_exists(out))) {
    fprintf(stderr, "fuzz: status %d left %s behind\n", (int)st,
            fuzz_exists(tmp) ? tmp : out);
    abort();
  }
  return 0;
}
