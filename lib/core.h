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
#include "readahead.h"
#include "stats.h"
#include "uffd/uffd.h"

struct upg_pager;

struct upg_region {
	struct upg_runtime *rt;
	uintptr_t start, end;	/* as created; end is page-aligned */
	unsigned int block_shift;
	size_t nr_blocks;
	uint64_t *state;	/* nr_blocks words, see pagestate.h */
	size_t state_len;	/* bytes mapped for the table */
	size_t mapped_len;	/* bytes of its extents; under rt->lock */
	/* The table lost part of it (no memory): destroy must not munmap. */
	bool lost_track;
	/* Made by the runtime for memory an mremap moved out of a region. */
	bool adopted;
	struct upg_ra ra;	/* its fault streams (readahead.h) */
	struct upg_region *prev, *next;	/* rt->regions; under rt->lock */
};

/*
 * A mapped piece of a region. A region starts as one extent; munmap and
 * mremap cut pieces out of it, so the table holds only what is mapped and
 * a later mapping at a freed address (another region's, or none of ours)
 * is never mistaken for the old region.
 */
struct upg_extent {
	uintptr_t start, end;
	struct upg_region *region;
};

struct upg_runtime {
	struct upg_options opts;
	struct upg_uffd uffd;
	struct upg_uffd_loop *loop;
	/*
	 * Faults hold the extent table shared for the whole of their work, so
	 * region destroy, which holds it exclusive to take a region's extents
	 * out, knows nobody still uses the region afterwards. Unmap events
	 * hold it exclusive to cut extents.
	 */
	pthread_rwlock_t lock;
	struct upg_extent *extents;	/* sorted by start, disjoint */
	size_t nr_extents, cap_extents;
	struct upg_region *regions;	/* every live region, mapped or not */
	size_t nr_regions;
	struct upg_pager *pager;	/* NULL without a budget */
	struct upg_runtime *next_live;	/* runtimes by address: upg_runtime_find() */
	unsigned int nr_counters;	/* one per reader, then a shared one */
	struct upg_counters *counters;
};

/* The counters any thread may bump (SIGBUS path, API calls). */
static inline struct upg_counters *upg_shared_counters(struct upg_runtime *rt)
{
	return &rt->counters[rt->nr_counters - 1];
}

/*
 * runtime.c: the runtime whose extents hold @addr, for calls that name
 * memory, not a runtime (upg_advise, upg_pin). Returns NULL, or the
 * runtime, kept alive until upg_runtime_find_done().
 */
struct upg_runtime *upg_runtime_find(uintptr_t addr);
void upg_runtime_find_done(void);

/* region.c. Find: call with rt->lock held, either way. */
const struct upg_extent *upg_extent_find(struct upg_runtime *rt, uintptr_t addr);
/* The first extent that ends after @addr (it may start after it), or NULL. */
const struct upg_extent *upg_extent_next(struct upg_runtime *rt, uintptr_t addr);
/* Cut [start, end) out of the table (takes rt->lock exclusive). */
void upg_extents_cut(struct upg_runtime *rt, uintptr_t start, uintptr_t end);
void upg_region_destroy_all(struct upg_runtime *rt);
/*
 * mremap moved [from, from + len) to @to: make the new range a region of
 * its own that keeps the old blocks' state (evicted data included).
 * -ENOENT when the old range was not one piece of one region.
 */
int upg_region_adopt_remap(struct upg_runtime *rt, uintptr_t from, uintptr_t to,
			   size_t len);
/* upg_blocks_set() on every mapped piece of [start, end) (takes rt->lock). */
void upg_extents_set_blocks(struct upg_runtime *rt, uintptr_t start,
			    uintptr_t end, unsigned int to, unsigned int keep);

/* fault.c: blocks wholly inside [start, end) become @to, unless @keep. */
void upg_blocks_set(struct upg_region *r, uintptr_t start, uintptr_t end,
		    unsigned int to, unsigned int keep);

/* fault.c */
extern const struct upg_uffd_ops upg_fault_ops;
/*
 * The thread whose fault this thread is resolving now (0: none known, or
 * not a fault): the one to signal when its page cannot be given back and
 * UFFDIO_POISON is missing.
 */
extern _Thread_local uint32_t upg_fault_tid;
/* What upg_fault_handle() is asked to do. */
enum {
	UPG_FH_WRITE = 1,	/* a write: real pages, never the zero page */
	UPG_FH_FILL_UNKNOWN = 2,	/* zero-fill an address of no region */
	/*
	 * Not a fault (upg_advise, upg_pin): bring an evicted block back, leave
	 * a resident or ABSENT one alone; not counted as a fault.
	 */
	UPG_FH_PREFETCH = 4,
	/*
	 * With PREFETCH: fill an ABSENT block too, or the page at the
	 * address if it was dropped from a resident one.
	 */
	UPG_FH_POPULATE = 8,
	/*
	 * A reader's fault: when there is no room, hand it to the evictor
	 * rather than wait (upg_pager_defer).
	 */
	UPG_FH_DEFER = 16,
	UPG_FH_RETRY = 32,	/* the evictor retrying one: counted already */
	UPG_FH_WP = 64,		/* a write to a write-protected page */
};

/*
 * Resolve a fault at @addr (@flags: UPG_FH_*). An address in no region is
 * zero-filled with UPG_FH_FILL_UNKNOWN, else left alone; returns false if
 * it was left alone.
 */
bool upg_fault_handle(struct upg_runtime *rt, struct upg_counters *c,
		      uintptr_t addr, unsigned int flags);

/* sigbus.c */
int upg_sigbus_attach(struct upg_runtime *rt);
void upg_sigbus_detach(struct upg_runtime *rt);

#endif
