/* dataset.c — opens a dataset (docs/design.md §2): one .safetensors file, a directory of
 * shards
 * read in name order, or .npy files named after their roles; checks every shard against
 * the first (L, H, roles) and serves per-example views. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ctx.h"
#include "core/half.h"
#include "dataset/dataset.h"
#include "dataset/shard.h"
#include "io/file.h"

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static am_shard_t *add_shard(am_dataset_t *ds, const char *path) {
  am_shard_t *grown = realloc(ds->shards, (size_t)(ds->nshards + 1) * sizeof *grown);
  if (!grown)
    return NULL;
  ds->shards = grown;
  am_shard_t *sh = &ds->shards[ds->nshards];
  memset(sh, 0, sizeof *sh);
  if (!(sh->path = strdup(path)))
    return NULL;
  ds->nshards++;
  return sh;
}

static am_status add_file(am_ctx_t *ctx, am_shard_t *sh, const char *path) {
  am_file_t **grown = realloc(sh->files, (size_t)(sh->nfiles + 1) * sizeof *grown);
  if (!grown)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  sh->files = grown;
  am_file_t *f = NULL;
  am_status st = am_file_open(ctx, path, &f);
  if (st != AM_STATUS_OK)
    return st;
  sh->files[sh->nfiles++] = f;
  struct stat sb;
  if (stat(path, &sb) == 0)
    sh->bytes += (uint64_t)sb.st_size;
  return AM_STATUS_OK;
}

/* Lists the files of dir ending in suffix, sorted by name. */
static am_status list_dir(am_ctx_t *ctx, const char *dir, const char *suffix, char ***out,
                          int *n) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open directory: %s", dir,
                   strerror(errno));
  struct dirent *e;
  am_status st = AM_STATUS_OK;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || !ends_with(e->d_name, suffix))
      continue;
    char **grown = realloc(*out, (size_t)(*n + 1) * sizeof *grown);
    size_t len = strlen(dir) + strlen(e->d_name) + 2;
    char *full = malloc(len);
    if (!grown || !full) {
      free(full);
      if (grown)
        *out = grown;
      st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
      break;
    }
    *out = grown;
    snprintf(full, len, "%s/%s", dir, e->d_name);
    (*out)[(*n)++] = full;
  }
  closedir(d);
  if (st == AM_STATUS_OK && *n > 1)
    qsort(*out, (size_t)*n, sizeof **out, cmp_str);
  return st;
}

static void free_list(char **list, int n) {
  for (int i = 0; i < n; i++)
    free(list[i]);
  free(list);
}

/* A directory: its *.safetensors are shards; without them its *.npy files make one. */
static am_status add_directory(am_ctx_t *ctx, am_dataset_t *ds, const char *dir) {
  char **files = NULL;
  int n = 0;
  am_status st = list_dir(ctx, dir, ".safetensors", &files, &n);
  if (st == AM_STATUS_OK && n > 0) {
    for (int i = 0; i < n && st == AM_STATUS_OK; i++) {
      am_shard_t *sh = add_shard(ds, files[i]);
      st = sh ? add_file(ctx, sh, files[i]) : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "oom");
    }
  } else if (st == AM_STATUS_OK) {
    free_list(files, n);
    files = NULL;
    st = list_dir(ctx, dir, ".npy", &files, &n);
    if (st == AM_STATUS_OK && n == 0)
      st =
          am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: no .safetensors or .npy files found", dir);
    am_shard_t *sh = st == AM_STATUS_OK ? add_shard(ds, dir) : NULL;
    if (st == AM_STATUS_OK && !sh)
      st = am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < n && st == AM_STATUS_OK; i++)
      st = add_file(ctx, sh, files[i]);
  }
  free_list(files, n);
  return st;
}

