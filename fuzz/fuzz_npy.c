/* fuzz_npy.c — libFuzzer harness of the .npy reader: the input is a whole .npy file
 * image, parsed from memory (am_npy_parse, the reader behind am_file_open). An accepted
 * file hands back one tensor whose bytes are all read under ASan (converted from Fortran
 * order or big-endian when needed) and survives a round trip through am_npy_write and
 * am_file_open; a rejected one leaves a one-line message. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "io/file.h"

static void round_trip(am_ctx_t *ctx, const am_file_t *f) {
  const am_tensor_t *a = am_file_tensor(f, 0);
  char path[256];
  strcpy(path, fuzz_dir());
  strcat(path, "/attentions.npy");
  am_status st = am_npy_write(ctx, path, a);
  if (st != AM_STATUS_OK)
    abort(); /* every dtype the reader maps to has an npy descr */
  am_file_t *g = NULL;
  if (am_file_open(ctx, path, &g) != AM_STATUS_OK || am_file_tensor_count(g) != 1)
    abort();
  const am_tensor_t *b = am_file_tensor(g, 0);
  if (a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes ||
      memcmp(a->shape, b->shape, sizeof a->shape) != 0 ||
      (a->nbytes && memcmp(a->data, b->data, a->nbytes) != 0) ||
      strcmp(am_file_tensor_name(g, 0), "attentions") != 0)
    abort();
  am_file_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  am_ctx_t *ctx = fuzz_ctx();
  am_file_t *f = NULL;
  am_status st = am_npy_parse(ctx, "fuzz/attentions.3.npy", data, size, &f);
  fuzz_check_message(ctx, st);
  if (st != AM_STATUS_OK) {
    if (f)
      abort();
    return 0;
  }
  if (am_file_tensor_count(f) != 1 || strcmp(am_file_tensor_name(f, 0), "attentions.3"))
    abort();
  (void)fuzz_touch_file(f);
  round_trip(ctx, f);
  am_file_close(f);
  return 0;
}
