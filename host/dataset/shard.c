/* shard.c — finds the tensors of one shard by name (docs/design.md §2 table) and checks
 * their
 * shapes and dtypes against each other. Every failure names the file, tensor and problem.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "core/half.h"
#include "dataset/dataset.h"
#include "dataset/shard.h"
#include "io/file.h"

static int is_float(am_dtype d) {
  return d == AM_DTYPE_F32 || d == AM_DTYPE_F16 || d == AM_DTYPE_BF16 || d == AM_DTYPE_F64;
}

static int is_int(am_dtype d) {
  return d == AM_DTYPE_I8 || d == AM_DTYPE_I16 || d == AM_DTYPE_I32 || d == AM_DTYPE_I64 ||
         d == AM_DTYPE_U8 || d == AM_DTYPE_U16 || d == AM_DTYPE_U32 || d == AM_DTYPE_U64 ||
         d == AM_DTYPE_BOOL;
}

void am_shape_text(const am_tensor_t *t, char *buf, size_t len) {
  size_t k = (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < t->ndim && k < len; i++)
    k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "," : "", (long long)t->shape[i]);
  if (k < len)
    snprintf(buf + k, len - k, "]");
}

/* Parses "<prefix>.<int>" → the int; -1 for a name of another role; -2 for "<prefix>."
 * followed by anything but a layer number below AM_MAX_LAYER_HEADS in canonical decimal
 * ("attentions.01", "attentions. 1", "attentions.100001"): refused, never ignored. */
static long layer_suffix(const char *name, const char *prefix) {
  size_t n = strlen(prefix);
  if (strncmp(name, prefix, n) != 0 || name[n] != '.')
    return -1;
  const char *d = name + n + 1;
  if (!isdigit((unsigned char)d[0]) || (d[0] == '0' && d[1] != '\0'))
    return -2;
  char *end = NULL;
  errno = 0;
  long v = strtol(d, &end, 10);
  if (*end != '\0' || errno || v >= AM_MAX_LAYER_HEADS)
    return -2;
  return v;
}

am_status am_shard_collect_layers(am_ctx_t *ctx, am_shard_t *sh, const char *role,
                                  am_layers_t *out, int *L_out) {
  const am_tensor_t *stacked = NULL;
  am_source_t stacked_src = {0};
  int maxl = -1, count = 0;
  for (int f = 0; f < sh->nfiles; f++)
    for (int i = 0; i < am_file_tensor_count(sh->files[f]); i++) {
      const char *name = am_file_tensor_name(sh->files[f], i);
      if (strcmp(name, role) == 0) {
        stacked = am_file_tensor(sh->files[f], i);
        stacked_src = (am_source_t){am_file_path(sh->files[f]), name};
      } else {
        long l = layer_suffix(name, role);
        if (l == -2)
          return am_fail(ctx, AM_STATUS_BAD_INPUT,
                         "%s: tensor %s: not a layer of %s (%s.N with N in 0..%d, no "
                         "leading zeros)",
                         am_file_path(sh->files[f]), name, role, role,
                         AM_MAX_LAYER_HEADS - 1);
        if (l >= 0) {
          count++;
          if (l > maxl)
            maxl = (int)l;
        }
      }
    }
  *L_out = 0;
  if (!stacked && count == 0)
    return AM_STATUS_OK;
  if (stacked && count)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: both stacked and per-layer (%s.N) tensors are present",
                   sh->path, role, role);
  if (stacked && (stacked->ndim != 5 || stacked->shape[0] < 1))
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: expected 5 dimensions [L,B,H,T,T] with L >= 1, found %d",
                   stacked_src.path, role, stacked->ndim);
  if (stacked && stacked->shape[0] > AM_MAX_LAYER_HEADS)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: %lld layers, more than %d",
                   stacked_src.path, role, (long long)stacked->shape[0],
                   AM_MAX_LAYER_HEADS);
  int L = stacked ? (int)stacked->shape[0] : maxl + 1;
  if (!stacked && count != L)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s.N: layers must be numbered 0..%d without gaps or "
                   "duplicates (found %d tensors)",
                   sh->path, role, maxl, count);
  out->layer = calloc((size_t)L, sizeof *out->layer);
  out->source = calloc((size_t)L, sizeof *out->source);
  if (!out->layer || !out->source)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  out->stacked = stacked != NULL;
  for (int f = 0; f < sh->nfiles; f++)
    for (int i = 0; i < am_file_tensor_count(sh->files[f]); i++) {
      const char *name = am_file_tensor_name(sh->files[f], i);
      long l = stacked ? -1 : layer_suffix(name, role);
      if (l >= 0 && out->layer[l])
        return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: layer %ld appears twice",
                       am_file_path(sh->files[f]), name, l);
      if (l >= 0) {
        out->layer[l] = am_file_tensor(sh->files[f], i);
        out->source[l] = (am_source_t){am_file_path(sh->files[f]), name};
      }
    }
  if (stacked)
    for (int l = 0; l < L; l++) {
      out->layer[l] = stacked;
      out->source[l] = stacked_src;
    }
  *L_out = L;
  return AM_STATUS_OK;
}

