/* attnmap.h — the public API of attnmap, the only header a user includes.
 *
 * attnmap reads attention matrices, attention gradients and token saliency dumped from
 * a transformer over a whole evaluation set, computes rollout, gradient-weighted rollout,
 * per-head statistics, head importance and attention-vs-gradient agreement, and writes a
 * run folder (examples.safetensors + summary.json). See docs/ and docs/design.md.
 *
 * Ownership: an object made by am_X_create / am_X_open is freed by am_X_destroy /
 * am_X_close, and destroy(NULL) does nothing. Pointers returned by accessors are borrowed:
 * they stay valid until the owning object is closed. On failure, output parameters are
 * set to NULL and the context keeps a one-line message (am_last_error).
 * The library never prints and never exits. */
#ifndef ATTNMAP_H
#define ATTNMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* AM_API marks what the shared library exports; everything else in it is hidden
 * (-fvisibility=hidden), so the ABI is exactly the declarations below. */
#if defined(_WIN32)
#define AM_API
#else
#define AM_API __attribute__((visibility("default")))
#endif

#define AM_VERSION_MAJOR 0
#define AM_VERSION_MINOR 1
#define AM_VERSION_PATCH 0
#define AM_VERSION_STRING "0.1.0"

/* The library's version string, e.g. "0.1.0" (static). */
AM_API const char *am_version(void);

/* ---- status codes: one list, fixed numbers ------------------------------------- */
#define AM_STATUS_LIST(X)                                                                  \
  X(OK, 0, "ok")                                                                           \
  X(INVALID_ARGUMENT, 1, "invalid argument")                                               \
  X(BAD_INPUT, 2, "bad input")                                                             \
  X(IO, 3, "input/output error")                                                           \
  X(OUT_OF_MEMORY, 4, "out of memory")                                                     \
  X(NO_DEVICE, 5, "no CUDA device")                                                        \
  X(DEVICE, 6, "device error")                                                             \
  X(UNSUPPORTED, 7, "unsupported")                                                         \
  X(INTERNAL, 8, "internal error")

typedef enum am_status {
#define AM_STATUS_ENUM_(name, value, text) AM_STATUS_##name = value,
  AM_STATUS_LIST(AM_STATUS_ENUM_)
#undef AM_STATUS_ENUM_
} am_status;

/* Static text of a status ("bad input"); "unknown status" for other values. */
AM_API const char *am_status_str(am_status status);
/* Static name of a status as the enum spells it without AM_STATUS_ ("BAD_INPUT"); NULL
 * for other values (bindings enumerate the codes with it). */
AM_API const char *am_status_name(am_status status);

/* ---- element types: names as safetensors spells them --------------------------- */
#define AM_DTYPE_LIST(X)                                                                   \
  X(F32, 0, "F32", 4)                                                                      \
  X(F16, 1, "F16", 2)                                                                      \
  X(BF16, 2, "BF16", 2)                                                                    \
  X(F64, 3, "F64", 8)                                                                      \
  X(I8, 4, "I8", 1)                                                                        \
  X(I16, 5, "I16", 2)                                                                      \
  X(I32, 6, "I32", 4)                                                                      \
  X(I64, 7, "I64", 8)                                                                      \
  X(U8, 8, "U8", 1)                                                                        \
  X(U16, 9, "U16", 2)                                                                      \
  X(U32, 10, "U32", 4)                                                                     \
  X(U64, 11, "U64", 8)                                                                     \
  X(BOOL, 12, "BOOL", 1)                                                                   \
  X(F8_E4M3, 13, "F8_E4M3", 1)                                                             \
  X(F8_E5M2, 14, "F8_E5M2", 1)

typedef enum am_dtype {
#define AM_DTYPE_ENUM_(name, value, text, size) AM_DTYPE_##name = value,
  AM_DTYPE_LIST(AM_DTYPE_ENUM_)
#undef AM_DTYPE_ENUM_
      AM_DTYPE_COUNT
} am_dtype;

AM_API const char *am_dtype_name(am_dtype dtype); /* "F16"; NULL when unknown */
AM_API size_t am_dtype_size(am_dtype dtype);      /* bytes per element; 0 when unknown */

#define AM_MAX_DIMS 8

/* A tensor view. data may be unaligned (safetensors offsets need not be multiples of 8)
 * and is borrowed from whoever made the view; C order (row-major) always. */
typedef struct am_tensor {
  am_dtype dtype;
  int ndim;
  int64_t shape[AM_MAX_DIMS];
  const void *data;
  size_t nbytes;
} am_tensor_t;

/* A tensor with a name, for the writers. */
typedef struct am_named_tensor {
  const char *name;
  am_tensor_t tensor;
} am_named_tensor_t;

/* ---- context -------------------------------------------------------------------- */
typedef struct am_ctx am_ctx_t;

typedef struct am_ctx_options {
  const char *backend; /* "cpu" (default), "cuda", "cuda:N", "cuda:all", "auto" */
  int threads;         /* CPU threads; 0 = all cores */
} am_ctx_options_t;

/* opts may be NULL (defaults). A failure message for a context that could not be made
 * goes to errbuf when it is not NULL. */
AM_API am_status am_ctx_create(const am_ctx_options_t *opts, am_ctx_t **out, char *errbuf,
                               size_t errlen);
