/* safetensors_header.c — parses and checks the JSON header of a safetensors file, entry
 * by entry: strict UTF-8, no NUL bytes, one JSON object without duplicate keys, a known
 * dtype, a shape of non-negative integers, data_offsets [begin,end] with begin <= end,
 * and an optional __metadata__ object of strings. How the entries fit together in the
 * data section is checked by the reader (safetensors_read.c). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/ctx.h"
#include "io/file.h"

/* Index of the first byte that is not part of well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF), or n when all of it is. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      lo = c == 0xE0 ? 0xA0 : 0x80;
      hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      lo = c == 0xF0 ? 0x90 : 0x80;
      hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
      return i;
    }
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
      return i;
    for (size_t k = 2; k < len; k++)
      if ((s[i + k] & 0xC0) != 0x80)
        return i;
    i += len;
  }
  return n;
}

/* jansson reports a duplicate key at the byte just after the key's closing quote. Finds
 * that key, decodes it into a new string and tells its nesting depth (1: a tensor name). */
static char *duplicate_key(const char *text, size_t len, size_t pos, int *depth) {
  if (pos < 2 || pos > len || text[pos - 1] != '"')
    return NULL;
  size_t start = pos - 1;
  for (;;) { /* the opening quote is the first one not escaped by a backslash */
    if (start == 0)
      return NULL;
    start--;
    if (text[start] != '"')
      continue;
    size_t bs = 0;
    while (bs < start && text[start - 1 - bs] == '\\')
      bs++;
    if (bs % 2 == 0)
      break;
  }
  int d = 0, in_string = 0;
  for (size_t i = 0; i < start; i++) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '{' || c == '[') {
      d++;
    } else if (c == '}' || c == ']') {
      d--;
    }
  }
  *depth = d;
  json_t *s = json_loadb(text + start, pos - start, JSON_DECODE_ANY, NULL);
  char *key = json_is_string(s) ? strdup(json_string_value(s)) : NULL;
  json_decref(s);
  return key;
}

static am_status fail_json(am_ctx_t *ctx, const char *path, const char *text, size_t len,
                           const json_error_t *err) {
  if (json_error_code(err) == json_error_duplicate_key) {
    int depth = 0;
    char *key = duplicate_key(text, len, (size_t)err->position, &depth);
    am_status st;
    if (key && depth == 1)
      st = am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %.200s: duplicate tensor name in header", path, key);
    else if (key)
      st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: header has a duplicate key \"%.200s\"",
                   path, key);
    else
      st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: header has a duplicate key (byte %d)",
                   path, err->position);
    free(key);
    return st;
  }
  return am_fail(ctx, AM_STATUS_BAD_INPUT,
                 "%s: header is not valid JSON: %s (line %d, column %d)", path, err->text,
                 err->line, err->column);
}

static am_status parse_shape(am_ctx_t *ctx, const char *path, const char *name,
                             const json_t *shape, am_st_entry_t *e) {
  if (!json_is_array(shape))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %.200s: shape is not an array",
                   path, name);
  size_t ndim = json_array_size(shape);
  if (ndim > AM_MAX_DIMS)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %.200s: shape has %zu dimensions, at most %d are supported",
                   path, name, ndim, AM_MAX_DIMS);
  for (size_t d = 0; d < ndim; d++) {
    const json_t *v = json_array_get(shape, d);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: tensor %.200s: shape[%zu] is not a non-negative integer", path,
                     name, d);
    e->shape[d] = (int64_t)json_integer_value(v);
  }
  e->ndim = (int)ndim;
  return AM_STATUS_OK;
}

static am_status parse_offsets(am_ctx_t *ctx, const char *path, const char *name,
                               const json_t *offs, am_st_entry_t *e) {
  const json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
  if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(b) ||
      !json_is_integer(en) || json_integer_value(b) < 0 || json_integer_value(en) < 0)
    return am_fail(
        ctx, AM_STATUS_BAD_INPUT,
        "%s: tensor %.200s: data_offsets is not [begin, end] of two non-negative "
        "integers",
        path, name);
  e->begin = (uint64_t)json_integer_value(b);
  e->end = (uint64_t)json_integer_value(en);
  if (e->begin > e->end)
    return am_fail(ctx, AM_STATUS_BAD_INPUT,
                   "%s: tensor %.200s: data_offsets [%llu,%llu] begin > end", path, name,
                   (unsigned long long)e->begin, (unsigned long long)e->end);
  return AM_STATUS_OK;
}

