/*
 * The slot allocator of the swap file: slot i is the 4 KiB at byte
 * i * UPG_SLOT_SIZE. It keeps pages evicted together near each other on
 * the file, as the kernel's swap clusters do: runs are handed out from a
 * cursor (next fit), so consecutive allocations get neighbouring slots and
 * a later read of one can bring its neighbours in the same I/O. Freed
 * slots are reused before the file grows: `high` (one past the highest
 * slot ever handed out) only moves when no free run below it is long
 * enough, and the caller grows the file to cover it.
 *
 * Not locked: the caller serialises every call (the tier holds its lock).
 */
#ifndef UPG_SWAP_SLOT_H
#define UPG_SWAP_SLOT_H

#include <stdint.h>

#define UPG_SLOT_SIZE	4096u

struct upg_slots;

/* Up to @nr_max slots. 0, -EINVAL (@nr_max 0) or -ENOMEM. */
int upg_slots_create(uint64_t nr_max, struct upg_slots **out);
void upg_slots_destroy(struct upg_slots *s);	/* NULL is fine */

/*
 * @n (>= 1) contiguous slots; sets *@first. The search starts at the
 * cursor (just past the last run handed out) and goes round below `high`
 * before it raises `high`. -ENOSPC when no run of @n is free within
 * nr_max (fragmentation can cause that with free slots left).
 */
int upg_slots_alloc(struct upg_slots *s, unsigned int n, uint64_t *first);

/* As upg_slots_alloc(), but -ENOSPC rather than raise `high`. */
int upg_slots_alloc_below_high(struct upg_slots *s, unsigned int n, uint64_t *first);

/* Give back [first, first + n), which must be allocated (asserted). */
void upg_slots_free(struct upg_slots *s, uint64_t first, unsigned int n);

/* One past the highest slot ever handed out: the file must cover it. */
uint64_t upg_slots_high(const struct upg_slots *s);
/* Slots allocated now. */
uint64_t upg_slots_used(const struct upg_slots *s);

struct upg_slots_stats {
	uint64_t nr_max;
	uint64_t used;		/* slots allocated now */
	uint64_t high;		/* as upg_slots_high() */
	uint64_t free_runs;	/* runs of free slots below high */
	uint64_t largest_free;	/* the longest of them */
	/*
	 * 1 - largest_free / free slots below high: 0 when the free space
	 * below high is one run (or there is none), towards 1 when it is
	 * scattered in single slots.
	 */
	double fragmentation;
};

/* Walks the bitmap below high: for statistics, not for every fault. */
void upg_slots_stats(const struct upg_slots *s, struct upg_slots_stats *st);

#endif