static am_status discover(am_ctx_t *ctx, am_dataset_t *ds, const char *const *paths,
                          int npaths) {
  int npy_shard = -1; /* .npy files named directly form one shard */
  for (int i = 0; i < npaths; i++) {
    struct stat sb;
    if (stat(paths[i], &sb) != 0) /* a permission problem is not a missing file */
      return errno == ENOENT ? am_fail(ctx, AM_STATUS_BAD_INPUT,
                                       "%s: no such file or directory", paths[i])
                             : am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: cannot open: %s",
                                       paths[i], strerror(errno));
    am_status st;
    if (S_ISDIR(sb.st_mode)) {
      st = add_directory(ctx, ds, paths[i]);
    } else if (ends_with(paths[i], ".npy")) {
      if (npy_shard < 0) {
        if (!add_shard(ds, paths[i]))
          return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
        npy_shard = ds->nshards - 1;
      }
      st = add_file(ctx, &ds->shards[npy_shard], paths[i]);
    } else {
      am_shard_t *sh = add_shard(ds, paths[i]);
      st = sh ? add_file(ctx, sh, paths[i]) : am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "oom");
    }
    if (st != AM_STATUS_OK)
      return st;
  }
  if (ds->nshards == 0)
    return am_fail(ctx, AM_STATUS_INVALID_ARGUMENT, "no dataset given");
  return AM_STATUS_OK;
}

static unsigned shard_roles(const am_shard_t *sh) {
  unsigned r = AM_ROLE_ATTENTIONS;
  /* the long-context form holds the attention and its gradient too, as Q, K, V and dO */
  r |= sh->grad.layer || sh->lc.dout.layer ? AM_ROLE_ATTENTION_GRADS : 0;
  r |= sh->mask ? AM_ROLE_ATTENTION_MASK : 0;
  r |= sh->special ? AM_ROLE_SPECIAL_TOKENS_MASK : 0;
  r |= sh->ids ? AM_ROLE_INPUT_IDS : 0;
  r |= sh->embeds ? AM_ROLE_EMBEDS : 0;
  r |= sh->labels ? AM_ROLE_LABELS : 0;
  r |= sh->predictions ? AM_ROLE_PREDICTIONS : 0;
  r |= sh->tokens ? AM_ROLE_TOKENS : 0;
  return r;
}

const char *am_role_name(unsigned role) {
  static const char *names[] = {"attentions",          "attention_grads", "attention_mask",
                                "special_tokens_mask", "input_ids",       "saliency",
                                "inputs_embeds",       "labels",          "predictions",
                                "attnmap.tokens"};
  for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
    if (role == (1u << i))
      return names[i];
  return NULL;
}

/* generation_start and step_attention_grads in every shard or in none. */
static am_status same_steps(am_ctx_t *ctx, const am_dataset_t *ds, const am_shard_t *sh) {
  const char *name = NULL;
  int here = 0;
  if ((sh->gen_start != NULL) != ds->has_gen_start) {
    name = "generation_start";
    here = sh->gen_start != NULL;
  } else if ((sh->step_grad.layer != NULL) != ds->has_step_grads) {
    name = "step_attention_grads";
    here = sh->step_grad.layer != NULL;
  }
  if (!name)
    return AM_STATUS_OK;
  return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: %s here but %s in %s", sh->path,
                 name, here ? "present" : "missing", here ? "missing" : "present",
                 ds->shards[0].path);
}

