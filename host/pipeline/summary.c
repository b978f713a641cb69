/* summary.c — RUN/summary.json: provenance (version, backend, device, options, input files
 * with sizes and CRC-32C checksums, timings), the dataset's shape and the aggregates. */
#include "pipeline/summary.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/ctx.h"

double am_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *fusion_name(am_fusion f) {
  return f == AM_FUSION_MAX ? "max" : f == AM_FUSION_MIN ? "min" : "mean";
}
static const char *normalize_name(am_normalize n) {
  return n == AM_NORMALIZE_MAX      ? "max"
         : n == AM_NORMALIZE_SUM    ? "sum"
         : n == AM_NORMALIZE_MINMAX ? "minmax"
                                    : "none";
}

json_t *am_plan_to_json(const am_layout_t *lay) {
  const am_plan_t *p = &lay->plan;
  json_t *target;
  switch (p->target) {
  case AM_TARGET_LAST:
    target = json_string("last");
    break;
  case AM_TARGET_MEAN:
    target = json_string("mean");
    break;
  case AM_TARGET_INDEX:
    target = json_integer(p->target_index);
    break;
  default:
    target = json_string("cls");
  }
  json_t *maps = json_array(), *pairs = json_array();
  for (int m = 0; m < lay->nmaps; m++)
    json_array_append_new(maps, json_string(lay->maps[m].name));
  for (int i = 0; i < lay->npairs; i++)
    json_array_append_new(pairs, json_string(lay->pair_names[i]));
  return json_pack("{s:s,s:o,s:s,s:b,s:f,s:s,s:i,s:b,s:b,s:i,s:i,s:I,s:b,s:b,s:o,s:o,s:f}",
                   "fusion", fusion_name(p->fusion), "target", target, "target_source",
                   lay->target_from_exporter ? "exporter" : "options", "include_target",
                   p->include_target, "discard",
                   p->discard, "normalize", normalize_name(p->normalize), "topk", p->topk,
                   "include_special", p->include_special, "all_rows", p->all_rows, "worst",
                   p->worst, "histogram_bins", p->histogram_bins, "chunk",
                   (json_int_t)p->chunk, "head_stats", lay->head_stats, "head_importance",
                   lay->head_importance, "maps", maps, "pairs", pairs, "row_tolerance",
                   p->row_tolerance);
}

am_status am_inputs_json(am_ctx_t *ctx, const am_dataset_t *ds, const uint32_t *crcs,
                         json_t **out) {
  (void)ctx;
  json_t *arr = json_array();
  int k = 0;
  for (int s = 0; s < ds->nshards; s++)
    for (int f = 0; f < ds->shards[s].nfiles; f++, k++) {
      const char *path = am_file_path(ds->shards[s].files[f]);
      struct stat sb;
      int ok =
          stat(path, &sb) == 0; /* the identity --resume compares (pipeline/resume.c) */
      json_t *o = json_pack(
          "{s:s,s:I,s:I}", "path", path, "bytes", (json_int_t)(ok ? sb.st_size : -1),
          "mtime_ns",
          (json_int_t)(ok ? (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec
                          : -1));
      if (crcs) {
        char hex[16];
        snprintf(hex, sizeof hex, "%08x", crcs[k]);
        json_object_set_new(o, "crc32c", json_string(hex));
      }
      json_array_append_new(arr, o);
    }
  *out = arr;
  return AM_STATUS_OK;
}

static json_t *dataset_json(const am_dataset_t *ds) {
  json_t *roles = json_array();
  for (unsigned bit = 1; am_role_name(bit); bit <<= 1)
    if (ds->roles & bit)
      json_array_append_new(roles, json_string(am_role_name(bit)));
  return json_pack("{s:I,s:i,s:i,s:i,s:i,s:s,s:o,s:o,s:o}", "examples", (json_int_t)ds->N,
                   "layers", ds->L, "heads", ds->H, "max_tokens", ds->Tmax, "shards",
                   ds->nshards, "dtype", am_dtype_name(ds->dtype), "model",
                   ds->model ? json_string(ds->model) : json_null(), "grid",
                   ds->grid ? json_string(ds->grid) : json_null(), "roles", roles);
}

json_t *am_summary_build(am_ctx_t *ctx, const am_dataset_t *ds, const am_layout_t *lay,
                         const am_aggregates_t *agg, json_t *inputs,
                         const am_timings_t *t) {
  char when[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_t *prov =
      json_pack("{s:s,s:i,s:s,s:s,s:i,s:s,s:o,s:o,s:{s:f,s:f,s:f}}", "version",
                am_version(), "format", 1, "backend", am_ctx_backend_name(ctx), "device",
                am_ctx_device_name(ctx), "threads", am_ctx_threads(ctx), "created", when,
                "options", am_plan_to_json(lay), "inputs", inputs, "timings", "checksum_s",
                t->checksum_s, "analyze_s", t->analyze_s, "total_s", t->total_s);
  json_t *doc = am_agg_to_json(agg, lay);
  json_object_set_new(doc, "provenance", prov);
  json_object_set_new(doc, "dataset", dataset_json(ds));
  return doc;
}
