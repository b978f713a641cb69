/* names.c — the names the public API lets callers enumerate at run time (am_list_*,
 * am_status_name) and the sizes and constants bindings check their mirrors against
 * (am_abi_*), so that no caller copies a list. */
#include <string.h>

#include "attnmap.h"
#include "core/names.h"
#include "ops/lists.h"

const char *am_status_name(am_status status) {
  switch (status) {
#define AM_STATUS_NAME_(name, value, text)                                                 \
  case AM_STATUS_##name:                                                                   \
    return #name;
    AM_STATUS_LIST(AM_STATUS_NAME_)
#undef AM_STATUS_NAME_
  }
  return NULL;
}

#define AM_NAME_STR_(text) text,
#define AM_METHOD_STR_(name, bit, text) [bit] = text,
static const char *const methods[] = {AM_METHOD_LIST(AM_METHOD_STR_)};
static const char *const fusions[] = {AM_FUSION_NAMES(AM_NAME_STR_)};
static const char *const targets[] = {AM_TARGET_NAMES(AM_NAME_STR_)};
static const char *const normalize[] = {AM_NORMALIZE_NAMES(AM_NAME_STR_)};
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

int am_list_count(am_list list) {
  switch (list) {
  case AM_LIST_METHODS:
    return COUNT(methods);
  case AM_LIST_STATS:
    return AM_STAT_COUNT;
  case AM_LIST_METRICS:
    return AM_METRIC_COUNT;
  case AM_LIST_FUSIONS:
    return COUNT(fusions);
  case AM_LIST_TARGETS:
    return COUNT(targets);
  case AM_LIST_NORMALIZE:
    return COUNT(normalize);
  case AM_LIST_COUNT:
    break;
  }
  return 0;
}

const char *am_list_name(am_list list, int i) {
  if (i < 0 || i >= am_list_count(list))
    return NULL;
  switch (list) {
  case AM_LIST_METHODS:
    return methods[i];
  case AM_LIST_STATS:
    return am_stat_name((am_stat)i);
  case AM_LIST_METRICS:
    return am_metric_name((am_metric)i);
  case AM_LIST_FUSIONS:
    return fusions[i];
  case AM_LIST_TARGETS:
    return targets[i];
  case AM_LIST_NORMALIZE:
    return normalize[i];
  case AM_LIST_COUNT:
    break;
  }
  return NULL;
}

int am_list_find(am_list list, const char *name) {
  for (int i = 0; name && i < am_list_count(list); i++)
    if (strcmp(am_list_name(list, i), name) == 0)
      return i;
  return -1;
}

size_t am_abi_sizeof(const char *type) {
  static const struct {
    const char *name;
    size_t size;
  } sizes[] = {
#define AM_ABI_SIZE_(t) {#t, sizeof(t)},
      AM_ABI_SIZE_(am_tensor_t) AM_ABI_SIZE_(am_ctx_options_t) AM_ABI_SIZE_(am_plan_t)
          AM_ABI_SIZE_(am_run_options_t) AM_ABI_SIZE_(am_report_options_t)
              AM_ABI_SIZE_(am_report_result_t) AM_ABI_SIZE_(am_settings_t)
                  AM_ABI_SIZE_(am_option_info_t) AM_ABI_SIZE_(am_arrays_t)
                      AM_ABI_SIZE_(am_arrays_result_t) AM_ABI_SIZE_(am_dataset_info_t)
                          AM_ABI_SIZE_(am_stream_info_t) AM_ABI_SIZE_(am_batch_extras_t)
#undef AM_ABI_SIZE_
  };
  for (int i = 0; type && i < COUNT(sizes); i++)
    if (strcmp(sizes[i].name, type) == 0)
      return sizes[i].size;
  return 0;
}

am_status am_abi_constant(const char *name, long long *value) {
  static const struct {
    const char *name;
    long long value;
  } constants[] = {
#define AM_ABI_CONST_(c) {#c, (long long)(c)},
      AM_ABI_CONST_(AM_ARRAYS_MAPS) AM_ABI_CONST_(AM_ARRAYS_PAIRS)
          AM_ABI_CONST_(AM_ARRAYS_METRICS) AM_ABI_CONST_(AM_ARRAYS_STATS)
              AM_ABI_CONST_(AM_ARRAYS_HAS_HEAD_IMPORTANCE)
                  AM_ABI_CONST_(AM_ARRAYS_HAS_ROLLOUT_ROWS)
                      AM_ABI_CONST_(AM_ARRAYS_HAS_GRAD_ROLLOUT_ROWS)
                          AM_ABI_CONST_(AM_METHOD_DEFAULT) AM_ABI_CONST_(AM_TARGET_INDEX)
                              AM_ABI_CONST_(AM_DTYPE_COUNT) AM_ABI_CONST_(AM_MAX_DIMS)
                                  AM_ABI_CONST_(AM_LIST_COUNT)
#undef AM_ABI_CONST_
  };
  for (int i = 0; name && i < COUNT(constants); i++)
    if (strcmp(constants[i].name, name) == 0) {
      if (value)
        *value = constants[i].value;
      return AM_STATUS_OK;
    }
  return AM_STATUS_INVALID_ARGUMENT;
}
