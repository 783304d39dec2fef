/*
 * The state word of one block of a region (a block is the fill unit, 4 KiB
 * to 2 MiB; with 4 KiB blocks this is 8 bytes a page). It lives in a table
 * beside the region, never in managed memory, and changes only by atomic
 * compare-and-swap so that a fault and an event on one block cannot both
 * win.
 *
 *   bits  0-3   state
 *   bit   4     referenced: brought back from INACTIVE since the clock
 *                 hand last passed (second chance)
 *   bit   5     pinned (upg_pin): the clock passes it over; only ever
 *                 set on a RESIDENT block, dropped with its contents
 *   bit   6     clean: a RESIDENT block swapped in for a read and not
 *                 written since; its pages are write-protected and the
 *                 slot is its zpool handle, kept (pager.c, "Clean copies")
 *   bits  7-11  NUMA node (not used yet)
 *   bits 12-63  slot: INACTIVE's staging slot, COMPRESSED's zpool handle,
 *                 a clean RESIDENT block's zpool handle
 */
#ifndef UPG_PAGESTATE_H
#define UPG_PAGESTATE_H

#include <stdbool.h>
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
	/*
	 * Moved out to a staging slot by the clock hand, data intact: a
	 * fault moves it straight back (no decompression).
	 */
	UPG_PS_INACTIVE,
	UPG_PS_COMPRESSED,	/* in the zpool; its memory released */
	/* The evictor owns it (moving out, compressing): faults wait. */
	UPG_PS_EVICTING,
	/*
	 * Being copied out without UFFDIO_MOVE (write-protected, copied to
	 * its staging slot, dropped with MADV_DONTNEED). That MADV_DONTNEED
	 * waits for a reader to read its event, so nothing may wait for a
	 * STAGING block while it holds what readers need: a fault parks
	 * (the copier wakes it when done), an event is recorded for the
	 * copier to apply (pager.c, "Copy-out").
	 */
	UPG_PS_STAGING,
};

#define UPG_PS_STATE_MASK	0xfull

#define UPG_PS_REF		(1ull << 4)
#define UPG_PS_PIN		(1ull << 5)
#define UPG_PS_CLEAN		(1ull << 6)
#define UPG_PS_SLOT_SHIFT	12

static inline enum upg_ps upg_ps_state(uint64_t word)
{
	return (enum upg_ps)(word & UPG_PS_STATE_MASK);
}

static inline uint64_t upg_ps_with_state(uint64_t word, enum upg_ps s)
{
	return (word & ~UPG_PS_STATE_MASK) | (uint64_t)s;
}

static inline uint64_t upg_ps_slot(uint64_t word)
{
	return word >> UPG_PS_SLOT_SHIFT;
}

/* A new word: state @s holding @slot, flags cleared. */
static inline uint64_t upg_ps_make(enum upg_ps s, uint64_t slot)
{
	return (slot << UPG_PS_SLOT_SHIFT) | (uint64_t)s;
}

/* FILLING and EVICTING: another thread owns the block for microseconds. */
static inline bool upg_ps_is_busy(uint64_t word)
{
	return upg_ps_state(word) == UPG_PS_FILLING ||
	       upg_ps_state(word) == UPG_PS_EVICTING;
}

#endif
