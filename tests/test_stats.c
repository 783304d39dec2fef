/*
 * The fault-latency histogram and the counters: bucket edges, the 1/16
 * precision promised in upager.h, quantiles against exact percentiles, and
 * summing counter blocks (one of them shared) into struct upg_stats.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "stats.h"

#define NS_PER_US	1000ull
#define NS_PER_MS	1000000ull
#define NS_PER_S	1000000000ull

TestSuite(stats, .timeout = 30);

/*
 * Calls @fn on every v below 4096, then on a geometric sweep (about 1%
 * steps) up to 30 s in ns. Returns how many values it visited.
 */
static size_t sweep(void (*fn)(uint64_t v, void *arg), void *arg)
{
	size_t n = 0;

	for (uint64_t v = 0; v < 4096; v++, n++)
		fn(v, arg);
	for (double d = 4096; d <= 30.0 * NS_PER_S; d *= 1.01, n++) {
		uint64_t v = (uint64_t)d;

		/* Each power of two's edges too: v - 1, v, v + 1. */
		fn(v, arg);
		if (!(v & (v - 1))) {
			fn(v - 1, arg);
			fn(v + 1, arg);
		}
	}
	return n;
}

/* |got - want| <= want / 16, and got is not below want's bucket. */
static void assert_within_bucket(uint64_t got, uint64_t want, const char *what)
{
	uint64_t lo = upg_lat_bucket_ns(upg_lat_bucket(want));
	uint64_t err = got > want ? got - want : want - got;

	cr_assert_geq(got, lo, "%s: %llu ns is below %llu's bucket [%llu, ...)", what,
		      (unsigned long long)got, (unsigned long long)want,
		      (unsigned long long)lo);
	cr_assert_leq(err * 16, want, "%s: %llu ns, exact %llu ns: off by more than 1/16",
		      what, (unsigned long long)got, (unsigned long long)want);
}

/* ---- buckets ---------------------------------------------------------- */

struct mono { uint64_t prev_v; unsigned int prev_b; bool first; };

static void check_monotonic(uint64_t v, void *arg)
{
	struct mono *m = arg;
	unsigned int b = upg_lat_bucket(v);

	cr_assert_lt(b, UPG_LAT_BUCKETS, "bucket(%llu) = %u", (unsigned long long)v, b);
	if (!m->first && v > m->prev_v)
		cr_assert_geq(b, m->prev_b, "bucket(%llu) = %u < bucket(%llu) = %u",
			      (unsigned long long)v, b, (unsigned long long)m->prev_v,
			      m->prev_b);
	m->prev_v = v;
	m->prev_b = b;
	m->first = false;
}

Test(stats, bucket_never_decreases_as_latency_grows)
{
	struct mono m = { .first = true };

	cr_assert_gt(sweep(check_monotonic, &m), 5000);
	/* Far beyond the last edge: clamped, not wrapped. */
	cr_assert_eq(upg_lat_bucket(UINT64_MAX), UPG_LAT_BUCKETS - 1);
	cr_assert_eq(upg_lat_bucket(1ull << 40), UPG_LAT_BUCKETS - 1);
}

static void check_edges(uint64_t v, void *arg)
{
	unsigned int b = upg_lat_bucket(v);

	(void)arg;
	cr_assert_leq(upg_lat_bucket_ns(b), v, "bucket(%llu) = %u starts at %llu",
		      (unsigned long long)v, b,
		      (unsigned long long)upg_lat_bucket_ns(b));
	if (b + 1 < UPG_LAT_BUCKETS)
		cr_assert_lt(v, upg_lat_bucket_ns(b + 1),
			     "bucket(%llu) = %u, but bucket %u starts at %llu",
			     (unsigned long long)v, b, b + 1,
			     (unsigned long long)upg_lat_bucket_ns(b + 1));
}

Test(stats, latency_lies_between_its_bucket_edges)
{
	sweep(check_edges, NULL);
}

Test(stats, small_latencies_get_a_bucket_each)
{
	for (uint64_t v = 0; v < 16; v++) {
		cr_assert_eq(upg_lat_bucket(v), v);
		cr_assert_eq(upg_lat_bucket_ns((unsigned int)v), v);
	}
}

