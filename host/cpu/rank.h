/* rank.h — ranking helpers behind the agreement metrics (agreement.c): a stable sort that
 * carries an index, average ranks with ties (scipy.stats.rankdata 'average') and Kendall's
 * tau-b in O(m log m) (scipy.stats.kendalltau, variant 'b'). Scratch is caller-owned
 * doubles so that nothing here allocates; indices are stored as doubles (exact below
 * 2^53). Inputs must be free of NaN: the caller checks. */
#ifndef AM_CPU_RANK_H
#define AM_CPU_RANK_H

/* Stable ascending sort of key[0..m), applying the same permutation to idx[0..m).
 * tmp: 2m doubles. Equal keys keep their input order. */
void am_rank_sort(double *key, double *idx, int m, double *tmp);

/* key[0..m): v ascending, idx[0..m) their positions (equal values in position order).
 * tmp: 2m doubles. The forms below that take a sorted vector let one sort serve the
 * average ranks, Kendall's tau-b and the top-k order (agreement.c sorts each vector once,
 * not three times). */
void am_rank_sort_values(const float *v, int m, double *key, double *idx, double *tmp);

/* rank[i]: 1-based rank of v[i], ties given the mean of the ranks they span, from v
 * sorted by am_rank_sort_values. */
void am_rank_average_sorted(const double *key, const double *idx, int m, double *rank);

/* Kendall's tau-b of x and y, clipped to [-1, 1]; NaN when m < 2 or either vector is
 * constant; from x and y sorted by am_rank_sort_values (kx, ix and ky, iy). work: 6m
 * doubles. */
double am_rank_kendall_tau_b_sorted(const float *y, int m, const double *kx,
                                    const double *ix, const double *ky, const double *iy,
                                    double *work);

/* order[0..m): positions by value descending, equal values by ascending position, from
 * v sorted by am_rank_sort_values — the order of |v| descending when no value is
 * negative; returns -1 (order untouched) when one is. */
int am_rank_order_desc_sorted(const double *key, const double *idx, int m, double *order);

/* idx[0..m): positions ordered by |v| descending, equal |v| by ascending position.
 * work: 3m doubles. */
void am_rank_order_abs_desc(const float *v, int m, double *idx, double *work);

#endif
