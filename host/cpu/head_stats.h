/* head_stats.h — per-head statistics of attention rows and head importance (docs/design.md
 * §3), accumulated row by row over the valid queries of one head; internal to the CPU
 * reference (example_pass.c). */
#ifndef AM_CPU_HEAD_STATS_H
#define AM_CPU_HEAD_STATS_H

#include <stddef.h>

#include "cpu/example_pass.h"
#include "ops/grid.h"

/* Adds the statistics of query row i (a: [n] weights over the valid keys) to acc. */
void am_head_stats_row(const float *a, int n, int i, const am_grid_geom_t *geo,
                       double acc[AM_STAT_COUNT]);
/* The same as am_head_stats_row for a row whose sums were found by the row sweep
 * (row_sweep.h): ent = sum_j a_j ln a_j, conf = max_j a_j, dist = sum_j a_j |i-j|;
 * pos = {a_0, a_{n-1}, a_i, a_{i-1} (0 for i = 0), a_{i+1} (0 for i = n-1)}; a: the whole
 * row, read only when the grid is active (may be NULL otherwise). */
void am_head_stats_row_from_sums(const float *a, const float pos[5], int n, int i,
                                 const am_grid_geom_t *geo, double ent, float conf,
                                 double dist, double acc[AM_STAT_COUNT]);
/* Writes the row averages of acc as layer l, head h of stats [AM_STAT_COUNT,L,H]. */
void am_head_stats_store(const double acc[AM_STAT_COUNT], int n, const am_grid_geom_t *geo,
                         float *stats, int L, int H, int l, int h);

/* |sum_j a_j g_j| of one query row: its term of head importance (Michel et al. 2019). */
double am_head_importance_row(const float *a, const float *g, int n);

#endif
