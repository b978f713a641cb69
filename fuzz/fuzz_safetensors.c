/* fuzz_safetensors.c — libFuzzer harness of the safetensors reader: the input is a whole
 * .safetensors file image, parsed from memory (am_safetensors_parse, the reader behind
 * am_file_open). A file that is accepted must hand back tensors whose bytes lie inside
 * the input (every byte is read under ASan), and must survive a round trip through the
 * writer and am_file_open unchanged. A rejected one must leave a one-line message. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "io/file.h"

static void round_trip(am_ctx_t *ctx, const am_file_t *f) {
  int n = am_file_tensor_count(f), nmeta = am_file_metadata_count(f);
  for (int i = 0; i < n; i++)
    if (!am_file_tensor_name(f, i)[0])
      return; /* the reader accepts "" as a name (as the reference does); the writer not */
  am_named_tensor_t *list = calloc((size_t)n + 1, sizeof *list);
  const char **meta = calloc(2 * (size_t)nmeta + 1, sizeof *meta);
  if (!list || !meta)
    abort();
  for (int i = 0; i < n; i++)
    list[i] = (am_named_tensor_t){am_file_tensor_name(f, i), *am_file_tensor(f, i)};
  for (int i = 0; i < nmeta; i++) {
    meta[2 * i] = am_file_metadata_key(f, i);
    meta[2 * i + 1] = am_file_metadata(f, meta[2 * i]);
  }
  char path[256];
  strcpy(path, fuzz_dir());
  strcat(path, "/rt.safetensors");
  am_status st = am_safetensors_write(ctx, path, list, n, meta, nmeta);
  if (st != AM_STATUS_OK)
    abort(); /* whatever the reader accepts (with names) the writer can write */
  am_file_t *g = NULL;
  if (am_file_open(ctx, path, &g) != AM_STATUS_OK || am_file_tensor_count(g) != n ||
      am_file_metadata_count(g) != nmeta)
    abort();
  for (int i = 0; i < n; i++) {
    const am_tensor_t *a = am_file_tensor(f, i);
    const am_tensor_t *b = am_file_find(g, am_file_tensor_name(f, i));
    if (!b || a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes ||
        memcmp(a->shape, b->shape, sizeof a->shape) != 0 ||
        (a->nbytes && memcmp(a->data, b->data, a->nbytes) != 0))
      abort();
  }
  for (int i = 0; i < nmeta; i++) {
    const char *v = am_file_metadata(g, meta[2 * i]);
    if (!v || strcmp(v, meta[2 * i + 1]) != 0)
      abort();
  }
  am_file_close(g);
  free(list);
  free(meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  am_ctx_t *ctx = fuzz_ctx();
  am_file_t *f = NULL;
  am_status st = am_safetensors_parse(ctx, "fuzz.safetensors", data, size, &f);
  fuzz_check_message(ctx, st);
  if (st != AM_STATUS_OK) {
    if (f)
      abort(); /* output parameters are NULL on failure */
    return 0;
  }
  (void)fuzz_touch_file(f);
  round_trip(ctx, f);
  am_file_close(f);
  return 0;
}
