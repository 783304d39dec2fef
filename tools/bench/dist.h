/*
 * Access distributions over [0, n): which unit a thread touches next.
 * Deterministic for a seed, cheap per draw (no division-heavy loops on the
 * hot path), and the same for every engine, so engines see the same
 * access stream.
 */
#ifndef UPG_BENCH_DIST_H
#define UPG_BENCH_DIST_H

#include <stdint.h>

#include "job.h"

struct bench_dist {
	enum bench_dist_kind kind;
	uint64_t n;
	double param;
	/* Private precomputed constants (zipf: zeta, eta, alpha, ...). */
	double c[8];
	/*
	 * Popular units are scattered over the range (a fixed bijection of
	 * [0, n)), so the hot set is not one contiguous run: otherwise zipf
	 * would be sequential in disguise.
	 */
	uint64_t scatter_mul, scatter_add;
};

/* Returns 0, or -EINVAL for a parameter out of range. */
int bench_dist_init(struct bench_dist *d, enum bench_dist_kind kind,
		    double param, uint64_t n);

/* Per-thread generator state; any seed, including 0, is fine. */
struct bench_rng {
	uint64_t s[2];
};

void bench_rng_seed(struct bench_rng *r, uint64_t seed);
uint64_t bench_rng_next(struct bench_rng *r);
double bench_rng_double(struct bench_rng *r);	/* in [0, 1) */

/*
 * sum_{k=1..n} k^-theta: zipf's normaliser, O(1) for large n (Euler-Maclaurin
 * beyond a few thousand terms, see dist.c). Exposed for the tests.
 */
double bench_zeta(uint64_t n, double theta);

/* The next unit, in [0, d->n). */
uint64_t bench_dist_next(const struct bench_dist *d, struct bench_rng *r);

/* The unit that rank @rank (0 = most popular) is scattered to. */
uint64_t bench_dist_scatter(const struct bench_dist *d, uint64_t rank);

/*
 * The rank (0 = most popular) a unit has, i.e. the inverse of the scatter:
 * tests use it to check skew. bench_dist_unscatter(d, bench_dist_next())
 * is the drawn rank.
 */
uint64_t bench_dist_unscatter(const struct bench_dist *d, uint64_t unit);

#endif
