/* metadata.c — the per-example strings a shard carries in __metadata__: attnmap.tokens
 * (a JSON array with one array of token strings per example, either one per padded
 * position or one per valid token) and attnmap.ids (one id per example). */
#include <string.h>

#include "core/half.h"

#include "core/ctx.h"
#include "dataset/dataset.h"
#include "dataset/shard.h"
#include "io/file.h"

static const char *shard_metadata(const am_shard_t *sh, const char *key,
                                  const char **path) {
  for (int f = 0; f < sh->nfiles; f++) {
    const char *v = am_file_metadata(sh->files[f], key);
    if (v) {
      *path = am_file_path(sh->files[f]);
      return v;
    }
  }
  return NULL;
}

static am_status parse_array(am_ctx_t *ctx, const am_shard_t *sh, const char *key,
                             json_t **out) {
  const char *path = NULL;
  const char *text = shard_metadata(sh, key, &path);
  *out = NULL;
  if (!text)
    return AM_STATUS_OK;
  json_error_t err;
  json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &err);
  if (!v || !json_is_array(v) || (int64_t)json_array_size(v) != sh->B) {
    json_decref(v);
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: __metadata__ %s: expected a JSON array of %lld entries (%s)", path,
                   key, (long long)sh->B, v ? "wrong length or type" : err.text);
  }
  *out = v;
  return AM_STATUS_OK;
}

/* Valid tokens of example b: the ones of its attention mask, T without one. */
static int64_t valid_tokens(const am_shard_t *sh, int64_t b) {
  if (!sh->mask)
    return sh->T;
  int64_t n = 0;
  for (int i = 0; i < sh->T; i++)
    n += am_load_int(sh->mask->data, sh->mask->dtype, b * sh->T + i) != 0;
  return n;
}

am_status am_shard_read_metadata(am_ctx_t *ctx, am_shard_t *sh) {
  am_status st = parse_array(ctx, sh, "attnmap.tokens", &sh->tokens);
  if (st != AM_STATUS_OK)
    return st;
  if (sh->tokens) {
    const char *path = NULL;
    shard_metadata(sh, "attnmap.tokens", &path);
    size_t b;
    json_t *row;
    json_array_foreach(sh->tokens, b, row) {
      size_t i;
      json_t *tok;
      int64_t n = valid_tokens(sh, (int64_t)b), len = (int64_t)json_array_size(row);
      if (!json_is_array(row) || (len != sh->T && len != n))
        return am_fail(ctx, AM_STATUS_BAD_INPUT,
                       "%s: __metadata__ attnmap.tokens: entry %zu is not an array of T=%d "
                       "strings (one per position) or of %lld (one per valid token)",
                       path, b, sh->T, (long long)n);
      json_array_foreach(row, i, tok) if (!json_is_string(tok)) return am_fail(
          ctx, AM_STATUS_BAD_INPUT,
          "%s: __metadata__ attnmap.tokens: entry %zu, token %zu is not a string", path, b,
          i);
    }
  }
  return parse_array(ctx, sh, "attnmap.ids", &sh->ex_ids);
}

const char *am_shard_token(const am_shard_t *sh, int64_t b, int p, int valid_rank, int n) {
  if (!sh->tokens)
    return NULL;
  json_t *row = json_array_get(sh->tokens, (size_t)b);
  size_t len = json_array_size(row);
  size_t at =
      len == (size_t)sh->T ? (size_t)p : (len == (size_t)n ? (size_t)valid_rank : len);
  return at < len ? json_string_value(json_array_get(row, at)) : NULL;
}
