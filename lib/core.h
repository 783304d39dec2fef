/*
 * The runtime core's internal types, shared by runtime.c (lifetime, stats),
 * region.c (the region table) and fault.c (faults and events).
 */
#ifndef UPG_CORE_H
#define UPG_CORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <upager/upager.h>
#include "stats.h"
#include "uffd/uffd.h"

struct upg_hole {
	uintptr_t start, end;
};

struct upg_region {
	struct upg_runtime *rt;
	uintptr_t start, end;	/* as created; end is page-aligned */
	unsigned int block_shift;
	size_t nr_blocks;
	uint64_t *state;	/* nr_blocks words, see pagestate.h */
	size_t state_len;	/* bytes mapped for the table */
	/*
	 * Parts the application unmapped (munmap, mremap away). Taken inside
	 * rt->lock (read side), never the other way round. Sorted and
	 * disjoint; nr_holes == SIZE_MAX means "lost track: never munmap".
	 */
	pthread_mutex_t holes_lock;
	struct upg_hole *holes;
	size_t nr_holes;
	size_t unmapped_len;
};

struct upg_runtime {
	struct upg_options opts;
	struct upg_uffd uffd;
	struct upg_uffd_loop *loop;
	/*
	 * Readers of the region table (faults, events) hold it shared for the
	 * whole of their work, so region destroy, which holds it exclusive to
	 * unlink a region, knows nobody still uses the region afterwards.
	 */
	pthread_rwlock_t lock;
	struct upg_region **regions;	/* sorted by start, disjoint */
	size_t nr_regions, cap_regions;
	unsigned int nr_counters;	/* one per reader, then a shared one */
	struct upg_counters *counters;
};

/* The counters any thread may bump (SIGBUS path, API calls). */
static inline struct upg_counters *upg_shared_counters(struct upg_runtime *rt)
{
	return &rt->counters[rt->nr_counters - 1];
}

/* region.c: call with rt->lock held (either way). */
struct upg_region *upg_region_find(struct upg_runtime *rt, uintptr_t addr);
void upg_region_add_hole(struct upg_region *r, uintptr_t start, uintptr_t end);
void upg_region_unlink_all(struct upg_runtime *rt);
size_t upg_region_mapped_len(struct upg_region *r);	/* no quiesce */

/* fault.c */
extern const struct upg_uffd_ops upg_fault_ops;
void upg_fault_handle(struct upg_runtime *rt, struct upg_counters *c,
		      uintptr_t addr, bool write);

/* sigbus.c */
int upg_sigbus_attach(struct upg_runtime *rt);
void upg_sigbus_detach(struct upg_runtime *rt);

#endif
