/*
 * Access distributions for upager-bench: a small deterministic generator
 * and the rank distributions of fio's random_distribution (random, zipf,
 * pareto, normal), each O(1) per draw. A drawn rank (0 = most popular) is
 * mapped to a unit by a fixed bijection that spreads the hot ranks over the
 * whole range, so a skewed job is not a sequential one in disguise.
 */
#include <errno.h>
#include <math.h>

#include "dist.h"

/* Ranks go through doubles (zipf, pareto, normal): keep them exact. */
#define DIST_N_MAX	(1ull << 53)

/*
 * zeta(n) is summed term by term up to this n; beyond, the first
 * ZETA_HEAD - 1 terms are summed and Euler-Maclaurin gives the rest (see
 * bench_zeta()). Its error there is ~1e-15 relative, so the threshold only
 * bounds the set-up time, which would be O(n) otherwise.
 */
#define ZETA_EXACT_MAX	4096
#define ZETA_HEAD	1024

/* bench_dist.c[]: what each kind precomputes. */
enum {
	Z_ZETAN,	/* zipf: zeta(n, theta) */
	Z_ZETA2,	/* zipf: zeta(2, theta) = 1 + 2^-theta */
	Z_C1,		/* zipf: rank = (c1 + c2 * u)^alpha - 1/2 above rank 1 */
	Z_C2,
	Z_ALPHA,	/* zipf: 1 / (1 - theta) */
	P_POW = 0,	/* pareto: ln(h) / ln(1 - h) */
	N_MEAN = 0,	/* normal: n / 2 */
	N_SD,		/* normal: dev% of n */
	N_PERIOD,	/* normal: 2n, the period of the reflection */
};

/*
 * The multiplier of the scatter: 2^64 / golden ratio, odd. Its top k bits
 * are the multiplier for a range of 2^k, which makes ranks 0, 1, 2, ... a
 * golden-ratio (Weyl) sequence over the range: by the three-gap theorem
 * the hottest m units are near evenly spaced for every m (the ranks that
 * cycle-walk land elsewhere, see scatter()).
 */
#define SCATTER_PHI	0x9e3779b97f4a7c15ull
#define SCATTER_ADD	0x632be59bd9b4e019ull	/* any constant */

/* ---- generator: xoroshiro128++, seeded through splitmix64 ---- */

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void bench_rng_seed(struct bench_rng *r, uint64_t seed)
{
	/*
	 * Two successive splitmix64 outputs are never both zero (its output
	 * function is a bijection of distinct states), and the all-zero
	 * state is the only one xoroshiro cannot leave: any seed works.
	 */
	r->s[0] = splitmix64(&seed);
	r->s[1] = splitmix64(&seed);
}

uint64_t bench_rng_next(struct bench_rng *r)
{
	uint64_t s0 = r->s[0], s1 = r->s[1];
	uint64_t out = rotl(s0 + s1, 17) + s0;

	s1 ^= s0;
	r->s[0] = rotl(s0, 49) ^ s1 ^ (s1 << 21);
	r->s[1] = rotl(s1, 28);
	return out;
}

