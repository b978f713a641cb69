/* faith_rank.h — the ranking of maps by faithfulness and the examples where the most
 * agreed-upon map is least faithful (faith_rank.c); the interval of one mean
 * (faith_json.c). */
#ifndef AM_PIPELINE_FAITH_RANK_H
#define AM_PIPELINE_FAITH_RANK_H

#include "pipeline/aggregate.h"
#include "pipeline/faith.h"

#define AM_FAITH_LISTED 10 /* examples listed under most_agreed */

json_t *am_faith_stat_json(const am_welford_t *w);
json_t *am_faith_ranking(const am_faith_t *f);
json_t *am_faith_most_agreed(const am_faith_t *f, const json_t *summary);

#endif