AM_API void am_ctx_destroy(am_ctx_t *ctx);
/* The message of the last failure on ctx (one line, names file, tensor and problem
 * where they are known); "" when none. Borrowed; valid until the next call on ctx. */
AM_API const char *am_last_error(const am_ctx_t *ctx);
AM_API const char *am_ctx_backend_name(const am_ctx_t *ctx); /* "cpu", "cuda" */
AM_API const char *am_ctx_device_name(const am_ctx_t *ctx);  /* CPU model or GPU name */
AM_API int am_ctx_threads(const am_ctx_t *ctx);

/* ---- tensor files (.safetensors, .npy) ------------------------------------------ */
typedef struct am_file am_file_t;

/* Maps a .safetensors file (checked as the reference implementation checks it, plus
 * duplicate names rejected) or reads a .npy file (one tensor, named after the file). */
AM_API am_status am_file_open(am_ctx_t *ctx, const char *path, am_file_t **out);
AM_API void am_file_close(am_file_t *file);
AM_API const char *am_file_path(const am_file_t *file);
AM_API int am_file_tensor_count(const am_file_t *file);
AM_API const char *am_file_tensor_name(const am_file_t *file, int i);   /* borrowed */
AM_API const am_tensor_t *am_file_tensor(const am_file_t *file, int i); /* borrowed */
AM_API const am_tensor_t *am_file_find(const am_file_t *file,
                                       const char *name); /* NULL if absent */
AM_API int am_file_metadata_count(const am_file_t *file);
AM_API const char *am_file_metadata_key(const am_file_t *file, int i);
AM_API const char *am_file_metadata(const am_file_t *file,
                                    const char *key); /* NULL if absent */

/* Writes a .safetensors file (header padded to 8 bytes, tensors in the given order,
 * metadata as key/value string pairs meta[2*i], meta[2*i+1]). Atomic: temp + rename. */
AM_API am_status am_safetensors_write(am_ctx_t *ctx, const char *path,
                                      const am_named_tensor_t *tensors, int ntensors,
                                      const char *const *meta, int nmeta);
/* Writes a .npy file (version 1.0, C order, little-endian) unless the header needs 2.0. */
AM_API am_status am_npy_write(am_ctx_t *ctx, const char *path, const am_tensor_t *tensor);

/* ---- datasets --------------------------------------------------------------------- */
typedef struct am_dataset am_dataset_t;

/* Which inputs a dataset holds (bits of am_dataset_info_t.roles). */
enum {
  AM_ROLE_ATTENTIONS = 1u << 0,
  AM_ROLE_ATTENTION_GRADS = 1u << 1,
  AM_ROLE_ATTENTION_MASK = 1u << 2,
  AM_ROLE_SPECIAL_TOKENS_MASK = 1u << 3,
  AM_ROLE_INPUT_IDS = 1u << 4,
  AM_ROLE_SALIENCY = 1u << 5,
  AM_ROLE_EMBEDS = 1u << 6, /* inputs_embeds and inputs_embeds_grads */
  AM_ROLE_LABELS = 1u << 7,
  AM_ROLE_PREDICTIONS = 1u << 8,
  AM_ROLE_TOKENS = 1u << 9, /* __metadata__ attnmap.tokens */
};

/* The input name of a role bit ("attention_grads"); NULL for anything but one bit. */
AM_API const char *am_role_name(unsigned role);

typedef struct am_dataset_info {
  int64_t examples;  /* N, over all shards */
  int layers, heads; /* L, H */
  int max_tokens;    /* largest padded T over shards */
  int shards;
  unsigned roles;          /* AM_ROLE_* bits present in every shard */
  am_dtype dtype;          /* of attentions (first shard) */
  int saliency_count;      /* precomputed saliency tensors */
  const char *model;       /* __metadata__ "model" or NULL (borrowed) */
  const char *grid;        /* __metadata__ "attnmap.grid" or NULL (borrowed) */
  const char *target;      /* the target the exporter recorded ("target" of __metadata__
                              "attnmap.exporter": "cls", "last", "mean" or an index), or NULL;
                              shards that record different targets do not open (borrowed) */
  const char *target_file; /* the first file that records it, or NULL (borrowed) */
} am_dataset_info_t;

/* Opens a dataset: each path is a .safetensors file, a .npy file, or a directory of
 * *.safetensors shards (name order) or of .npy files named after their roles.
 * Every shard is checked against docs/design.md §2 before anything is computed. */
AM_API am_status am_dataset_open(am_ctx_t *ctx, const char *const *paths, int npaths,
                                 am_dataset_t **out);
AM_API void am_dataset_close(am_dataset_t *ds);
AM_API void am_dataset_get_info(const am_dataset_t *ds, am_dataset_info_t *info);

/* The long-context form's settings (docs/long-context.md): what `attnmap inspect` shows. */
typedef struct am_long_form_info {
  int heads, kv_heads; /* H, Hkv: queries.{l} [B,H,T,d], keys.{l} [B,Hkv,T,d] */
  int head_dim;        /* d */
  double scale;        /* of the scores S = scale Q K^T */
  int causal;          /* 1: keys after the query are masked */
  int sliding_window;  /* 0: none */
  double softcap;      /* 0: none */
  int output_grads;    /* 1: attention_output_grads.{l} present */
} am_long_form_info_t;
/* 1 when the dataset holds the long-context form (queries/keys/values), with its settings
 * in *info (when not NULL); 0 for the matrix form (attentions). */
