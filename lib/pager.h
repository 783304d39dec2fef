/*
 * The pager: keeps a runtime's resident memory under its budget. It counts
 * resident bytes, runs the clock and the background evictor, and carries
 * out the block transitions that involve a store (INACTIVE, COMPRESSED).
 * fault.c and region.c call it; it exists only when a budget is set.
 */
#ifndef UPG_PAGER_H
#define UPG_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "oom.h"

struct upg_pager;

/* Sets *@out to NULL when the options set no budget (nothing to page). */
int upg_pager_create(struct upg_runtime *rt, struct upg_pager **out);
/* Stop the evictor. Regions must be gone. NULL is fine. */
void upg_pager_destroy(struct upg_pager *pg);

/*
 * Take @len bytes of the budget for a fill. False when there is no room
 * now (the evictor is kicked): drop rt->lock, upg_pager_wait_room(), retry.
 */
bool upg_pager_try_reserve(struct upg_pager *pg, size_t len);
/* Give back what a reserve took, or what a block no longer holds. */
void upg_pager_release(struct upg_pager *pg, size_t len);
/*
 * Wait until the evictor has made room (counted as a stall, like PSI).
 * Call without rt->lock: the evictor needs it.
 */
void upg_pager_wait_room(struct upg_pager *pg, struct upg_counters *c);

/*
 * No room: compress the oldest INACTIVE block in this thread (direct
 * reclaim, as the kernel's faulting threads do), or wait for the evictor
 * when there is none (only if @may_wait: else false). Call without
 * rt->lock, with the same @w (zeroed first) for every retry of one fill:
 * a fill that waits long with nothing freed meets the OOM policy (oom.h).
 */
bool upg_pager_reclaim(struct upg_pager *pg, struct upg_counters *c,
		       struct upg_room_wait *w, bool may_wait);
/*
 * A reader found no room and reclaim nothing to compress: hand the fault
 * (not woken) to the evictor, which fills it when room comes and meets
 * the OOM policy if none does. False when too many are handed over
 * already: then wait (upg_pager_reclaim with @may_wait).
 */
bool upg_pager_defer(struct upg_pager *pg, struct upg_counters *c, uintptr_t addr,
		     unsigned int flags);

/*
 * Hold off fork's bring-back while blocks move out (upg_pager_cold).
 * Taken before rt->lock.
 */
void upg_pager_hold(struct upg_pager *pg);
void upg_pager_unhold(struct upg_pager *pg);
/*
 * UPG_ADV_COLD on blocks [b0, b0 + n) of @r: RESIDENT ones move out as the
 * clock would move them, and every INACTIVE one is compressed at once.
 * Returns how many of the n blocks it went through: all, except that it
 * stops at a block being filled or evicted (the caller waits for it with
 * no lock held: a fill's window is still FILLING when the thread it woke
 * runs on) and, without UFFDIO_MOVE, after claiming a run to copy out,
 * which upg_pager_cold_finish() copies and compresses. Call inside
 * upg_pager_copy_lock() and upg_pager_hold(), with rt->lock shared;
 * upg_pager_cold_finish() after dropping those two.
 */
size_t upg_pager_cold(struct upg_pager *pg, struct upg_counters *c,
		      struct upg_region *r, size_t b0, size_t n);
void upg_pager_cold_finish(struct upg_pager *pg, struct upg_counters *c);

/*
 * Empty now the slots blocks were copied back from (pager.c,
 * slot_drop_later), which else wait for the evictor's next turn: after a
 * batch of reactivations (UPG_ADV_HOT, WILLNEED).
 */
void upg_pager_drops_flush(struct upg_pager *pg, struct upg_counters *c);

/*
 * Are regions registered for write-protect faults too? Without UFFDIO_MOVE
 * the clock copies blocks out: write-protect, copy, MADV_DONTNEED (see
 * pager.c, "Copy-out"); with it, clean copies are write-protected (pager.c,
 * "Clean copies"). False for NULL.
 */
bool upg_pager_write_protects(const struct upg_pager *pg);
/*
 * Hold off copy-outs, waiting for the one in flight: it holds a region
 * with no lock while its MADV_DONTNEED waits for a reader. Region destroy
 * and fork take it before any other lock. No-op for NULL or with MOVE.
 */
void upg_pager_copy_lock(struct upg_pager *pg);
void upg_pager_copy_unlock(struct upg_pager *pg);
/*
 * An event met block @b of @r STAGING (being copied out): a REMOVE of
 * [start, end) of it, or (@unmapped) an UNMAP of all of it. Recorded for
 * the copier, which applies it when done; nobody waits. False when the
 * block is STAGING no more: look at it again.
 */
bool upg_pager_staging_event(struct upg_runtime *rt, struct upg_region *r, size_t b,
			     uintptr_t start, uintptr_t end, bool unmapped);
/* Is thread @tid copying a run out now (its reads fault like anyone's)? */
bool upg_pager_is_copier(struct upg_pager *pg, uint32_t tid);
/*
 * Pin or unpin block @b of @r (rt->lock held). Pinning needs it RESIDENT:
 * -EAGAIN otherwise (bring it in and try again).
 */
int upg_pager_pin(struct upg_pager *pg, struct upg_region *r, size_t b, bool pin);
/*
 * May @nr_blocks more blocks be pinned? Not past the budget, as mlock(2)
 * stops at its limit (pins up to it leave the OOM policy to decide).
 */