/* Checks that all layers share dtype and [B,H,T,T]; fills B, H, T. */
static am_status check_layers(am_ctx_t *ctx, const am_layers_t *ls, int L, int64_t *B,
                              int64_t *H, int64_t *T) {
  char found[128];
  for (int l = 0; l < L; l++) {
    const am_tensor_t *t = ls->layer[l];
    const int64_t *s = ls->stacked ? t->shape + 1 : t->shape;
    int nd = ls->stacked ? t->ndim - 1 : t->ndim;
    am_shape_text(t, found, sizeof found);
    if (nd != 4)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: expected [B,H,T,T] per layer, found %s",
                     ls->source[l].path, ls->source[l].name, found);
    if (!is_float(t->dtype))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: dtype %s is not a float type (F32, F16, BF16, F64)",
                     ls->source[l].path, ls->source[l].name, am_dtype_name(t->dtype));
    if (s[2] != s[3])
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: query and key lengths differ in %s",
                     ls->source[l].path, ls->source[l].name, found);
    if (s[0] < 0 || s[1] < 1)
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: shape %s has no heads",
                     ls->source[l].path, ls->source[l].name, found);
    if (s[0] > 0 && s[2] < 1) /* no bytes back such examples: 2e7 of them cost a minute */
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: shape %s claims %lld examples of T = 0 tokens; every "
                     "example needs at least one position",
                     ls->source[l].path, ls->source[l].name, found, (long long)s[0]);
    if (s[2] > (1 << 20) || s[1] > (1 << 16))
      return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: shape %s is too large",
                     ls->source[l].path, ls->source[l].name, found);
    if (l == 0) {
      *B = s[0];
      *H = s[1];
      *T = s[2];
    } else if (s[0] != *B || s[1] != *H || s[2] != *T || t->dtype != ls->layer[0]->dtype) {
      return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s: tensor %s: shape %s %s differs from layer 0's [%lld,%lld,%lld,%lld] %s",
          ls->source[l].path, ls->source[l].name, found, am_dtype_name(t->dtype),
          (long long)*B, (long long)*H, (long long)*T, (long long)*T,
          am_dtype_name(ls->layer[0]->dtype));
    }
  }
  return AM_STATUS_OK;
}

/* Finds a tensor by exact name in any of the shard's files; src borrows the file's own
 * strings, so it outlives the caller's name buffer. */
static const am_tensor_t *find(const am_shard_t *sh, const char *name, am_source_t *src) {
  for (int f = 0; f < sh->nfiles; f++)
    for (int i = 0; i < am_file_tensor_count(sh->files[f]); i++)
      if (strcmp(am_file_tensor_name(sh->files[f], i), name) == 0) {
        if (src)
          *src = (am_source_t){am_file_path(sh->files[f]),
                               am_file_tensor_name(sh->files[f], i)};
        return am_file_tensor(sh->files[f], i);
      }
  return NULL;
}

const am_tensor_t *am_shard_tensor(const am_shard_t *sh, const char *name,
                                   am_source_t *src) {
  return find(sh, name, src);
}

/* Checks an optional per-example tensor: dims {B} or {B,T}; kind 'i' int, 'f' float. */
static am_status check_aux(am_ctx_t *ctx, const am_shard_t *sh, const char *name,
                           const am_tensor_t **out, int ndim, char kind) {
  am_source_t src = {0};
  const am_tensor_t *t = find(sh, name, &src);
  *out = t;
  if (!t)
    return AM_STATUS_OK;
  char found[128];
  am_shape_text(t, found, sizeof found);
  int ok = t->ndim == ndim && t->shape[0] == sh->B && (ndim == 1 || t->shape[1] == sh->T);
  if (!ok && ndim == 1)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: expected shape [B]=[%lld], found %s", src.path, name,
                   (long long)sh->B, found);
  if (!ok)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensor %s: expected shape [B,T]=[%lld,%d] as the attentions, found %s",
        src.path, name, (long long)sh->B, sh->T, found);
  if ((kind == 'i' && !is_int(t->dtype)) || (kind == 'f' && !is_float(t->dtype)))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: dtype %s is not %s", src.path,
                   name, am_dtype_name(t->dtype),
                   kind == 'i' ? "an integer or bool type" : "a float type");
  return AM_STATUS_OK;
}