/* Checks shard s against the first shard and binds its saliency tensors. */
static am_status check_shard(am_ctx_t *ctx, am_dataset_t *ds, int s) {
  am_shard_t *sh = &ds->shards[s];
  int L, H;
  am_status st = am_shard_find_roles(ctx, sh, &L, &H);
  if (st == AM_STATUS_OK)
    st = am_shard_find_steps(ctx, sh, L, H);
  if (st == AM_STATUS_OK)
    st = am_shard_read_metadata(ctx, sh);
  if (st != AM_STATUS_OK)
    return st;
  const am_source_t *first = sh->long_form ? &sh->lc.q.source[0] : &sh->att.source[0];
  if (s == 0) {
    ds->L = L;
    ds->H = H;
    ds->long_form = sh->long_form;
    ds->dtype = sh->long_form ? sh->lc.q.layer[0]->dtype : sh->att.layer[0]->dtype;
    ds->roles = shard_roles(sh);
    if ((st = am_shard_saliency_names(ctx, sh, &ds->saliency_names, &ds->nsaliency)))
      return st;
    if (ds->nsaliency)
      ds->roles |= AM_ROLE_SALIENCY;
    ds->embed_dim = sh->embeds ? (int)sh->embeds->shape[2] : 0;
    ds->has_gen_start = sh->gen_start != NULL;
    ds->has_step_grads = sh->step_grad.layer != NULL;
  } else if ((st = same_steps(ctx, ds, sh))) {
    return st;
  } else if (L != ds->L || H != ds->H) {
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: %d layers x %d heads, but %s has %d x %d", sh->path,
                   first->name, L, H, ds->shards[0].path, ds->L, ds->H);
  } else if ((st = am_long_same_as_first(ctx, ds, sh))) {
    return st;
  } else {
    unsigned diff = (shard_roles(sh) ^ ds->roles) & ~AM_ROLE_SALIENCY;
    if (diff) {
      unsigned bit = diff & -diff;
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: %s here but %s in %s",
                     sh->path, am_role_name(bit),
                     (shard_roles(sh) & bit) ? "present" : "missing",
                     (shard_roles(sh) & bit) ? "missing" : "present", ds->shards[0].path);
    }
    if (sh->embeds && sh->embeds->shape[2] != ds->embed_dim)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor inputs_embeds: D=%lld differs from the first shard's %d",
                     sh->path, (long long)sh->embeds->shape[2], ds->embed_dim);
  }
  if ((st = am_shard_find_saliency(ctx, sh, ds->saliency_names, ds->nsaliency)) ||
      (st = am_cross_same_as_first(ctx, ds, s)))
    return st;
  for (int i = 0; s > 0 && i < ds->nsaliency; i++)
    if ((sh->saliency_S[i] > 0) != (ds->shards[0].saliency_S[i] > 0))
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: %s here but %s in %s",
                     sh->path, sh->saliency_src[i].name,
                     sh->saliency_S[i] ? "per step [B,S,T]" : "[B,T]",
                     sh->saliency_S[i] ? "[B,T]" : "per step [B,S,T]", ds->shards[0].path);
  sh->first = ds->N;
  ds->N += sh->B;
  if (sh->B > 0 && sh->T > ds->Tmax) /* no data backs the T of an empty shard */
    ds->Tmax = sh->T;
  return AM_STATUS_OK;
}

/* The target the exporter recorded ("target" of the attnmap.exporter JSON) in every shard
 * that records one; shards that disagree were made by different exports, which analyze
 * must not silently mix. */
static am_status read_recorded_target(am_ctx_t *ctx, am_dataset_t *ds) {
  for (int s = 0; s < ds->nshards; s++)
    for (int f = 0; f < ds->shards[s].nfiles; f++) {
      const am_file_t *file = ds->shards[s].files[f];
      const char *text = am_file_metadata(file, "attnmap.exporter");
      if (!text)
        continue;
      json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
      json_t *t = json_object_get(root, "target");
      char value[32] = "";
      if (json_is_string(t) && strlen(json_string_value(t)) < sizeof value)
        snprintf(value, sizeof value, "%s", json_string_value(t));
      else if (json_is_integer(t))
        snprintf(value, sizeof value, "%lld", (long long)json_integer_value(t));
      json_decref(root);
      if (!value[0])
        continue; /* no target recorded (or not one attnmap reads): nothing to take */
      if (!ds->target) {
        if (!(ds->target = strdup(value)) ||
            !(ds->target_file = strdup(am_file_path(file))))
          return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
      } else if (strcmp(ds->target, value) != 0)
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: __metadata__ attnmap.exporter: target '%s' contradicts target "
                       "'%s' recorded in %s (shards of different exports; analyse them "
                       "separately)",
                       am_file_path(file), value, ds->target, ds->target_file);
    }
  return AM_STATUS_OK;
}