AM_API int am_dataset_long_form(const am_dataset_t *ds, am_long_form_info_t *info);
AM_API int am_dataset_shard_count(const am_dataset_t *ds);
AM_API const char *am_dataset_shard_path(const am_dataset_t *ds, int i); /* borrowed */
AM_API int am_dataset_shard_file_count(const am_dataset_t *ds, int shard);
AM_API const am_file_t *am_dataset_shard_file(const am_dataset_t *ds, int shard,
                                              int i); /* borrowed */
AM_API const char *am_dataset_saliency_name(const am_dataset_t *ds,
                                            int i); /* "ig", borrowed */

/* Reads every attention row of the dataset and checks it: finite, non-negative, summing
 * to 1 over the valid keys; gradients finite. AM_STATUS_BAD_INPUT names the first
 * failure (file, tensor, example, layer, head, row). */
AM_API am_status am_dataset_check(am_ctx_t *ctx, const am_dataset_t *ds);

/* ---- the analysis plan (docs/design.md §3) ---------------------------------------- */
typedef enum am_fusion { AM_FUSION_MEAN = 0, AM_FUSION_MAX, AM_FUSION_MIN } am_fusion;
typedef enum am_target {
  AM_TARGET_CLS = 0, /* the first valid token */
  AM_TARGET_LAST,    /* the last valid token */
  AM_TARGET_INDEX,   /* plan.target_index-th valid token; negative counts from the end */
  AM_TARGET_MEAN,    /* the mean of all rows */
  AM_TARGET_RANGE,   /* several targets (docs/generation.md): the valid-token slice
                        target_index:target_stop, Python's rules (plan.target_slice) */
  AM_TARGET_GEN      /* several targets: the valid tokens at padded positions at or after
                        generation_start[b] (the dataset's tensor) */
} am_target;
typedef enum am_normalize {
  AM_NORMALIZE_NONE = 0,
  AM_NORMALIZE_MAX,
  AM_NORMALIZE_SUM,
  AM_NORMALIZE_MINMAX
} am_normalize;

/* The methods: name, bit and the name the CLI, summary.json and Python use. */
#define AM_METHOD_LIST(X)                                                                  \
  X(ATTENTION_LAST, 0, "attention_last")                                                   \
  X(ROLLOUT, 1, "rollout")                                                                 \
  X(GRAD_ROLLOUT, 2, "grad_rollout")                                                       \
  X(FLOW, 3, "flow")                                                                       \
  X(HEAD_STATS, 4, "head_stats")                                                           \
  X(HEAD_IMPORTANCE, 5, "head_importance")                                                 \
  X(SALIENCY, 6, "saliency")                                                               \
  X(AGREEMENT, 7, "agreement")

enum {
#define AM_METHOD_ENUM_(name, bit, text) AM_METHOD_##name = 1u << bit,
  AM_METHOD_LIST(AM_METHOD_ENUM_)
#undef AM_METHOD_ENUM_
      AM_METHOD_DEFAULT = 0xF7u /* all but flow */
};

typedef struct am_plan {
  unsigned methods;     /* AM_METHOD_* bits; methods whose inputs are missing are skipped
                           unless asked for explicitly (am_plan.methods_explicit) */
  int methods_explicit; /* 1: a missing input for a listed method is an error */
  am_fusion fusion;     /* head fusion of rollout */
  am_target target;
  int target_index;       /* with AM_TARGET_INDEX */
  double discard;         /* discard ratio of rollout, [0,1) */
  am_normalize normalize; /* readout normalisation of rollout and grad_rollout */
  int topk;               /* k of jaccard / feature and rank agreement (default 5) */
  int include_special;    /* 1: special tokens take part in agreement and rankings */
  int all_rows;           /* 1: also write rollout.rows and grad_rollout.rows [N,T,T] */
  int worst;              /* K examples where attention and gradients disagree most (20) */
  const char *pairs;      /* "a~b,c~d" to narrow the agreement pairs; NULL = all */
  int64_t chunk;          /* examples per chunk; 0 = chosen from a memory budget */
  int histogram_bins;     /* bins of the agreement histograms (default 40) */
  double row_tolerance;   /* |row sum - 1| allowed; 0 = by dtype (F16/F32/F64 ~2e-3,
                             BF16 ~1.6e-2) */
  int target_recorded;    /* 1: use the target the dataset's exporter recorded
                             (am_dataset_info_t.target) when there is one, else `target` */
  int include_target;     /* 1: the target token takes part in agreement and the per-token
                             rankings; 0 (default): it is left out, as the authors' code
                             leaves it out (docs/analyses.md, "The target's own mass") */
  int target_stop;        /* with AM_TARGET_RANGE: the slice's stop (exclusive); its start
                             is target_index */
  int target_slice;       /* with AM_TARGET_RANGE: 1 = start given, 2 = stop given (bits;
                             a bound not given is the slice's default: 0 or n) */
} am_plan_t;

/* Fills plan with the defaults (mean fusion, cls target, no discard, no normalisation,
 * k = 5, all pairs, automatic chunk). */
AM_API void am_plan_init(am_plan_t *plan);

