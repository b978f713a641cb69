/* summary.c — RUN/summary.json: provenance (version, backend, device, options, input files
 * with sizes and CRC-32C checksums, timings), the dataset's shape and the aggregates. */
#include "pipeline/summary.h"
#include "pipeline/cross_run.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/crc32c.h"
#include "core/ctx.h"
#include "core/options.h"

double am_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The names of the plan's enums (am_list_name; the plan was range-checked). */
static const char *fusion_name(am_fusion f) { return am_list_name(AM_LIST_FUSIONS, f); }
static const char *normalize_name(am_normalize n) {
  return am_list_name(AM_LIST_NORMALIZE, n);
}

json_t *am_plan_to_json(const am_layout_t *lay) {
  const am_plan_t *p = &lay->plan;
  json_t *target;
  char text[48];
  am_target_text(p, text, sizeof text); /* "cls", "gen", "2:5" */
  if (p->target == AM_TARGET_INDEX)
    target = json_integer(p->target_index);
  else
    target = json_string(text);
  json_t *maps = json_array(), *pairs = json_array();
  for (int m = 0; m < lay->nmaps; m++)
    json_array_append_new(maps, json_string(lay->maps[m].name));
  for (int i = 0; i < lay->npairs; i++)
    json_array_append_new(pairs, json_string(lay->pair_names[i]));
  json_t *doc = json_pack(
      "{s:s,s:o,s:s,s:b,s:f,s:s,s:i,s:b,s:b,s:i,s:i,s:I,s:b,s:b,s:o,s:o,s:f}", "fusion",
      fusion_name(p->fusion), "target", target, "target_source",
      lay->target_from_exporter ? "exporter" : "options", "include_target",
      p->include_target, "discard", p->discard, "normalize", normalize_name(p->normalize),
      "topk", p->topk, "include_special", p->include_special, "all_rows", p->all_rows,
      "worst", p->worst, "histogram_bins", p->histogram_bins, "chunk", (json_int_t)p->chunk,
      "head_stats", lay->head_stats, "head_importance", lay->head_importance, "maps", maps,
      "pairs", pairs, "row_tolerance", p->row_tolerance);
  if (doc && lay->several) /* what the run reader needs to rebuild the step tensors */
    json_object_set_new(doc, "steps", am_steps_options_json(lay));
  if (doc && lay->cross_want) /* and the encoder-decoder maps' */
    json_object_set_new(doc, "cross", am_cross_options_json(lay));
  return doc;
}

/* CRC-32C of the file's pieces on the context's threads (pread into a buffer per thread:
 * a file cut short meanwhile is a read error, never a SIGBUS), combined in file order. */
#define CRC_PIECE (8u << 20)
#define CRC_BUFFER (1u << 20)

static uint32_t piece_crc(int fd, uint64_t off, uint64_t len, unsigned char *buf,
                          int *err) {
  uint32_t c = 0;
  while (len > 0 && *err == 0) {
    size_t want = len < CRC_BUFFER ? (size_t)len : CRC_BUFFER;
    ssize_t got = pread(fd, buf, want, (off_t)off);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      *err = got < 0 ? errno : EIO; /* EIO: fewer bytes than when the run began */
      break;
    }
    c = am_crc32c(c, buf, (size_t)got);
    off += (uint64_t)got;
    len -= (uint64_t)got;
  }
  return c;
}

am_status am_file_crc32c(am_ctx_t *ctx, const char *path, uint32_t *crc) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) != 0) {
    int err = errno;
    if (fd >= 0)
      close(fd);
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: %s", path, strerror(err));
  }
  uint64_t size = (uint64_t)sb.st_size, npieces = (size + CRC_PIECE - 1) / CRC_PIECE;
  uint32_t *crcs = calloc(npieces ? npieces : 1, sizeof *crcs);
  if (!crcs) {
    close(fd);
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  }
  int err = 0, threads = npieces < (uint64_t)ctx->threads ? (int)npieces : ctx->threads;
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
  {
    unsigned char *buf = malloc(CRC_BUFFER);
    int my_err = buf ? 0 : ENOMEM;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < (int64_t)npieces; i++) {
      uint64_t off = (uint64_t)i * CRC_PIECE;
      if (my_err == 0)
        crcs[i] = piece_crc(fd, off, size - off < CRC_PIECE ? size - off : CRC_PIECE, buf,
                            &my_err);
    }
    if (my_err != 0) {
#pragma omp critical(am_file_crc_error)
      err = err ? err : my_err;
    }
    free(buf);
  }
  close(fd);
  uint32_t c = 0;
  for (uint64_t i = 0; i < npieces; i++)
    c = am_crc32c_combine(
        c, crcs[i], size - i * CRC_PIECE < CRC_PIECE ? size - i * CRC_PIECE : CRC_PIECE);
  free(crcs);
  if (err == ENOMEM)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  if (err != 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: read failed: %s", path,
                   err == EIO ? "the file is shorter than when the run began"
                              : strerror(err));
  *crc = c;
  return AM_STATUS_OK;
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
      char *canonical = realpath(path, NULL); /* "f" and "./f" are one file */
      if (canonical)
        json_object_set_new(o, "realpath", json_string(canonical));
      free(canonical);
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

am_status am_summary_file_record(am_ctx_t *ctx, const char *path, json_t **out) {
  char hex[16];
  struct stat sb;
  uint32_t crc = 0;
  *out = NULL;
  if (stat(path, &sb) != 0)
    return am_fail(ctx, AM_STATUS_IO, "%s: cannot stat: %s", path, strerror(errno));
  am_status st = am_file_crc32c(ctx, path, &crc);
  if (st != AM_STATUS_OK)
    return st;
  snprintf(hex, sizeof hex, "%08x", crc);
  *out = json_pack("{s:I,s:s}", "bytes", (json_int_t)sb.st_size, "crc32c", hex);
  return *out
             ? AM_STATUS_OK
             : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory building summary.json");
}

am_status am_summary_add_files(am_ctx_t *ctx, json_t *doc, const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/examples.safetensors", dir);
  json_t *rec = NULL;
  am_status st = am_summary_file_record(ctx, path, &rec);
  if (st != AM_STATUS_OK)
    return st;
  json_t *files = json_pack("{s:o}", "examples.safetensors", rec);
  if (!files || json_object_set_new(json_object_get(doc, "provenance"), "files", files))
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory building summary.json");
  return AM_STATUS_OK;
}
