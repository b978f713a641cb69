/* lists.c — the names of the statistics and metrics of lists.h. */
#include <stddef.h>

#include "ops/lists.h"

const char *am_stat_name(am_stat stat) {
  static const char *const names[] = {
#define AM_STAT_NAME_(name, text) text,
      AM_STAT_LIST(AM_STAT_NAME_)
#undef AM_STAT_NAME_
  };
  return (int)stat >= 0 && stat < AM_STAT_COUNT ? names[stat] : NULL;
}

const char *am_metric_name(am_metric metric) {
  static const char *const names[] = {
#define AM_METRIC_NAME_(name, text) text,
      AM_METRIC_LIST(AM_METRIC_NAME_)
#undef AM_METRIC_NAME_
  };
  if ((int)metric < 0 || metric >= AM_METRIC_COUNT)
    return "unknown";
  return names[metric];
}
