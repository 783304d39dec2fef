/*
 * The state word of one block of a region (a block is the fill unit, 4 KiB
 * to 2 MiB; with 4 KiB blocks this is 8 bytes a page). It lives in a table
 * beside the region, never in managed memory, and changes only by atomic
 * compare-and-swap so that a fault and an event on one block cannot both
 * win.
 *
 *   bits  0-3   state
 *   bit   4     referenced (clock; issue 4)
 *   bit   5     dirty
 *   bits  6-11  NUMA node
 *   bits 12-63  slot: compressed handle or swap slot (issue 4, 5)
 */
#ifndef UPG_PAGESTATE_H
#define UPG_PAGESTATE_H

#include <stdint.h>

enum upg_ps {
	UPG_PS_ABSENT = 0,	/* never filled, or dropped: reads zeros */
	UPG_PS_FILLING,		/* a fault thread is filling it */
	/*
	 * Filled. Single pages of it may have been dropped since (partial
	 * MADV_DONTNEED, a fill cut short): a fault there fills that page.
	 */
	UPG_PS_RESIDENT,
	UPG_PS_UNMAPPED,	/* the application unmapped it */
};

#define UPG_PS_STATE_MASK	0xfull

static inline enum upg_ps upg_ps_state(uint64_t word)
{
	return (enum upg_ps)(word & UPG_PS_STATE_MASK);
}

static inline uint64_t upg_ps_with_state(uint64_t word, enum upg_ps s)
{
	return (word & ~UPG_PS_STATE_MASK) | (uint64_t)s;
}

#endif