bool upg_pager_pin_fits(struct upg_pager *pg, size_t nr_blocks);
/* The figures an OOM decision is made on, and why room cannot be made. */
void upg_pager_oom_info(struct upg_pager *pg, struct upg_oom_info *info);

/*
 * Which clean copies a swap-in keeps (pager.c, "Clean copies"): none (a
 * write), those that hold no memory (a read fault: the object is on the
 * swap store, or same-filled), or any that fits (a stream that has not
 * written, WILLNEED).
 */
enum upg_keep { UPG_KEEP_NONE, UPG_KEEP_FREE, UPG_KEEP_ANY };

/*
 * Fault on a block that is INACTIVE or COMPRESSED (@old, read just now),
 * of extent @e, at page @page. Returns false if the block changed under
 * us (the caller looks again); true when the fault was resolved. A
 * COMPRESSED block needs a reserve first (the caller's). @ref: mark it
 * referenced (a fault), or not. @keep: which clean copy to keep.
 */
bool upg_pager_fault(struct upg_pager *pg, struct upg_counters *c,
		     const struct upg_extent *e, size_t block, uint64_t old,
		     uintptr_t page, bool ref, enum upg_keep keep);
/*
 * A RESIDENT block (word @old, held FILLING by the caller) is written or
 * loses a page: forget its clean copy (UPG_PS_CLEAN), if any. Returns the
 * word to store. Its pages stay write-protected: the caller lifts that.
 */
uint64_t upg_pager_clean_drop(struct upg_pager *pg, struct upg_counters *c, uint64_t old);
/*
 * Readahead, in two steps so the stream can be told how far it reaches
 * before the work is done: claim up to @n INACTIVE or COMPRESSED blocks
 * of @e, @b and every @stride blocks after it (FILLING, reserved; their
 * words in @olds),
 * stopping at the first that is neither, at the end of @e, or when the
 * budget has no free room (readahead never waits); then bring them back,
 * keeping clean copies as @keep says. A fault
 * on a claimed block waits for its fill. rt->lock shared.
 */
unsigned int upg_pager_readahead_claim(struct upg_pager *pg, const struct upg_extent *e,
				       size_t b, unsigned int n, size_t stride, uint64_t *olds);
void upg_pager_readahead_fill(struct upg_pager *pg, struct upg_counters *c,
			      struct upg_region *r, size_t b, unsigned int n, size_t stride,
			      const uint64_t *olds, enum upg_keep keep);
/*
 * A fault on COMPRESSED block @b, which the caller has claimed (FILLING,
 * reserved; its word was @olds[0]), at @page, keeping a clean copy as
 * @keep says; then the @n blocks of its stream's window claimed after
 * it (upg_pager_readahead_claim into @olds + 1), as upg_pager_readahead_fill
 * with @ra_keep. With @stride 1 the block and its window load together:
 * neighbouring slots in one read, where the fault's own read and then
 * the window's would cost two, and the thread would wait out both.
 */
void upg_pager_swap_in_stream(struct upg_pager *pg, struct upg_counters *c,
			      struct upg_region *r, size_t b, uintptr_t page, enum upg_keep keep,
			      unsigned int n, size_t stride, const uint64_t *olds,
			      enum upg_keep ra_keep);

/*
 * A block was dropped (REMOVE, UNMAP, destroy) out of state @old, which
 * the caller has replaced by CAS: free its slot or handle, release its
 * bytes. Safe with pg NULL.
 */
void upg_pager_block_dropped(struct upg_runtime *rt, struct upg_region *r,
			     size_t block, uint64_t old);
/*
 * [start, end), part of block @block of @r, was dropped by MADV_DONTNEED:
 * if the block is INACTIVE or COMPRESSED, those pages must read zeros
 * when it comes back. Waits out a busy block; a STAGING one gets the
 * event recorded (upg_pager_staging_event).
 */
void upg_pager_block_punch(struct upg_runtime *rt, struct upg_region *r,
			   size_t block, uintptr_t start, uintptr_t end);
/*
 * mremap: block @j of @old, which overlaps the moved range [from, to) of
 * @old's addresses, becomes block @k of @nr too (rt->lock exclusive). A
 * block wholly moved hands its word over (the old one becomes UNMAPPED,
 * owning nothing); a block cut by the move is shared: the new one gets a
 * copy of its evicted data. Safe with no pager (words move as they are).
 */
void upg_pager_block_moved(struct upg_runtime *rt, struct upg_region *old, size_t j,
			   struct upg_region *nr, size_t k, uintptr_t from, uintptr_t to);
/* @r is being destroyed (rt->lock exclusive): forget it. */
void upg_pager_region_gone(struct upg_pager *pg, struct upg_region *r);

/* Bytes the swap store can hold (0 without one). */
size_t upg_pager_swap_capacity(struct upg_pager *pg);

/* Gauges for upg_stats_get(). */
void upg_pager_stats(struct upg_pager *pg, struct upg_stats *st);

/* Bytes of block @b of @r (the last may be short). */
static inline size_t upg_block_len(const struct upg_region *r, size_t b)
{
	uintptr_t start = r->start + (b << r->block_shift);
	uintptr_t end = start + (1ul << r->block_shift);

	return (end > r->end ? r->end : end) - start;
}

#endif