static am_status read_dataset_metadata(am_ctx_t *ctx, am_dataset_t *ds) {
  am_status st = read_recorded_target(ctx, ds);
  if (st != AM_STATUS_OK)
    return st;
  const am_shard_t *sh = &ds->shards[0];
  for (int f = 0; f < sh->nfiles; f++) {
    const char *model = am_file_metadata(sh->files[f], "model");
    const char *grid = am_file_metadata(sh->files[f], "attnmap.grid");
    if (model && !ds->model && !(ds->model = strdup(model)))
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    if (grid && !ds->grid) {
      if (am_grid_parse(grid, &ds->grid_parsed) != 0)
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: __metadata__ attnmap.grid: '%s' is not ROWSxCOLS[+PREFIX]",
                       am_file_path(sh->files[f]), grid);
      if (!(ds->grid = strdup(grid)))
        return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    }
  }
  return AM_STATUS_OK;
}

am_status am_dataset_open(am_ctx_t *ctx, const char *const *paths, int npaths,
                          am_dataset_t **out) {
  *out = NULL;
  am_clear_error(ctx);
  am_dataset_t *ds = calloc(1, sizeof *ds);
  if (!ds)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  am_status st = discover(ctx, ds, paths, npaths);
  for (int s = 0; st == AM_STATUS_OK && s < ds->nshards; s++)
    st = check_shard(ctx, ds, s);
  if (st == AM_STATUS_OK)
    st = read_dataset_metadata(ctx, ds);
  if (st != AM_STATUS_OK) {
    am_dataset_close(ds);
    return st;
  }
  *out = ds;
  return AM_STATUS_OK;
}

void am_dataset_close(am_dataset_t *ds) {
  if (!ds)
    return;
  for (int s = 0; s < ds->nshards; s++) {
    am_shard_t *sh = &ds->shards[s];
    for (int f = 0; f < sh->nfiles; f++)
      am_file_close(sh->files[f]);
    free(sh->files);
    free(sh->att.layer);
    free(sh->att.source);
    free(sh->grad.layer);
    free(sh->grad.source);
    am_layers_t *lc[4] = {&sh->lc.q, &sh->lc.k, &sh->lc.v, &sh->lc.dout};
    for (int k = 0; k < 4; k++) {
      free(lc[k]->layer);
      free(lc[k]->source);
    }
    free(sh->saliency);
    free(sh->saliency_src);
    am_shard_cross_free(sh);
    free(sh->saliency_S);
    free(sh->step_grad.layer);
    free(sh->step_grad.source);
    json_decref(sh->tokens);
    json_decref(sh->ex_ids);
    free(sh->path);
  }
  free(ds->shards);
  free_list(ds->saliency_names, ds->nsaliency);
  free(ds->model);
  free(ds->grid);
  free(ds->target);
  free(ds->target_file);
  free(ds);
}

void am_dataset_get_info(const am_dataset_t *ds, am_dataset_info_t *info) {
  memset(info, 0, sizeof *info);
  info->examples = ds->N;
  info->layers = ds->L;
  info->heads = ds->H;
  info->max_tokens = ds->Tmax;
  info->shards = ds->nshards;
  info->roles = ds->roles;
  info->dtype = ds->dtype;
  info->saliency_count = ds->nsaliency;
  info->model = ds->model;
  info->grid = ds->grid;
  info->target = ds->target;
  info->target_file = ds->target_file;
}

int am_dataset_shard_count(const am_dataset_t *ds) { return ds->nshards; }
const char *am_dataset_shard_path(const am_dataset_t *ds, int i) {
  return ds->shards[i].path;
}
int am_dataset_shard_file_count(const am_dataset_t *ds, int shard) {
  return ds->shards[shard].nfiles;
}
const am_file_t *am_dataset_shard_file(const am_dataset_t *ds, int shard, int i) {
  return ds->shards[shard].files[i];
}
const char *am_dataset_saliency_name(const am_dataset_t *ds, int i) {
  return ds->saliency_names[i];
}

const void *am_layers_example(const am_layers_t *ls, const am_shard_t *sh, int H, int l,
                              int64_t b) {
  if (!ls->layer)
    return NULL;
  const am_tensor_t *t = ls->layer[l];
  size_t es = am_dtype_size(t->dtype);
  size_t per_ex = (size_t)H * (size_t)sh->T * (size_t)sh->T * es;
  size_t row = ls->stacked ? (size_t)l * (size_t)sh->B + (size_t)b : (size_t)b;
  return (const unsigned char *)t->data + row * per_ex;
}