Test(stats, bucket_lower_edge_falls_in_that_bucket)
{
	for (unsigned int i = 0; i < UPG_LAT_BUCKETS; i++) {
		uint64_t lo = upg_lat_bucket_ns(i);

		cr_assert_eq(upg_lat_bucket(lo), i, "bucket_ns(%u) = %llu is in bucket %u",
			     i, (unsigned long long)lo, upg_lat_bucket(lo));
		if (i)
			cr_assert_eq(upg_lat_bucket(lo - 1), i - 1,
				     "%llu, just below bucket %u, is in bucket %u",
				     (unsigned long long)(lo - 1), i, upg_lat_bucket(lo - 1));
	}
}

Test(stats, bucket_is_at_most_a_sixteenth_of_its_lower_edge)
{
	for (unsigned int i = 16; i + 1 < UPG_LAT_BUCKETS; i++) {
		uint64_t lo = upg_lat_bucket_ns(i), hi = upg_lat_bucket_ns(i + 1);

		cr_assert_gt(hi, lo, "bucket %u is empty", i);
		cr_assert_leq((hi - lo) * 16, lo, "bucket %u: [%llu, %llu) is wider than 1/16",
			      i, (unsigned long long)lo, (unsigned long long)hi);
	}
}

Test(stats, buckets_reach_beyond_thirty_seconds)
{
	uint64_t last = upg_lat_bucket_ns(UPG_LAT_BUCKETS - 1);

	cr_assert_gt(last, 30 * NS_PER_S, "last bucket starts at %llu ns",
		     (unsigned long long)last);
	cr_assert_lt(upg_lat_bucket(30 * NS_PER_S), UPG_LAT_BUCKETS - 1);
}

/* ---- upg_lat_quantile() ---------------------------------------------- */

static void hist_add(uint64_t *hist, uint64_t ns, uint64_t n)
{
	hist[upg_lat_bucket(ns)] += n;
}

Test(stats, quantile_of_empty_histogram_is_zero)
{
	uint64_t hist[UPG_LAT_BUCKETS] = { 0 };

	cr_assert_eq(upg_lat_quantile(hist, 0.0), 0);
	cr_assert_eq(upg_lat_quantile(hist, 0.5), 0);
	cr_assert_eq(upg_lat_quantile(hist, 1.0), 0);
}

Test(stats, quantile_of_one_sample_is_that_sample)
{
	static const uint64_t values[] = { 0, 1, 15, 16, 1000, 12345, 10 * NS_PER_MS,
					   3 * NS_PER_S };

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		uint64_t hist[UPG_LAT_BUCKETS] = { 0 };

		hist_add(hist, values[i], 1);
		assert_within_bucket(upg_lat_quantile(hist, 0.0), values[i], "q=0");
		assert_within_bucket(upg_lat_quantile(hist, 0.5), values[i], "q=0.5");
		assert_within_bucket(upg_lat_quantile(hist, 1.0), values[i], "q=1");
	}
}

/* "The upper edge of the bucket it falls in": never below the sample. */
static void check_upper_edge(uint64_t v, void *arg)
{
	uint64_t hist[UPG_LAT_BUCKETS] = { 0 };
	unsigned int b = upg_lat_bucket(v);

	(void)arg;
	if (b + 1 >= UPG_LAT_BUCKETS)
		return;		/* the last bucket has no upper edge */
	hist[b] = 3;
	cr_assert_eq(upg_lat_quantile(hist, 0.5), upg_lat_bucket_ns(b + 1) - 1,
		     "one bucket holding %llu", (unsigned long long)v);
	cr_assert_geq(upg_lat_quantile(hist, 0.5), v);
}

Test(stats, quantile_is_the_upper_edge_of_its_bucket)
{
	sweep(check_upper_edge, NULL);
}

Test(stats, quantile_is_exact_below_sixteen_ns)
{
	uint64_t hist[UPG_LAT_BUCKETS] = { 0 };

	hist_add(hist, 3, 1);
	hist_add(hist, 7, 1);
	cr_assert_eq(upg_lat_quantile(hist, 0.5), 3);
	cr_assert_eq(upg_lat_quantile(hist, 1.0), 7);
}

/*
 * 1000 samples at 1 us, 10 at 100 us, 1 at 10 ms: 1011 in all. Ranks
 * (ceil(q * 1011)): p50 506 and p0 1 are 1 us; p99 1001 and p99.9 1010 are
 * 100 us (past the 1000 at 1 us); p100 1011 is the 10 ms one.
 */
