/* fuzz_report.c — libFuzzer harness of `attnmap report` on mutated run folders: the input
 * is split at FUZZ_SEP into summary.json and examples.safetensors (each part's first byte
 * is ignored, as in fuzz_run.c, so the run seeds serve both), the summary's record of the
 * examples file's checksum is made to match (fuzz_fix_checksum), and am_run_report writes
 * the report (two table rows, one attention view) into a folder of its own. Whatever
 * happens: no crash, no read out of bounds, a one-line message on failure, no report and
 * no temporary folder left behind by a failure, and the run folder's files unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_support.h"

static long long size_of(const char *dir, const char *name) {
  char path[300];
  struct stat sb;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  am_ctx_t *ctx = fuzz_ctx();
  const char *top = fuzz_dir();
  char run[256], out[256], tmp[300];
  snprintf(run, sizeof run, "%s/run", top);
  snprintf(out, sizeof out, "%s/report", top);
  fuzz_clear(top);
  fuzz_part_t parts[2];
  if (fuzz_split(data, size, parts, 2) < 2)
    return 0;
  if (mkdir(run, 0700) != 0)
    abort();
  fuzz_put_part(run, "summary.json", &parts[0]);
  fuzz_put_part(run, "examples.safetensors", &parts[1]);
  fuzz_fix_checksum(run);
  long long before = size_of(run, "examples.safetensors");
  am_report_options_t opts;
  am_report_options_init(&opts);
  opts.examples = 2;
  opts.views = 1;
  opts.topk_heads = 3;
  opts.out_dir = out;
  am_report_result_t res;
  am_status st = am_run_report(ctx, run, &opts, &res);
  fuzz_check_message(ctx, st);
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
  if (fuzz_exists(tmp) || (st != AM_STATUS_OK && fuzz_exists(out)) ||
      size_of(run, "examples.safetensors") != before) {
    fprintf(stderr, "fuzz: status %d left %s behind or changed the run\n", (int)st,
            fuzz_exists(tmp) ? tmp : out);
    abort();
  }
  return 0;
}
