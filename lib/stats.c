/*
 * The latency histogram is log-linear: 16 linear buckets per power of two
 * (values below 16 ns get a bucket each), so a percentile read from it is
 * within 1/16 of the true value, from 1 ns to about 34 s in 512 buckets.
 */
#include <string.h>
#include <time.h>

#include "stats.h"

#define SUB_BITS	4
#define SUB		(1u << SUB_BITS)

UPG_API unsigned int upg_lat_bucket(uint64_t ns)
{
	unsigned int e, idx;

	if (ns < SUB)
		return (unsigned int)ns;
	e = 63u - (unsigned int)__builtin_clzll(ns);	/* e >= SUB_BITS */
	idx = (e - SUB_BITS + 1) * SUB + (unsigned int)((ns >> (e - SUB_BITS)) & (SUB - 1));
	return idx < UPG_LAT_BUCKETS ? idx : UPG_LAT_BUCKETS - 1;
}

UPG_API uint64_t upg_lat_bucket_ns(unsigned int i)
{
	unsigned int e;

	if (i < SUB)
		return i;
	e = i / SUB - 1 + SUB_BITS;
	return ((uint64_t)(SUB + i % SUB)) << (e - SUB_BITS);
}

UPG_API uint64_t upg_lat_quantile(const uint64_t *hist, double q)
{
	uint64_t total = 0, seen = 0, rank;

	for (unsigned int i = 0; i < UPG_LAT_BUCKETS; i++)
		total += hist[i];
	if (!total)
		return 0;
	if (!(q > 0))		/* NaN too */
		q = 0;
	if (q > 1)
		q = 1;
	/* The smallest bucket holding at least ceil(q * total) samples. */
	rank = (uint64_t)(q * (double)total);
	if ((double)rank < q * (double)total)
		rank++;
	if (rank == 0)
		rank = 1;
	for (unsigned int i = 0; i < UPG_LAT_BUCKETS; i++) {
		seen += hist[i];
		if (seen >= rank)
			return i + 1 < UPG_LAT_BUCKETS ? upg_lat_bucket_ns(i + 1) - 1
						       : upg_lat_bucket_ns(i);
	}
	return upg_lat_bucket_ns(UPG_LAT_BUCKETS - 1);
}

void upg_lat_record(struct upg_counters *c, uint64_t ns)
{
	unsigned int b = upg_lat_bucket(ns);

	if (c->shared) {
		uint64_t max = __atomic_load_n(&c->lat_max, __ATOMIC_RELAXED);

		__atomic_fetch_add(&c->lat_hist[b], 1, __ATOMIC_RELAXED);
		while (ns > max && !__atomic_compare_exchange_n(&c->lat_max, &max, ns,
				true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
		return;
	}
	__atomic_store_n(&c->lat_hist[b],
			 __atomic_load_n(&c->lat_hist[b], __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
	if (ns > __atomic_load_n(&c->lat_max, __ATOMIC_RELAXED))
		__atomic_store_n(&c->lat_max, ns, __ATOMIC_RELAXED);
}

void upg_counters_sum(struct upg_stats *st, const struct upg_counters *c)
{
	uint64_t max = __atomic_load_n(&c->lat_max, __ATOMIC_RELAXED);

#define UPG_STAT_SUM(name) \
	st->name += __atomic_load_n(&c->count[UPG_STAT_##name], __ATOMIC_RELAXED);
	UPG_STATS_FIELDS(UPG_STAT_SUM)
#undef UPG_STAT_SUM
	for (unsigned int i = 0; i < UPG_LAT_BUCKETS; i++)
		st->fault_ns_hist[i] += __atomic_load_n(&c->lat_hist[i], __ATOMIC_RELAXED);
	if (max > st->fault_ns_max)
		st->fault_ns_max = max;
}

void upg_stats_finish(struct upg_stats *st)
{
	st->fault_ns_p50 = upg_lat_quantile(st->fault_ns_hist, 0.50);
	st->fault_ns_p99 = upg_lat_quantile(st->fault_ns_hist, 0.99);
	st->fault_ns_p999 = upg_lat_quantile(st->fault_ns_hist, 0.999);
}

uint64_t upg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