Test(stats, quantile_of_known_distribution)
{
	static const struct { double q; uint64_t want; } cases[] = {
		{ 0.0, 1 * NS_PER_US }, { 0.5, 1 * NS_PER_US },
		{ 1000.0 / 1011, 1 * NS_PER_US },	/* rank 1000: the last 1 us */
		{ 0.99, 100 * NS_PER_US }, { 0.999, 100 * NS_PER_US },
		{ 1.0, 10 * NS_PER_MS },
	};
	uint64_t hist[UPG_LAT_BUCKETS] = { 0 };

	hist_add(hist, 1 * NS_PER_US, 1000);
	hist_add(hist, 100 * NS_PER_US, 10);
	hist_add(hist, 10 * NS_PER_MS, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[32];

		snprintf(what, sizeof(what), "q=%g", cases[i].q);
		assert_within_bucket(upg_lat_quantile(hist, cases[i].q), cases[i].want, what);
	}
}

Test(stats, quantile_clamps_q_to_zero_and_one)
{
	uint64_t hist[UPG_LAT_BUCKETS] = { 0 };

	hist_add(hist, 1 * NS_PER_US, 1000);
	hist_add(hist, 10 * NS_PER_MS, 1);
	cr_assert_eq(upg_lat_quantile(hist, -0.5), upg_lat_quantile(hist, 0.0));
	cr_assert_eq(upg_lat_quantile(hist, -1e300), upg_lat_quantile(hist, 0.0));
	cr_assert_eq(upg_lat_quantile(hist, 2.0), upg_lat_quantile(hist, 1.0));
	cr_assert_eq(upg_lat_quantile(hist, 1e300), upg_lat_quantile(hist, 1.0));
	assert_within_bucket(upg_lat_quantile(hist, -0.5), 1 * NS_PER_US, "q=-0.5");
	assert_within_bucket(upg_lat_quantile(hist, 2.0), 10 * NS_PER_MS, "q=2");
}

/* ---- against exact percentiles --------------------------------------- */

/* splitmix64: a fixed seed gives the same samples on every machine. */
static uint64_t next_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * e^y for 0 <= y < 64 ln 2, without libm (the tests do not link it):
 * y = k ln 2 + r, then a Taylor series for e^r, 0 <= r < ln 2.
 */
static double exp_small(double y)
{
	const double ln2 = 0.69314718055994530942;
	unsigned int k = (unsigned int)(y / ln2);
	double r = y - k * ln2, term = 1, sum = 1;

	for (int i = 1; i < 20; i++) {
		term *= r / i;
		sum += term;
	}
	return sum * (double)(1ull << k);
}

/* Nearest rank: the ceil(q * n)-th smallest, as upg_lat_quantile defines it. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
	size_t rank = (size_t)(q * (double)n);

	if ((double)rank < q * (double)n)
		rank++;

	return sorted[rank ? rank - 1 : 0];
}

Test(stats, quantiles_match_exact_percentiles_of_log_uniform_samples)
{
	static const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
	const size_t n = 100000;
	uint64_t *samples = calloc(n, sizeof(*samples));
	uint64_t hist[UPG_LAT_BUCKETS] = { 0 };
	uint64_t state = 0x5eed;

	cr_assert_not_null(samples);
	for (size_t i = 0; i < n; i++) {
		/* log-uniform between 1 us and 10 ms: 1e3 * e^(u ln 1e4) */
		double u = (double)(next_rand(&state) >> 11) / (double)(1ull << 53);

		samples[i] = (uint64_t)(1e3 * exp_small(u * 9.21034037197618273607));
		hist_add(hist, samples[i], 1);
	}
	qsort(samples, n, sizeof(*samples), cmp_u64);
	cr_assert_geq(samples[0], 1 * NS_PER_US);
	cr_assert_leq(samples[n - 1], 10 * NS_PER_MS);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		char what[32];

		snprintf(what, sizeof(what), "q=%g", qs[i]);
		assert_within_bucket(upg_lat_quantile(hist, qs[i]),
				     exact_quantile(samples, n, qs[i]), what);
	}
	free(samples);
}

/* ---- counters into struct upg_stats ----------------------------------- */

/* A zeroed block; @shared as for the SIGBUS path's (atomic adds). */
static struct upg_counters *counters_new(bool shared)
{
	struct upg_counters *c = aligned_alloc(64, sizeof(*c));

