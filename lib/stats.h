/*
 * Counters and the fault-latency histogram. Each fault thread owns a
 * struct upg_counters and bumps it without atomic read-modify-write (one
 * writer); readers sum all blocks and accept small skew. A block marked
 * shared (the SIGBUS path, where any thread may resolve a fault) uses
 * atomic adds instead.
 */
#ifndef UPG_STATS_H
#define UPG_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include <upager/upager.h>

enum upg_stat {
#define UPG_STAT_ENUM(name) UPG_STAT_##name,
	UPG_STATS_FIELDS(UPG_STAT_ENUM)
#undef UPG_STAT_ENUM
	UPG_STAT_NR
};

struct upg_counters {
	uint64_t count[UPG_STAT_NR];
	uint64_t lat_hist[UPG_LAT_BUCKETS];
	uint64_t lat_max;
	bool shared;
} __attribute__((aligned(64)));

static inline void upg_stat_add(struct upg_counters *c, enum upg_stat s,
				uint64_t n)
{
	if (c->shared)
		__atomic_fetch_add(&c->count[s], n, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&c->count[s],
				 __atomic_load_n(&c->count[s], __ATOMIC_RELAXED) + n,
				 __ATOMIC_RELAXED);
}

#define upg_stat_inc(c, name) upg_stat_add((c), UPG_STAT_##name, 1)

void upg_lat_record(struct upg_counters *c, uint64_t ns);

/* Add @c into @st (fields and histogram). */
void upg_counters_sum(struct upg_stats *st, const struct upg_counters *c);

/* Fill the percentile fields of @st from its histogram. */
void upg_stats_finish(struct upg_stats *st);

uint64_t upg_now_ns(void);

#endif