/* Masks hold only 0 and 1. */
static am_status check_binary(am_ctx_t *ctx, const am_shard_t *sh, const char *name,
                              const am_tensor_t *t) {
  if (!t)
    return AM_STATUS_OK;
  am_source_t src = {0};
  find(sh, name, &src);
  int64_t n = sh->B * sh->T;
  for (int64_t i = 0; i < n; i++) {
    int64_t v = am_load_int(t->data, t->dtype, i);
    if (v != 0 && v != 1)
      return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s: tensor %s: value %lld at example %lld, position %lld is not 0 or 1",
          src.path, name, (long long)v, (long long)(i / sh->T), (long long)(i % sh->T));
  }
  return AM_STATUS_OK;
}

/* Labels and predictions are stored as I32: a value outside it is refused, never cast. */
static am_status check_int32(am_ctx_t *ctx, const am_shard_t *sh, const char *name,
                             const am_tensor_t *t) {
  am_source_t src = {0};
  find(sh, name, &src);
  for (int64_t b = 0; t && b < sh->B; b++) {
    int64_t v = am_load_int(t->data, t->dtype, b);
    if (v < INT32_MIN || v > INT32_MAX)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: value %lld at example %lld does not fit in 32 bits",
                     src.path, name, (long long)v, (long long)b);
  }
  return AM_STATUS_OK;
}

/* attentions and attention_grads: the matrix form. */
static am_status find_matrix_form(am_ctx_t *ctx, am_shard_t *sh, int La, int *L, int *H) {
  int Lg = 0;
  int64_t B, Hh, T, Bg, Hg, Tg;
  am_status st;
  if (La == 0)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor attentions: not found (expected 'attentions' [L,B,H,T,T] or "
                   "'attentions.0' ... [B,H,T,T])",
                   sh->path);
  if ((st = check_layers(ctx, &sh->att, La, &B, &Hh, &T)) != AM_STATUS_OK)
    return st;
  if ((int64_t)La * Hh > AM_MAX_LAYER_HEADS)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: %d layers x %lld heads, more than %d heads in all",
                   sh->att.source[0].path, sh->att.source[0].name, La, (long long)Hh,
                   AM_MAX_LAYER_HEADS);
  sh->B = B;
  sh->T = (int)T;
  *L = La;
  *H = (int)Hh;
  if ((st = am_shard_collect_layers(ctx, sh, "attention_grads", &sh->grad, &Lg)) !=
      AM_STATUS_OK)
    return st;
  if (Lg) {
    if ((st = check_layers(ctx, &sh->grad, Lg, &Bg, &Hg, &Tg)) != AM_STATUS_OK)
      return st;
    if (Lg != La || Bg != B || Hg != Hh || Tg != T ||
        sh->grad.layer[0]->dtype != sh->att.layer[0]->dtype)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor attention_grads: %d layers of [%lld,%lld,%lld,%lld] %s do "
                     "not match attentions' %d layers of [%lld,%lld,%lld,%lld] %s",
                     sh->grad.source[0].path, Lg, (long long)Bg, (long long)Hg,
                     (long long)Tg, (long long)Tg, am_dtype_name(sh->grad.layer[0]->dtype),
                     La, (long long)B, (long long)Hh, (long long)T, (long long)T,
                     am_dtype_name(sh->att.layer[0]->dtype));
  }
  return AM_STATUS_OK;
}

am_status am_shard_find_roles(am_ctx_t *ctx, am_shard_t *sh, int *L, int *H) {
  int La = 0, Lq = 0;
  am_status st = am_shard_collect_layers(ctx, sh, "attentions", &sh->att, &La);
  if (st == AM_STATUS_OK)
    st = am_shard_collect_layers(ctx, sh, "queries", &sh->lc.q, &Lq);
  if (st != AM_STATUS_OK)
    return st;
  if (La && Lq) /* DESIGN.md allows one form per layer; one per dataset is read so far */
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %s: the dataset holds both the matrix form (attentions) and "
                   "the long-context form (queries/keys/values); store one of them",
                   sh->lc.q.source[0].path, sh->lc.q.source[0].name);
  st = Lq ? am_shard_find_long(ctx, sh, Lq, L, H) : find_matrix_form(ctx, sh, La, L, H);
  if (st != AM_STATUS_OK)
    return st;
  find(sh, "attention_mask", &sh->mask_src);
  find(sh, "special_tokens_mask", &sh->special_src);
  if ((st = check_aux(ctx, sh, "attention_mask", &sh->mask, 2, 'i')) ||
      (st = check_aux(ctx, sh, "special_tokens_mask", &sh->special, 2, 'i')) ||
      (st = check_aux(ctx, sh, "input_ids", &sh->ids, 2, 'i')) ||
      (st = check_aux(ctx, sh, "labels", &sh->labels, 1, 'i')) ||
      (st = check_aux(ctx, sh, "predictions", &sh->predictions, 1, 'i')) ||
      (st = check_int32(ctx, sh, "labels", sh->labels)) ||
      (st = check_int32(ctx, sh, "predictions", sh->predictions)) ||
      (st = check_binary(ctx, sh, "attention_mask", sh->mask)) ||
      (st = check_binary(ctx, sh, "special_tokens_mask", sh->special)) ||
      (st = am_shard_find_images(ctx, sh)) || (st = am_shard_find_embeds(ctx, sh)))
    return st;
  return am_shard_find_cross(ctx, sh, *L, *H);
}

