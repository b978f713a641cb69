/* replace.h — what attnmap may replace: an output path is written only when it is absent,
 * or (with --force, or a report over an earlier report) when it is a folder attnmap wrote,
 * recognised by its marker file and holding nothing else; never when it is, or holds, one
 * of the inputs (compared by device and inode, so `f`, `./f` and a link to f are one). */
#ifndef AM_PIPELINE_REPLACE_H
#define AM_PIPELINE_REPLACE_H

#include "attnmap.h"

typedef enum am_out_kind {
  AM_OUT_RUN,     /* summary.json, examples.safetensors, report/ */
  AM_OUT_REPORT,  /* index.html, comparison.json, img/ of PNGs */
  AM_OUT_PARTIAL, /* progress.json, examples.safetensors, summary.json and temporaries */
} am_out_kind;

/* The paths an output must leave alone (borrowed). */
typedef struct am_out_inputs {
  const char *const *path;
  int n;
} am_out_inputs_t;

/* OK when out is absent, or when replace is set and out is a folder of this kind
 * (not a symbolic link) holding only what attnmap writes there. Fails (invalid argument)
 * when out is, or is a folder above, one of the inputs, whatever replace says. */
am_status am_out_check(am_ctx_t *ctx, const char *out, am_out_kind kind, int replace,
                       const am_out_inputs_t *inputs);

/* OK when out is not inside the folder dir (an input run, which is never modified): out's
 * deepest existing ancestor, resolved, must not be dir or under it. The error names both
 * and ends with advice ("write the merged run beside it"). */
am_status am_out_outside(am_ctx_t *ctx, const char *out, const char *dir,
                         const char *advice);

/* Every file and shard folder of ds as inputs (the array is allocated, the paths are
 * borrowed from ds); am_out_inputs_free releases the array. */
am_status am_out_inputs_of(am_ctx_t *ctx, const am_dataset_t *ds, am_out_inputs_t *in);
void am_out_inputs_free(am_out_inputs_t *in);

#endif