static am_status parse_entry(am_ctx_t *ctx, const char *path, const char *name,
                             const json_t *info, am_st_entry_t *e) {
  if (!json_is_object(info))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %.200s: entry is not an object",
                   path, name);
  const json_t *dtype = json_object_get(info, "dtype");
  const json_t *shape = json_object_get(info, "shape");
  const json_t *offs = json_object_get(info, "data_offsets");
  const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
  if (missing)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %.200s: entry has no \"%s\"", path,
                   name, missing);
  if (!json_is_string(dtype))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %.200s: dtype is not a string",
                   path, name);
  e->dtype = am_dtype_from_name(json_string_value(dtype));
  if (e->dtype == AM_DTYPE_COUNT)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: tensor %.200s: unknown dtype \"%.40s\"",
                   path, name, json_string_value(dtype));
  am_status st = parse_shape(ctx, path, name, shape, e);
  if (st != AM_STATUS_OK)
    return st;
  st = parse_offsets(ctx, path, name, offs, e);
  if (st != AM_STATUS_OK)
    return st;
  e->name = strdup(name);
  if (!e->name)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  return AM_STATUS_OK;
}

/* null is accepted as "no metadata", as the reference implementation accepts it. */
static am_status parse_metadata(am_ctx_t *ctx, const char *path, const json_t *meta,
                                am_st_header_t *h) {
  if (json_is_null(meta))
    return AM_STATUS_OK;
  if (!json_is_object(meta))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: __metadata__ is not an object", path);
  size_t n = json_object_size(meta);
  h->meta_keys = calloc(n ? n : 1, sizeof *h->meta_keys);
  h->meta_values = calloc(n ? n : 1, sizeof *h->meta_values);
  if (!h->meta_keys || !h->meta_values)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  const char *key;
  const json_t *value;
  json_object_foreach((json_t *)meta, key, value) {
    if (!json_is_string(value))
      return am_fail(ctx, AM_STATUS_BAD_INPUT,
                     "%s: __metadata__ key %.200s: value is not a string", path, key);
    h->meta_keys[h->nmeta] = strdup(key);
    h->meta_values[h->nmeta] = strdup(json_string_value(value));
    h->nmeta++; /* counted before the check so that both strings are freed */
    if (!h->meta_keys[h->nmeta - 1] || !h->meta_values[h->nmeta - 1])
      return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  }
  return AM_STATUS_OK;
}

static am_status parse_object(am_ctx_t *ctx, const char *path, json_t *root,
                              am_st_header_t *h) {
  if (!json_is_object(root))
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: header is not a JSON object", path);
  const json_t *meta = json_object_get(root, "__metadata__");
  size_t n = json_object_size(root) - (meta ? 1 : 0);
  if (n > (size_t)INT32_MAX)
    return am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: header lists too many tensors", path);
  h->entries = calloc(n ? n : 1, sizeof *h->entries);
  if (!h->entries)
    return am_fail(ctx, AM_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
  am_status st = meta ? parse_metadata(ctx, path, meta, h) : AM_STATUS_OK;
  const char *name;
  json_t *info;
  json_object_foreach(root, name, info) {
    if (st != AM_STATUS_OK)
      break;
    if (strcmp(name, "__metadata__") == 0)
      continue;
    st = parse_entry(ctx, path, name, info, &h->entries[h->nentries]);
    if (st == AM_STATUS_OK)
      h->nentries++;
  }
  return st;
}

am_status am_st_header_parse(am_ctx_t *ctx, const char *path, const char *text, size_t len,
                             am_st_header_t *out) {
  memset(out, 0, sizeof *out);
  json_t *root = NULL;
  am_status st = AM_STATUS_OK;
  const char *nul = memchr(text, '\0', len);
  if (nul) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: header contains a NUL byte at offset %zu",
                 path, (size_t)(nul - text));
    goto done;
  }
  size_t bad = utf8_invalid_at((const unsigned char *)text, len);
  if (bad != len) {
    st = am_fail(ctx, AM_STATUS_BAD_INPUT, "%s: header is not valid UTF-8 (byte %zu)", path,
                 bad);
    goto done;
  }
  json_error_t err;
  root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
  if (!root) {
    st = fail_json(ctx, path, text, len, &err);
    goto done;
  }
  st = parse_object(ctx, path, root, out);
done:
  json_decref(root);
  if (st != AM_STATUS_OK)
    am_st_header_free(out);
  return st;
}

void am_st_header_free(am_st_header_t *h) {
  if (!h)
    return;
  for (int i = 0; i < h->nentries; i++)
    free(h->entries[i].name);
  free(h->entries);
  for (int i = 0; i < h->nmeta; i++) {
    free(h->meta_keys[i]);
    free(h->meta_values[i]);
  }
  free(h->meta_keys);
  free(h->meta_values);
  memset(h, 0, sizeof *h);
}