/* ---- names the library knows, queryable at run time ------------------------------- */
typedef enum am_list {
  AM_LIST_METHODS = 0, /* "attention_last", ...: method i is the AM_METHOD_* bit 1u << i */
  AM_LIST_STATS,       /* head statistics in the order of a run's head.* tensors */
  AM_LIST_METRICS,   /* agreement metrics; "@k" stands for the plan's topk ("jaccard@k") */
  AM_LIST_FUSIONS,   /* am_fusion value i: "mean", "max", "min" */
  AM_LIST_TARGETS,   /* am_target value i: "cls", "last", "index", "mean", "range", "gen" */
  AM_LIST_NORMALIZE, /* am_normalize value i: "none", "max", "sum", "minmax" */
  AM_LIST_COUNT
} am_list;

AM_API int am_list_count(am_list list);
/* Static name of entry i; NULL out of range. */
AM_API const char *am_list_name(am_list list, int i);
/* The index of name in list, or -1. */
AM_API int am_list_find(am_list list, const char *name);

/* ---- runs --------------------------------------------------------------------------- */
typedef void (*am_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct am_run_options {
  am_progress_fn progress; /* called after each chunk is stored, in order, from the
                              thread that stores chunks (not the caller's); may be NULL */
  void *progress_user;
  int force;     /* 1: replace an existing run folder */
  int checksums; /* 1 (default via am_run_options_init): CRC-32C of inputs */
  int resume;    /* 1: continue "<run_dir>.partial" left by an interrupted run with the
                    same options and inputs (else start afresh) */
  double checkpoint_s; /* at most this long between checkpoints (default 2 s; 0: after
                          every chunk). Each checkpoint syncs the partial output. */
} am_run_options_t;

AM_API void am_run_options_init(am_run_options_t *opts);

/* Analyses the dataset and writes run_dir (examples.safetensors, summary.json)
 * atomically: it is built under a temporary name and renamed when complete. */
AM_API am_status am_run_analyze(am_ctx_t *ctx, am_dataset_t *ds, const am_plan_t *plan,
                                const char *run_dir, const am_run_options_t *opts);

/* *complete = 1 when run_dir is a finished run made with this plan from these inputs
 * (the paths, sizes and modification times its summary.json records are the files' now):
 * am_run_analyze with opts->resume then returns AM_STATUS_OK and leaves it as it is. With
 * resume, a run_dir made otherwise is an error (AM_STATUS_INVALID_ARGUMENT) unless force.
 */
AM_API am_status am_run_is_complete(am_ctx_t *ctx, am_dataset_t *ds, const am_plan_t *plan,
                                    const char *run_dir, int *complete);

/* Combines run folders made with the same options, in the given order, into out_dir:
 * examples concatenated, aggregates merged. */
AM_API am_status am_run_merge(am_ctx_t *ctx, const char *const *runs, int nruns,
                              const char *out_dir, const am_run_options_t *opts);

/* Scores the faithfulness of run_dir's maps (docs/faithfulness.md) from probs, the target
 * probabilities attnmap-faithfulness wrote for that run, and writes out_dir: run_dir's
 * files, faithfulness.safetensors (per-example scores) and summary.json with a
 * `faithfulness` section; atomically, never modifying run_dir. opts may be NULL (only force
 * is read). */
AM_API am_status am_run_faithfulness(am_ctx_t *ctx, const char *run_dir, const char *probs,
                                     const char *out_dir, const am_run_options_t *opts);

/* ---- distributed runs (docs/cluster.md): one run folder from many processes --------- */
/* One process, the coordinator, opens a job on "<run_dir>.partial"; it and any number of
 * other processes (MPI ranks, say) each compute ranges of examples into it with
 * am_job_rows; the coordinator then aggregates the stored rows in input order and
 * publishes run_dir, bit for bit the folder am_run_analyze writes. Nothing here knows of
 * MPI: the processes only share the file system. */
typedef struct am_job am_job_t;
/* Called after each chunk a part stores, with the examples it has done of its range;
 * a nonzero return stops the part (another process failed). */
typedef int (*am_job_poll_fn)(void *user, int64_t done, int64_t total);

/* The coordinator: checks, locks and prepares "<run_dir>.partial" (with opts->resume, keeps
 * the rows a killed job completed, whatever its number of processes). *out is NULL, with
 * AM_STATUS_OK, when opts->resume finds run_dir finished with these inputs and options. */
AM_API am_status am_job_open(am_ctx_t *ctx, am_dataset_t *ds, const am_plan_t *plan,
                             const char *run_dir, const am_run_options_t *opts,
                             am_job_t **out);
/* The examples part `part` of `nparts` computes: ranges[2i], ranges[2i+1] = [begin, end),
 * the examples still to do cut into nparts runs of about equal input bytes, in input order.
 * Returns the number of ranges (at most cap are written), -1 on bad arguments. */
AM_API int am_job_split(const am_job_t *job, int nparts, int part, int64_t *ranges,
                        int cap);
/* Any process, after the coordinator's am_job_open: computes examples [begin, end) and
 * writes their rows at their offsets in the partial folder, with checkpoints of its own. */
AM_API am_status am_job_rows(am_ctx_t *ctx, am_dataset_t *ds, const am_plan_t *plan,
                             const char *run_dir, const am_run_options_t *opts,
                             int64_t begin, int64_t end, am_job_poll_fn poll, void *user);
/* The coordinator, once every part succeeded: aggregates all rows in input order, adds
 * provenance_json (an object, e.g. the ranks and hosts; may be NULL) to summary.json's
 * provenance under "parts" and publishes run_dir. */
AM_API am_status am_job_finish(am_job_t *job, const char *provenance_json);
/* Releases the job (its lock). After a failure st, the partial folder is kept for
 * --resume unless st says bad input or options. */
AM_API void am_job_close(am_job_t *job, am_status st);

/* ---- run folders read back (docs/run-folder.md) ------------------------------------ */
typedef struct am_run am_run_t;

/* Opens run_dir and validates it once, as report, merge and the Python module do:
 * summary.json against examples.safetensors (the size and CRC-32C recorded in
 * provenance.files, so a summary of another run is refused; N, T, L, H; the maps, pairs
 * and options listed against the tensors and the file's attnmap.pairs; every tensor's
 * name, dtype and shape; mask and lengths). AM_STATUS_BAD_INPUT names the file, the
 * tensor or field and the problem. */
AM_API am_status am_run_open(am_ctx_t *ctx, const char *run_dir, am_run_t **out);
AM_API void am_run_close(am_run_t *run);
AM_API const am_file_t *am_run_examples(const am_run_t *run); /* borrowed */
AM_API const char *am_run_summary(const am_run_t *run); /* summary.json's text, borrowed */
AM_API int am_run_map_count(const am_run_t *run);
AM_API const char *am_run_map_name(const am_run_t *run,
                                   int i); /* borrowed; NULL out of range */
AM_API int am_run_pair_count(const am_run_t *run);
AM_API const char *am_run_pair_name(const am_run_t *run, int i); /* "rollout~saliency.ig" */

/* ---- images: colormaps and PNG maps (docs/report.md) -------------------------------- */
typedef enum am_colormap {
  AM_COLORMAP_VIRIDIS = 0, /* non-negative values: matplotlib's viridis */
  AM_COLORMAP_MAGMA,       /* non-negative values: matplotlib's magma */
  AM_COLORMAP_RDBU_R, /* signed values: matplotlib's RdBu_r, negative blue, positive red */
  AM_COLORMAP_JET     /* image overlays as vit-explain draws them: matplotlib's jet */
} am_colormap;
typedef enum am_upsample { AM_UPSAMPLE_NEAREST = 0, AM_UPSAMPLE_BILINEAR } am_upsample;

/* "viridis", "magma", "RdBu_r", "jet"; NULL for other values. */
AM_API const char *am_colormap_name(am_colormap cmap);
/* The 8-bit colour of v between the limits as matplotlib draws it: entry
 * floor(256 (v - vmin) / (vmax - vmin)) of the 256-entry table, clipped to 0..255 (entry 0
 * when vmax <= vmin); NaN gives the NaN colour, grey 128,128,128, which no table holds. */
AM_API void am_colormap_rgb(am_colormap cmap, double v, double vmin, double vmax,
                            uint8_t rgb[3]);

typedef struct am_png_options {
  am_colormap colormap;
  double vmin, vmax;    /* NAN: from the finite values, [min(0,lo), hi] for viridis and
                           magma, [-m, m] with m = max |v| for RdBu_r */
  int scale;            /* each value becomes scale x scale pixels, 1..64 */
  am_upsample upsample; /* how the scale x scale pixels are filled */
  const char *quantity; /* what the values are; recorded in a tEXt chunk */
} am_png_options_t;

/* Viridis, automatic limits, scale 1, nearest, quantity "value". */
AM_API void am_png_options_init(am_png_options_t *opts);
/* Writes values [rows, cols] (row-major) as an 8-bit RGB PNG through the colormap, with
 * tEXt chunks attnmap.quantity, attnmap.colormap, attnmap.vmin, attnmap.vmax (the limits
 * used) and Software. Atomic: temporary name, then rename. */
AM_API am_status am_png_write_map(am_ctx_t *ctx, const char *path, const float *values,
                                  int rows, int cols, const am_png_options_t *opts);

/* ---- reports (docs/report.md) -------------------------------------------------------- */
typedef struct am_report_options {
  const char *baseline; /* run folder to compare against; NULL: no comparison */
  double drift;         /* drift threshold in pooled standard deviations (default 0.5) */
  int examples;         /* rows of the disagreement and misclassified tables (default 20) */
  int views;            /* examples given attention views (default 6); 0: none */
  int topk_heads;       /* heads named beside each grid (default 10) */
  const char *const *dataset; /* dataset paths to use instead of summary.json's; NULL */
  int ndataset;
  const char *out_dir; /* NULL: RUN/report */
  int stratify_length; /* 1: compare with the baseline within strata of similar length
                          (docs/report.md); reads both runs' examples.safetensors */
  /* overlays of maps on the dataset's images (tensor images, with a patch grid) */
  am_colormap overlay_colormap; /* non-negative maps; default viridis (jet: vit-explain) */
  double overlay_alpha;         /* weight of the map's colour, 0..1 (default 0.5) */
  int overlay_sheet;            /* worst-agreeing examples in the contact sheet (12) */
} am_report_options_t;

typedef struct am_report_result {
  int compared;    /* 1: a baseline was compared (comparison.json written) */
  int64_t drifted; /* head statistics and agreement metrics beyond the threshold */
  int views;       /* examples given attention views */
  char note[512]; /* why the dataset's tokens and views are missing; "" when they are not */
} am_report_result_t;

AM_API void am_report_options_init(am_report_options_t *opts);
/* Writes the report of run_dir into opts->out_dir (default RUN/report): index.html, its
 * PNGs under img/, and comparison.json with a baseline. Built under a temporary name and
 * renamed into place, replacing an older report. result may be NULL. A dataset that
 * cannot be found or no longer matches the run is not an error: the report says so. */
AM_API am_status am_run_report(am_ctx_t *ctx, const char *run_dir,
                               const am_report_options_t *opts, am_report_result_t *result);
/* Writes one example's map drawn over its image (the dataset's tensor images) as an RGB
 * PNG at path, as the report's overlays are drawn (docs/report.md, "Overlays"): the run's
 * patch grid without its prefix tokens, bilinearly upsampled to the image (half-pixel
 * centres), opts->overlay_colormap, opts->overlay_alpha; the dataset is opts->dataset or
 * the one summary.json records. opts may be NULL. */
AM_API am_status am_run_write_overlay(am_ctx_t *ctx, const char *run_dir, int64_t example,
                                      const char *map, const char *path,
                                      const am_report_options_t *opts);
/* Compares run_dir's summary.json against baseline_dir's: per head statistic (layer x
 * head) and per agreement pair and metric, the change of the mean in pooled standard
 * deviations; writes the comparison as JSON to json_path (NULL: not written) and the
 * number of entries beyond `drift` to *drifted. */
AM_API am_status am_run_compare(am_ctx_t *ctx, const char *run_dir,
                                const char *baseline_dir, double drift,
                                const char *json_path, int64_t *drifted);

/* ---- options by name, with their bounds (as zstd's ZSTD_CCtx_setParameter) ---------- */
typedef enum am_option_kind {
  AM_OPTION_INT = 0, /* an integer in [min, max] */
  AM_OPTION_REAL,    /* a finite number in [min, max], or [min, max) with max_open */
  AM_OPTION_CHOICE,  /* one of choices; with min < max also an integer in [min, max] */
  AM_OPTION_LIST,    /* a comma list of choices (methods) */
  AM_OPTION_FLAG,    /* "0" or "1" */
  AM_OPTION_TEXT     /* a string, borrowed: it must outlive the settings */
} am_option_kind;
typedef enum am_option_scope {
  AM_SCOPE_CTX = 0, /* am_settings_t.ctx (am_ctx_create) */
  AM_SCOPE_PLAN,    /* am_settings_t.plan (am_run_analyze, am_analyze_arrays) */
  AM_SCOPE_RUN,     /* am_settings_t.run (am_run_analyze, am_run_merge) */
  AM_SCOPE_REPORT   /* am_settings_t.report (am_run_report) */
} am_option_scope;

typedef struct am_option_info {
  const char *name; /* "topk"; the CLI spells it --topk, '_' as '-' */
  am_option_kind kind;
  am_option_scope scope;
  double min, max;      /* the range of INT and REAL values (and CHOICE integers) */
  int max_open;         /* 1: max itself is excluded */
  const char *choices;  /* CHOICE and LIST: "mean,max,min"; else NULL */
  const char *metavar;  /* "K", for help texts */
  const char *help;     /* one line */
  const char *fallback; /* the default, as text */
} am_option_info_t;

/* Every option: the settings of contexts, plans, runs and reports in one list. */
typedef struct am_settings {
  am_ctx_options_t ctx;
  am_plan_t plan;
  am_run_options_t run;
  am_report_options_t report;
} am_settings_t;

AM_API int am_option_count(void);
/* Static description of option i; NULL out of range. */
AM_API const am_option_info_t *am_option_get(int i);
/* The option called name ('-' read as '_'), or NULL. */
AM_API const am_option_info_t *am_option_find(const char *name);
/* The bounds of a numeric option (INT, REAL, CHOICE with integers).
 * AM_STATUS_INVALID_ARGUMENT for an unknown or non-numeric option. */
AM_API am_status am_option_bounds(const char *name, double *min, double *max);
/* Sets option name in whichever part of settings holds it, from its text ("5", "0.1",
 * "max", "rollout,flow"); the value is checked against the option's range or choices.
 * AM_STATUS_INVALID_ARGUMENT with "NAME 'VALUE': expected ..." in errbuf otherwise. */
AM_API am_status am_settings_set(am_settings_t *settings, const char *name,
                                 const char *value, char *errbuf, size_t errlen);
/* Fills settings with every default (am_plan_init, am_run_options_init, ...). */
AM_API void am_settings_init(am_settings_t *settings);

/* ---- for bindings: what a mirror of this header checks itself against ------------ */
/* sizeof a public struct by its typedef name ("am_plan_t"); 0 when unknown. */
AM_API size_t am_abi_sizeof(const char *type);
/* The value of a public constant by name ("AM_ARRAYS_STATS", "AM_TARGET_INDEX");
 * AM_STATUS_INVALID_ARGUMENT when unknown. */
AM_API am_status am_abi_constant(const char *name, long long *value);

/* ---- arrays in memory (language bindings: python/attnmap) ------------------------- */
/* One batch of B examples that the caller holds in memory, with the meanings of
 * docs/design.md §2.
 * Every pointer is borrowed for the duration of the call; every array is C-contiguous and
 * host memory, except attentions and attention_grads with device_pointers = 1. */
typedef struct am_arrays {
  int layers, batch, heads, tokens; /* L, B, H, T */
  am_dtype dtype;                /* of attentions and attention_grads: F32/F16/BF16/F64 */
  const void *const *attentions; /* [L] pointers, each to a [B,H,T,T] block (a stacked
                                    [L,B,H,T,T] array gives L pointers into it) */
  const void *const *attention_grads; /* [L] like attentions, or NULL */
  const void *attention_mask;      /* [B,T], 1 = real token, 0 = padding; NULL: all real */
  am_dtype attention_mask_dtype;   /* any integer type or BOOL */
  const void *special_tokens_mask; /* [B,T] or NULL */
  am_dtype special_tokens_mask_dtype;
  int saliency_count;                /* precomputed saliency maps: */
  const char *const *saliency_names; /* [saliency_count]: map "saliency.NAME" */
  const void *const *saliency;       /* [saliency_count] pointers to [B,T] */
  am_dtype saliency_dtype;           /* F32/F16/BF16/F64 */
  int embed_dim;                     /* D of inputs_embeds; 0: none */
  am_dtype embeds_dtype;             /* of both embedding arrays */
  const void *inputs_embeds;         /* [B,T,D] */
  const void *inputs_embeds_grads;   /* [B,T,D] */
  const char *grid;                  /* "14x14+1" (design.md §2 attnmap.grid) or NULL */
  int device_pointers; /* 1: attentions and attention_grads are CUDA device pointers, read
                          in place by the cuda backend; other backends refuse them */
  /* The long-context form (docs/long-context.md) in place of attentions and
   * attention_grads, which are then NULL: with queries set, per layer Q [B,H,T,d], K and V
   * [B,Hkv,T,d] (H a multiple of Hkv) and dO [B,H,T,d], all of dtype (F32/F16/BF16). */
  int kv_heads, head_dim;                    /* Hkv, d */
  const void *const *queries;                /* [L] pointers to [B,H,T,d], or NULL */
  const void *const *keys;                   /* [L] pointers to [B,Hkv,T,d] */
  const void *const *values;                 /* [L] pointers to [B,Hkv,T,d] */
  const void *const *attention_output_grads; /* [L] pointers to [B,H,T,d], or NULL */
  /* the attention's settings, a dataset's attnmap.attention (design.md §2) */
  double attn_scale;       /* > 0; 0: 1/sqrt(d) */
  int attn_causal;         /* 0 or 1 */
  int attn_sliding_window; /* 0: none */
  double attn_softcap;     /* 0: none */
} am_arrays_t;

/* What am_analyze_arrays writes for given arrays and plan: the names of the maps, the
 * agreement pairs, the agreement metrics ("jaccard@5") and the head statistics, in the
 * order of am_arrays_result_t's pointer arrays. */
typedef struct am_arrays_desc am_arrays_desc_t;
typedef enum am_arrays_part {
  AM_ARRAYS_MAPS = 0,
  AM_ARRAYS_PAIRS,
  AM_ARRAYS_METRICS,
  AM_ARRAYS_STATS /* 0 when head statistics are not computed */
} am_arrays_part;
enum {
  AM_ARRAYS_HAS_HEAD_IMPORTANCE = 1u << 0,
  AM_ARRAYS_HAS_ROLLOUT_ROWS = 1u << 1,
  AM_ARRAYS_HAS_GRAD_ROLLOUT_ROWS = 1u << 2,
};

/* Checks in against plan (the same checks as a dataset shard) and describes the outputs. */
AM_API am_status am_arrays_describe(am_ctx_t *ctx, const am_arrays_t *in,
                                    const am_plan_t *plan, am_arrays_desc_t **out);
AM_API void am_arrays_desc_destroy(am_arrays_desc_t *desc);
AM_API int am_arrays_desc_count(const am_arrays_desc_t *desc, am_arrays_part part);
AM_API const char *am_arrays_desc_name(const am_arrays_desc_t *desc, am_arrays_part part,
                                       int i); /* borrowed; NULL out of range */
AM_API unsigned
am_arrays_desc_flags(const am_arrays_desc_t *desc); /* AM_ARRAYS_HAS_* bits */

/* Caller-allocated outputs, F32 unless said; padded positions hold 0 as in a run folder. */
typedef struct am_arrays_result {
  float *const *maps;       /* [map count] pointers to [B,T]; a NULL entry is skipped */
  float *const *head_stats; /* [stat count] pointers to [B,L,H]; NaN for empty examples */
  float *head_importance;   /* [B,L,H] with AM_ARRAYS_HAS_HEAD_IMPORTANCE, or NULL */
  float *const *agreement;  /* [metric count] pointers to [B,P] (P = pair count) */
  float *rollout_rows;      /* [B,T,T] with AM_ARRAYS_HAS_ROLLOUT_ROWS, or NULL */
  float *grad_rollout_rows; /* [B,T,T] with AM_ARRAYS_HAS_GRAD_ROLLOUT_ROWS, or NULL */
  int32_t *lengths;         /* [B] valid tokens, or NULL */
} am_arrays_result_t;

/* Runs the plan's analyses on the arrays with ctx's backend, exactly as am_run_analyze
 * does for a dataset shard holding the same tensors, and fills out. Bad values come back
 * as AM_STATUS_BAD_INPUT naming the array, example, layer, head and position. */
AM_API am_status am_analyze_arrays(am_ctx_t *ctx, const am_arrays_t *in,
                                   const am_plan_t *plan, const am_arrays_result_t *out);

/* ---- live runs: a run folder written batch by batch (docs/live-runs.md) ------------- */
/* A model's evaluation set analysed while its tensors are in memory: batches described by
 * am_arrays_t go in, and the run folder of `attnmap analyze` comes out, bit for bit the one
 * am_run_analyze writes for the same batches stored as shards (one shard per batch with
 * the same metadata), with no attention tensor written to disk.
 *
 * What a live run declares up front: the number of examples and the padded length of its
 * outputs, because examples.safetensors is written once, row by row, and its header holds
 * them. Closing with fewer examples, or adding a batch past them, is an error. */
typedef struct am_stream_info {
  int64_t examples;   /* N the finished run holds (> 0) */
  int max_tokens;     /* T of the outputs: the largest padded length of any batch (a batch
                         may be shorter; as analyze pads shards to the largest T) */
  const char *model;  /* recorded as a dataset's "model" metadata is, or NULL */
  const char *grid;   /* "14x14+1" (a dataset's attnmap.grid), or NULL */
  const char *target; /* the target an exporter would record ("cls", "last", "mean" or an
                         index): used with plan.target_recorded exactly as a dataset's
                         recorded target is; or NULL */
} am_stream_info_t;

/* Per batch, beside its am_arrays_t: what a shard holds besides the tensors analysed.
 * Every array is host memory, C-contiguous, borrowed for the call (see am_run_writer_add
 * for device pointers). What the first batch gives, every batch must give. */
typedef struct am_batch_extras {
  const void *input_ids; /* [B,T] integers (each must fit in 32 bits), or NULL */
  am_dtype input_ids_dtype;
  const void *labels; /* [B] integers fitting in 32 bits, or NULL */
  am_dtype labels_dtype;
  const void *predictions; /* [B] as labels, or NULL */
  am_dtype predictions_dtype;
  /* Token strings (UTF-8) of the batch, or NULL: example b's are
   * tokens[token_offsets[b] .. token_offsets[b+1]), one per padded position (T) or one per
   * valid token, as a dataset's attnmap.tokens. They are kept in RUN/tokens.jsonl. */
  const char *const *tokens;
  const int64_t *token_offsets; /* [B+1], token_offsets[0] = 0 */
} am_batch_extras_t;

typedef struct am_run_writer am_run_writer_t;

/* Opens a live run into run_dir, built under "<run_dir>.partial" and renamed when closed
 * complete (the rules of am_run_analyze: an existing run_dir is replaced only with
 * opts->force and only when attnmap wrote it). With opts->resume, a partial folder left
 * by an interrupted live run with the same plan, options and info is continued:
 * *resume_from receives the number of examples already stored (checkpoints fall at batch
 * boundaries), which the caller skips; otherwise it is 0. A run_dir that is a finished
 * live run with this plan and info is left as it is: *resume_from = info->examples and
 * close does nothing (as am_run_analyze with resume). opts->checksums does not apply
 * (there are no input files). plan, opts and info are copied. */
AM_API am_status am_run_writer_open(am_ctx_t *ctx, const char *run_dir,
                                    const am_plan_t *plan, const am_run_options_t *opts,
                                    const am_stream_info_t *info, am_run_writer_t **out,
                                    int64_t *resume_from);
/* Analyses one batch and writes its rows. The first batch fixes the layout (which maps and
 * pairs); every later batch must carry the same inputs, L, H, dtype and saliency names
 * and T <= info.max_tokens, or AM_STATUS_BAD_INPUT. Any failure names the batch (0-based
 * over the run), the tensor and the problem, checkpoints the batches before it (they stay
 * resumable in the partial folder) and leaves the writer failed: later calls return that
 * failure; am_run_writer_abort, then a resume. extras may be NULL.
 * With the CUDA backend and in->device_pointers = 1 the batch is submitted to the device
 * and the call returns while it is computed: the arrays of a batch (device and host) must
 * then stay valid and unchanged until the next am_run_writer_add or am_run_writer_close
 * returns. With the CPU backend every array is consumed before the call returns. */
AM_API am_status am_run_writer_add(am_run_writer_t *w, const am_arrays_t *in,
                                   const am_batch_extras_t *extras);
/* Finishes the batches in flight, writes summary.json and renames the partial folder to
 * run_dir. Fewer examples than declared is AM_STATUS_INVALID_ARGUMENT, the partial folder
 * kept resumable. Frees w whatever it returns; NULL returns AM_STATUS_OK. */
AM_API am_status am_run_writer_close(am_run_writer_t *w);
/* Frees w without finishing: the partial folder stays as the last checkpoint left it, for
 * a resume. NULL does nothing. */
AM_API void am_run_writer_abort(am_run_writer_t *w);

#ifdef __cplusplus
}
#endif
#endif /* ATTNMAP_H */
