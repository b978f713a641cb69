/* flow.h — attention flow (Abnar & Zuidema 2020, docs/design.md §3), the CPU reference. */
#ifndef AM_CPU_FLOW_H
#define AM_CPU_FLOW_H

#include "cpu/example_pass.h"

/* Attention flow of one example. The layered graph has (L+1)·n nodes; node (l,i) for
 * l = 1..L has an edge to (l−1,j) of capacity Â_l[i,j], where Â_l is rollout's matrix of
 * layer l−1 (head fusion, discard, + I, row normalisation; opt->fusion and opt->discard).
 * out[j] = maxflow((L, target), (0, j)) / Σ_k maxflow((L, target), (0, k)); for
 * AM_ROW_MEAN the mean over every source row i of that normalised vector.
 * The attention values were checked by am_cpu_example_pass; n == 0 leaves out untouched. */
am_status am_cpu_flow(const am_example_t *ex, const am_pass_options_t *opt, float *out,
                      am_cpu_scratch_t *scratch);

/* The steps of am_cpu_flow, for the tests, the benchmark and other backends.
 * Capacities of the layered graph: cap [L,n,n] = Â_l of every layer l of ex (n = ex->n
 * valid tokens), capt [L,n,n] the same matrices transposed; row: [n] scratch. */
void am_cpu_flow_capacities(const am_example_t *ex, const am_pass_options_t *opt,
                            float *cap, float *capt, float *row);
/* Unnormalised maximum flows raw[s][j] from node (L, sources[s]) to input node (0, j),
 * for s < nsrc and j < n (maxflow.h; OpenMP tasks over blocks of sinks).
 * AM_STATUS_OUT_OF_MEMORY when a solver's memory cannot be had. */
am_status am_cpu_flow_values(int L, int n, const float *cap, const float *capt,
                             const int *sources, int nsrc, double *raw);

#endif