const void *am_long_example(const am_layers_t *ls, const am_shard_t *sh, int heads, int d,
                            int l, int64_t b) {
  if (!ls->layer)
    return NULL;
  const am_tensor_t *t = ls->layer[l];
  size_t per_ex = (size_t)heads * (size_t)sh->T * (size_t)d * am_dtype_size(t->dtype);
  return (const unsigned char *)t->data + (size_t)b * per_ex;
}

int am_shard_valid_positions(const am_shard_t *sh, int64_t b, int32_t *idx) {
  int n = 0;
  for (int p = 0; p < sh->T; p++)
    if (!sh->mask || am_load_int(sh->mask->data, sh->mask->dtype, b * sh->T + p))
      idx[n++] = p;
  return n;
}

int am_shard_is_special(const am_shard_t *sh, int64_t b, int p) {
  return sh->special && am_load_int(sh->special->data, sh->special->dtype, b * sh->T + p);
}

int am_grid_parse(const char *text, am_grid_t *grid) {
  int r = 0, c = 0, p = 0, used = 0;
  if (sscanf(text, "%dx%d%n", &r, &c, &used) != 2)
    return -1;
  if (text[used] == '+') {
    int more = 0;
    if (sscanf(text + used + 1, "%d%n", &p, &more) != 1)
      return -1;
    used += 1 + more;
  }
  if (text[used] != '\0' || r < 1 || c < 1 || p < 0 || r > 4096 || c > 4096 || p > 4096)
    return -1;
  *grid = (am_grid_t){r, c, p};
  return 0;
}

am_status am_shard_check_unchanged(am_ctx_t *ctx, const am_dataset_t *ds, int s) {
  const am_shard_t *sh = &ds->shards[s];
  for (int f = 0; f < sh->nfiles; f++) {
    am_status st = am_file_check_unchanged(ctx, sh->files[f]);
    if (st != AM_STATUS_OK)
      return st;
  }
  return AM_STATUS_OK;
}

/* madvise(advice) on the whole pages of the attention and gradient rows [row0, row0+n)
 * of shard s (the neighbours' rows may share the edge pages: those are left alone). */
static void advise_rows(const am_dataset_t *ds, int s, int64_t row0, int64_t n,
                        int advice) {
  const am_shard_t *sh = &ds->shards[s];
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  if (n <= 0 || row0 < 0 || row0 + n > sh->B || page == 0 || (page & (page - 1)))
    return;
  const am_layers_t *sets[6] = {&sh->att,  &sh->grad, &sh->lc.q,
                                &sh->lc.k, &sh->lc.v, &sh->lc.dout};
  for (int k = 0; k < 6; k++)
    for (int l = 0; sets[k]->layer && l < ds->L; l++) {
      /* per example: [H,T,T] of the matrix form, [H|Hkv,T,d] of the long-context form */
      int heads = k == 3 || k == 4 ? sh->lc.Hkv : ds->H, inner = k < 2 ? sh->T : sh->lc.d;
      size_t bytes = (size_t)n * (size_t)heads * (size_t)sh->T * (size_t)inner *
                     am_dtype_size(sets[k]->layer[l]->dtype);
      uintptr_t lo =
          (uintptr_t)(k < 2 ? am_layers_example(sets[k], sh, ds->H, l, row0)
                            : am_long_example(sets[k], sh, heads, sh->lc.d, l, row0));
      uintptr_t start = (lo + page - 1) & ~(page - 1), end = (lo + bytes) & ~(page - 1);
      if (end > start)
        madvise((void *)start, end - start, advice);
    }
}

void am_shard_release_rows(const am_dataset_t *ds, int s, int64_t row0, int64_t n) {
  advise_rows(ds, s, row0, n, MADV_DONTNEED);
}

void am_shard_prefetch_rows(const am_dataset_t *ds, int s, int64_t row0, int64_t n) {
  advise_rows(ds, s, row0, n, MADV_WILLNEED);
}