double bench_rng_double(struct bench_rng *r)
{
	return (double)(bench_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- zeta ---- */

/* The integral of x^-theta over [a, b], precise for theta near 1 too. */
static double power_integral(double a, double b, double theta)
{
	double e = 1.0 - theta;

	return pow(a, e) * expm1(e * log(b / a)) / e;
}

/*
 * sum_{k=1..n} k^-theta. Beyond ZETA_EXACT_MAX the tail a..n (a =
 * ZETA_HEAD) is Euler-Maclaurin's
 *   integral_a^n + (f(a) + f(n)) / 2 + (f'(n) - f'(a)) / 12
 *                - (f'''(n) - f'''(a)) / 720
 * with f = x^-theta; the next term, theta (theta+1) ... (theta+4) / 30240
 * * a^-(theta+5), is ~1e-20 at a = 1024 for theta near 1. (fio instead
 * stops summing at 10^7 terms, which undercounts zeta for larger n and
 * over-weights rank 0.) The test suite checks it against an exact sum at
 * n = 10^6: the relative error is ~1e-14.
 */
double bench_zeta(uint64_t n, double theta)
{
	uint64_t head = n <= ZETA_EXACT_MAX ? n : ZETA_HEAD - 1;
	double sum = 0.0;

	/* Smallest terms first, for the rounding. */
	for (uint64_t k = head; k >= 1; k--)
		sum += pow((double)k, -theta);
	if (head == n)
		return sum;

	double a = ZETA_HEAD, b = (double)n;
	double t1 = theta, t3 = theta * (theta + 1) * (theta + 2);
	double tail = power_integral(a, b, theta)
		+ (pow(a, -theta) + pow(b, -theta)) / 2
		+ t1 * (pow(a, -theta - 1) - pow(b, -theta - 1)) / 12
		- t3 * (pow(a, -theta - 3) - pow(b, -theta - 3)) / 720;

	return sum + tail;
}

/* ---- set-up ---- */

/*
 * Zipf after Gray et al., "Quickly generating billion-record synthetic
 * databases" (SIGMOD '94), as fio does: P(rank k) = (k+1)^-theta / zeta(n).
 * Ranks 0 and 1 are exact (u * zeta(n) below 1, below zeta(2)); above,
 * the inverse CDF of the continuous density x^-theta, rescaled to the mass
 * left, 1 - zeta(2)/zeta(n). One change to Gray's/fio's version: they take
 * that continuum over [2, n) and truncate, which gives 0-based rank k the
 * mass of (k + 1/2)^-theta instead of (k + 1)^-theta (measured, theta 0.99
 * and 1.2: +20% at rank 2, +13% at rank 3, -2..-4% at rank 99); we take it
 * over [2.5, n + 0.5) and round, the midpoint rule, which leaves +1% at
 * rank 2, +0.6% at rank 3 and sampling noise beyond. Same cost: one pow()
 * per draw.
 */
static int zipf_init(struct bench_dist *d, double theta, uint64_t n)
{
	if (!(theta > 0.0) || theta == 1.0 || !isfinite(theta))
		return -EINVAL;

	double e = 1.0 - theta;
	double zetan = bench_zeta(n, theta);
	double zeta2 = 1.0 + pow(2.0, -theta);
	double a = pow(2.5, e), b = pow((double)n + 0.5, e);
	/* Only ranks 0 and 1 exist when n <= 2: the continuum is unused. */
	double p2 = n > 2 ? zeta2 / zetan : 0.0;
	double c2 = (b - a) / (1.0 - p2);

	d->c[Z_ZETAN] = zetan;
	d->c[Z_ZETA2] = zeta2;
	d->c[Z_C2] = c2;
	d->c[Z_C1] = a - c2 * p2;
	d->c[Z_ALPHA] = 1.0 / e;
	return 0;
}

/*
 * fio's pareto:h, mirrored so that rank 0 is the hottest. fio draws
 * (n - 1) * u^p with p = ln(h) / ln(1 - h); we take the rank fraction
 * r = 1 - v^p (v = 1 - u in (0, 1]), so
 *   P(r < f) = 1 - (1 - f)^(1/p),   density (1/p) (1 - r)^(1/p - 1),
 * a power law in the distance from the coldest rank, decreasing with
 * rank. At f = 1 - h it is exactly h: the hottest (1 - h) of the units get
 * h of the accesses (h = 0.9: 10% get 90%; the top 20% get
 * 1 - 0.8^21.85 = 99.2%). Keeping fio's formula means pareto:0.9 here
 * means what it means in fio, and h keeps that plain meaning.
 */
static int pareto_init(struct bench_dist *d, double h)
{
	if (!(h > 0.0 && h < 1.0))
		return -EINVAL;
	d->c[P_POW] = log(h) / log1p(-h);
	return 0;
}

/*
 * normal:dev: mean n/2, standard deviation dev% of n, reflected at 0 and
 * at n (rather than clamped, which would pile the tails up on the two end
 * units).
 */
static int normal_init(struct bench_dist *d, double dev, uint64_t n)
{
	if (!(dev > 0.0) || !isfinite(dev))
		return -EINVAL;
	d->c[N_MEAN] = (double)n / 2;
	d->c[N_SD] = dev / 100.0 * (double)n;
	d->c[N_PERIOD] = 2.0 * (double)n;
	return 0;
}

static unsigned int range_bits(uint64_t n)
{
	return n <= 1 ? 0 : 64 - (unsigned int)__builtin_clzll(n - 1);
}

static uint64_t range_mask(uint64_t n)
{
	unsigned int k = range_bits(n);

	return k ? ~0ull >> (64 - k) : 0;
}

int bench_dist_init(struct bench_dist *d, enum bench_dist_kind kind,
		    double param, uint64_t n)
{
	unsigned int k = range_bits(n);
	int ret;

	if (n == 0 || n > DIST_N_MAX)
		return -EINVAL;
	*d = (struct bench_dist){ .kind = kind, .n = n, .param = param };
	d->scatter_mul = k ? (SCATTER_PHI >> (64 - k)) | 1 : 1;
	d->scatter_add = k ? SCATTER_ADD >> (64 - k) : 0;

	switch (kind) {
	case BENCH_DIST_RANDOM:
		ret = 0;
		break;
	case BENCH_DIST_ZIPF:
		ret = zipf_init(d, param, n);
		break;
	case BENCH_DIST_PARETO:
		ret = pareto_init(d, param);
		break;
	case BENCH_DIST_NORMAL:
		ret = normal_init(d, param, n);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	return ret;
}

/* ---- draws ---- */

/* Uniform in [0, n): the high half of a 64x64 product (bias < n / 2^64). */
static inline uint64_t below(uint64_t x, uint64_t n)
{
	__extension__ typedef unsigned __int128 u128;

	return (uint64_t)(((u128)x * n) >> 64);
}

/* A real rank in [0, n) to an integer one, whatever the rounding did. */
static inline uint64_t to_rank(double x, uint64_t n)
{
	uint64_t r = x > 0.0 ? (uint64_t)x : 0;

	return r < n ? r : n - 1;
}

static uint64_t zipf_rank(const struct bench_dist *d, struct bench_rng *r)
{
	double u = bench_rng_double(r);
	double uz = u * d->c[Z_ZETAN];

	if (uz < 1.0)
		return 0;
	if (uz < d->c[Z_ZETA2])
		return 1;
	/* x in [2.5, n + 0.5): 1-based rank round(x), so 0-based x - 0.5. */
	double x = pow(d->c[Z_C1] + d->c[Z_C2] * u, d->c[Z_ALPHA]);
	uint64_t rank = to_rank(x - 0.5, d->n);

	return rank >= 2 ? rank : 2;
}

static uint64_t pareto_rank(const struct bench_dist *d, struct bench_rng *r)
{
	double v = 1.0 - bench_rng_double(r);
	/* 1 - v^p, without losing the hot ranks (v^p near 1) to rounding. */
	double f = -expm1(d->c[P_POW] * log(v));

	return to_rank(f * (double)d->n, d->n);
}

static uint64_t normal_rank(const struct bench_dist *d, struct bench_rng *r)
{
	/* Box-Muller, one of the pair: no rejection loop, unlike the polar. */
	double u1 = 1.0 - bench_rng_double(r);	/* (0, 1]: log() is finite */
	double u2 = bench_rng_double(r);
	double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
	double x = fmod(d->c[N_MEAN] + z * d->c[N_SD], d->c[N_PERIOD]);

	if (x < 0.0)
		x += d->c[N_PERIOD];
	if (x >= (double)d->n)
		x = d->c[N_PERIOD] - x;
	return to_rank(x, d->n);
}

/*
 * Rank to unit: x -> x * mul + add modulo 2^k (the power of two at or
 * above n) is a bijection of [0, 2^k); cycle-walking (apply it again while
 * the result is >= n) restricts it to a bijection of [0, n). The walks
 * from all n ranks take 2^k < 2n steps together: < 2 per draw on average
 * (also measured under zipf:0.99 weights: 1.3-2.0); the longest seen, at
 * n just above a power of two, was 27 steps.
 */
static inline uint64_t scatter(const struct bench_dist *d, uint64_t rank)
{
	uint64_t mask = range_mask(d->n);
	uint64_t x = rank;

	do
		x = (x * d->scatter_mul + d->scatter_add) & mask;
	while (x >= d->n);
	return x;
}

uint64_t bench_dist_scatter(const struct bench_dist *d, uint64_t rank)
{
	return scatter(d, rank);
}

uint64_t bench_dist_next(const struct bench_dist *d, struct bench_rng *r)
{
	uint64_t rank;

	switch (d->kind) {
	case BENCH_DIST_ZIPF:
		rank = zipf_rank(d, r);
		break;
	case BENCH_DIST_PARETO:
		rank = pareto_rank(d, r);
		break;
	case BENCH_DIST_NORMAL:
		rank = normal_rank(d, r);
		break;
	default:
		rank = below(bench_rng_next(r), d->n);
		break;
	}
	return scatter(d, rank);
}

/* The inverse of an odd number modulo 2^64 (Newton: 5 steps, 2^5 > 64). */
static uint64_t inverse_odd(uint64_t a)
{
	uint64_t x = a;		/* right to 3 bits: a * a = 1 mod 8 */

	for (int i = 0; i < 5; i++)
		x *= 2 - a * x;
	return x;
}

uint64_t bench_dist_unscatter(const struct bench_dist *d, uint64_t unit)
{
	uint64_t mask = range_mask(d->n);
	uint64_t inv = inverse_odd(d->scatter_mul);
	uint64_t x = unit;

	do
		x = ((x - d->scatter_add) * inv) & mask;
	while (x >= d->n);
	return x;
}
