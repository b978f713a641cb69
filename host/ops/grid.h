/* grid.h — the patch geometry of a ViT-style grid (example.h's am_grid_t) as the distance
 * statistic uses it, on every backend. */
#ifndef AM_OPS_GRID_H
#define AM_OPS_GRID_H

#include <stddef.h>

#include "ops/example.h"

/* The patch geometry used by the distance statistic. */
typedef struct am_grid_geom {
  int active; /* 1 when the grid matches n (prefix + rows*cols == n) */
  int prefix, rows, cols;
  const double *dist; /* [rows,cols]: dist[dr*cols+dc] = sqrt(dr^2 + dc^2) */
} am_grid_geom_t;

/* Doubles of table that am_grid_geom_init needs for n valid tokens (0 without a grid). */
size_t am_grid_table_size(const am_grid_t *grid, int n);
/* table: am_grid_table_size(grid, n) doubles (unused when the grid is not active). */
void am_grid_geom_init(am_grid_geom_t *geo, const am_grid_t *grid, int n, double *table);

#endif