	cr_assert_not_null(c);
	memset(c, 0, sizeof(*c));
	c->shared = shared;
	return c;
}

/* What upg_stats_get() does: zero, sum every block, then the percentiles. */
static void stats_of(struct upg_stats *st, const struct upg_counters *first,
		     const struct upg_counters *second)
{
	memset(st, 0, sizeof(*st));
	st->size = sizeof(*st);
	upg_counters_sum(st, first);
	upg_counters_sum(st, second);
	upg_stats_finish(st);
}

/*
 * 2000 samples: 1960 at 1 us, 37 at 100 us, 2 at 1 ms, 1 just over 10 ms,
 * split over two blocks. Ranks: p50 1000 and p99 1980 (of 1 .. 1997 below
 * 1 ms) are 1 us and 100 us; p99.9 1998 is 1 ms; so each percentile field
 * reads a different bucket.
 */
Test(stats, summed_blocks_give_counts_percentiles_and_max)
{
	struct upg_counters *a = counters_new(false), *b = counters_new(true);
	const uint64_t max = 10 * NS_PER_MS + 123;
	struct upg_stats st;
	uint64_t total = 0;

	for (int i = 0; i < 1960; i++)
		upg_lat_record(i < 1000 ? a : b, 1 * NS_PER_US);
	for (int i = 0; i < 37; i++)
		upg_lat_record(i % 2 ? a : b, 100 * NS_PER_US);
	upg_lat_record(a, 1 * NS_PER_MS);
	upg_lat_record(b, 1 * NS_PER_MS);
	upg_lat_record(a, max);
	upg_stat_add(a, UPG_STAT_faults, 1200);
	upg_stat_add(b, UPG_STAT_faults, 800);
	upg_stat_inc(a, fill_raced);
	upg_stat_inc(b, fill_raced);
	upg_stat_inc(b, fill_raced);
	upg_stat_add(b, UPG_STAT_reader_empty, 7);
	stats_of(&st, a, b);

	cr_assert_eq(st.faults, 2000);
	cr_assert_eq(st.fill_raced, 3);
	cr_assert_eq(st.reader_empty, 7);
	cr_assert_eq(st.fills, 0);
	for (unsigned int i = 0; i < UPG_LAT_BUCKETS; i++)
		total += st.fault_ns_hist[i];
	cr_assert_eq(total, 2000, "histogram holds %llu samples",
		     (unsigned long long)total);
	cr_assert_eq(st.fault_ns_hist[upg_lat_bucket(1 * NS_PER_US)], 1960);
	cr_assert_eq(st.fault_ns_hist[upg_lat_bucket(100 * NS_PER_US)], 37);
	assert_within_bucket(st.fault_ns_p50, 1 * NS_PER_US, "p50");
	assert_within_bucket(st.fault_ns_p99, 100 * NS_PER_US, "p99");
	assert_within_bucket(st.fault_ns_p999, 1 * NS_PER_MS, "p99.9");
	cr_assert_eq(st.fault_ns_max, max, "max %llu: exact, not bucketed",
		     (unsigned long long)st.fault_ns_max);
	free(a);
	free(b);
}

Test(stats, max_comes_from_whichever_block_saw_it)
{
	struct upg_counters *a = counters_new(false), *b = counters_new(true);
	struct upg_stats st;

	upg_lat_record(a, 123457);
	upg_lat_record(a, 5);
	upg_lat_record(b, 777);
	stats_of(&st, a, b);
	cr_assert_eq(st.fault_ns_max, 123457, "max of a, summed first");
	stats_of(&st, b, a);
	cr_assert_eq(st.fault_ns_max, 123457, "max of a, summed last");
	assert_within_bucket(st.fault_ns_p50, 777, "p50 of {5, 777, 123457}");
	upg_lat_record(b, 999999);
	stats_of(&st, a, b);
	cr_assert_eq(st.fault_ns_max, 999999, "max of the shared block");
	free(a);
	free(b);
}

Test(stats, finish_on_empty_stats_gives_zero_percentiles)
{
	struct upg_stats st;

	memset(&st, 0, sizeof(st));
	upg_stats_finish(&st);
	cr_assert_eq(st.fault_ns_p50, 0);
	cr_assert_eq(st.fault_ns_p99, 0);
	cr_assert_eq(st.fault_ns_p999, 0);
	cr_assert_eq(st.fault_ns_max, 0);
}