am_status am_shard_find_embeds(am_ctx_t *ctx, am_shard_t *sh) {
  am_source_t se = {0}, sg = {0};
  sh->embeds = find(sh, "inputs_embeds", &se);
  sh->embeds_grads = find(sh, "inputs_embeds_grads", &sg);
  sh->embeds_src = se;
  if (!sh->embeds && !sh->embeds_grads)
    return AM_STATUS_OK;
  if (!sh->embeds || !sh->embeds_grads)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %s: found without %s", sh->path,
                   sh->embeds ? "inputs_embeds" : "inputs_embeds_grads",
                   sh->embeds ? "inputs_embeds_grads" : "inputs_embeds");
  const am_tensor_t *ts[2] = {sh->embeds, sh->embeds_grads};
  const am_source_t *ss[2] = {&se, &sg};
  for (int i = 0; i < 2; i++) {
    char found[128];
    am_shape_text(ts[i], found, sizeof found);
    if (ts[i]->ndim != 3 || ts[i]->shape[0] != sh->B || ts[i]->shape[1] != sh->T ||
        ts[i]->shape[2] < 1 || ts[i]->shape[2] != ts[0]->shape[2])
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: expected shape [B,T,D] with B=%lld, T=%d and D as in "
                     "inputs_embeds, found %s",
                     ss[i]->path, ss[i]->name, (long long)sh->B, sh->T, found);
    if (!is_float(ts[i]->dtype))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: dtype %s is not a float type", ss[i]->path,
                     ss[i]->name, am_dtype_name(ts[i]->dtype));
  }
  return AM_STATUS_OK;
}

am_status am_shard_find_saliency(am_ctx_t *ctx, am_shard_t *sh, char **names, int n) {
  sh->saliency = calloc((size_t)(n > 0 ? n : 1), sizeof *sh->saliency);
  sh->saliency_src = calloc((size_t)(n > 0 ? n : 1), sizeof *sh->saliency_src);
  sh->saliency_S = calloc((size_t)(n > 0 ? n : 1), sizeof *sh->saliency_S);
  if (!sh->saliency || !sh->saliency_src || !sh->saliency_S)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
  for (int i = 0; i < n; i++) {
    char name[512];
    if (strcmp(names[i], "given") == 0)
      snprintf(name, sizeof name, "saliency");
    else
      snprintf(name, sizeof name, "saliency.%s", names[i]);
    const am_tensor_t *t = find(sh, name, &sh->saliency_src[i]);
    am_status st = t && t->ndim == 3 /* per step (docs/generation.md) */
                       ? am_shard_check_step_saliency(ctx, sh, t, &sh->saliency_src[i],
                                                      &sh->saliency_S[i])
                       : check_aux(ctx, sh, name, &sh->saliency[i], 2, 'f');
    if (st != AM_STATUS_OK)
      return st;
    sh->saliency[i] = t;
    if (!sh->saliency[i])
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %s: missing here but present in the first shard", sh->path,
                     name);
  }
  return AM_STATUS_OK;
}

/* Saliency names of a shard: "given" for `saliency`, NAME for `saliency.NAME`. */
am_status am_shard_saliency_names(am_ctx_t *ctx, const am_shard_t *sh, char ***names,
                                  int *n) {
  *names = NULL;
  *n = 0;
  int cap = 0;
  for (int f = 0; f < sh->nfiles; f++)
    for (int i = 0; i < am_file_tensor_count(sh->files[f]); i++) {
      const char *t = am_file_tensor_name(sh->files[f], i);
      const char *nm = NULL;
      if (strcmp(t, "saliency") == 0)
        nm = "given";
      else if (strncmp(t, "saliency.", 9) == 0 && t[9])
        nm = t + 9;
      if (!nm)
        continue;
      if (*n == cap) {
        cap = cap ? 2 * cap : 4;
        char **grown = realloc(*names, (size_t)cap * sizeof *grown);
        if (!grown)
          return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
        *names = grown;
      }
      if (!((*names)[(*n)++] = strdup(nm)))
        return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "out of memory");
    }
  return AM_STATUS_OK;
}
