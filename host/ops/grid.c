/* grid.c — the patch geometry of grid.h. */
#include <math.h>
#include <stdint.h>

#include "ops/grid.h"

size_t am_grid_table_size(const am_grid_t *grid, int n) {
  if (!grid || grid->rows <= 0 || grid->cols <= 0 || grid->prefix < 0)
    return 0;
  if ((int64_t)grid->prefix + (int64_t)grid->rows * grid->cols != n)
    return 0;
  return (size_t)grid->rows * (size_t)grid->cols;
}

void am_grid_geom_init(am_grid_geom_t *geo, const am_grid_t *grid, int n, double *table) {
  geo->active = am_grid_table_size(grid, n) > 0;
  geo->prefix = geo->rows = geo->cols = 0;
  geo->dist = NULL;
  if (!geo->active)
    return;
  geo->prefix = grid->prefix;
  geo->rows = grid->rows;
  geo->cols = grid->cols;
  for (int dr = 0; dr < grid->rows; dr++)
    for (int dc = 0; dc < grid->cols; dc++)
      table[(size_t)dr * grid->cols + dc] = sqrt((double)dr * dr + (double)dc * dc);
  geo->dist = table;
}
