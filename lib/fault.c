/*
 * Faults and events. A fault on an ABSENT block claims it (ABSENT ->
 * FILLING by CAS) and fills the whole block in one ioctl; a fault that finds
 * the block FILLING waits for the winner; a fault in a RESIDENT block means
 * a page of it was dropped since (partial MADV_DONTNEED, a cut-short fill)
 * and fills that page alone. UFFDIO_COPY and ZEROPAGE never replace a
 * mapped page, so a wrong guess about a block costs an ioctl, never data.
 *
 * Whatever happens, the faulting thread must be woken: a fill wakes the
 * range it filled; every other outcome ends in an explicit wake, after
 * which the thread retries its access and, if need be, faults again.
 */
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#define UPG_LOG_PREFIX "fault: "
#include "core.h"
#include "pager.h"
#include "log.h"
#include "pagestate.h"
#include "readahead.h"
#include "testing.h"

#define PAGE	UPG_PAGE_SIZE

/* Waiting for another thread's fill: yields, then sleeps of this long. */
#define WAIT_SPINS	16
#define WAIT_SLEEP_NS	20000

_Atomic unsigned int upg_test_fill_delay_us;

static void wake_page(struct upg_runtime *rt, uintptr_t page)
{
	upg_uffd_wake(&rt->uffd, page, PAGE);
}

/* Fill one page; the faulting thread is woken whatever the outcome. */
static bool fill_page(struct upg_runtime *rt, struct upg_counters *c,
		      uintptr_t page, bool write)
{
	size_t done;
	int ret;

	ret = upg_uffd_fill_zero(&rt->uffd, page, PAGE, write, &done);
	switch (ret) {
	case 0:
		upg_stat_inc(c, fill_pages);
		return true;
	case -EEXIST:
		/* Another thread filled it, or it was never dropped. */
		upg_stat_inc(c, fill_raced);
		break;
	case -EAGAIN:
		/* fork/mremap/madvise in progress: the thread will refault. */
		upg_stat_inc(c, fill_retried);
		break;
	default:
		/* Gone (-ENOENT) or out of memory: the retry shows which. */
		upg_stat_inc(c, fill_failed);
		break;
	}
	wake_page(rt, page);
	return false;
}

/*
 * Fill [start, end) of a claimed block: one ioctl, then page by page past
 * any page already there. Returns true if anything was filled.
 */
static bool fill_block(struct upg_runtime *rt, struct upg_counters *c,
		       uintptr_t start, uintptr_t end, uintptr_t fault_page,
		       bool write)
{
	bool zeropage = !write && (upg_runtime_features(rt) & UPG_FEAT_ZEROPAGE);
	bool any;
	size_t done;
	int ret;

	ret = upg_uffd_fill_zero(&rt->uffd, start, end - start, write, &done);
	any = done > 0;
	if (done)
		upg_stat_add(c, UPG_STAT_fill_pages, done / PAGE);
	if (ret == 0) {
		upg_stat_inc(c, fills);
		upg_stat_add(c, zeropage ? UPG_STAT_fill_zeropage : UPG_STAT_fill_copy, 1);
		return true;
	}
	if (ret == -EEXIST || ret == -ENOENT) {
		/*
		 * A page of the block is mapped already (-EEXIST), or the block
		 * spans mappings (-ENOENT: split by mprotect, partly unmapped).
		 * Finish page by page; each page answers for itself.
		 */
		for (uintptr_t p = start + done; p < end; p += PAGE)
			any |= fill_page(rt, c, p, write);
		upg_stat_inc(c, fills);
		return any;
	}
	if (ret == -EAGAIN)
		upg_stat_inc(c, fill_retried);
	else
		upg_stat_inc(c, fill_failed);
	if (!(fault_page >= start && fault_page < start + done))
		wake_page(rt, fault_page);
	return any;
}

/*
 * FAULT_NEED_ROOM: the fault needs room in the budget first: drop rt->lock,
 * wait, retry. FAULT_BUSY: the block is being copied out and this is no
 * reader's fault to park: drop rt->lock, wait a little, retry.
 */
enum fault_result { FAULT_DONE, FAULT_NEED_ROOM, FAULT_BUSY };

/*
 * Claim up to @n ABSENT blocks of @e, @b and every @stride blocks after
 * it, for readahead: stop at the first that is not ABSENT, at the end of
 * @e, or when the budget has no free room. Returns how many were claimed
 * (FILLING, reserved).
 */
static unsigned int claim_absent_run(const struct upg_extent *e, size_t b, unsigned int n,
				     size_t stride)
{
	struct upg_region *r = e->region;
	struct upg_pager *pg = r->rt->pager;
	unsigned int k;

	for (k = 0; k < n && b + k * stride < r->nr_blocks; k++) {
		size_t bk = b + k * stride;
		uint64_t *word = &r->state[bk];
		uint64_t old = upg_ps_make(UPG_PS_ABSENT, 0);
		size_t blen = upg_block_len(r, bk);

		if (r->start + (bk << r->block_shift) + blen > e->end)
			break;
		if (pg && !upg_pager_try_reserve(pg, blen))
			break;
		if (!__atomic_compare_exchange_n(word, &old, upg_ps_make(UPG_PS_FILLING, 0),
						 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			if (pg)
				upg_pager_release(pg, blen);
			break;
		}
	}
	return k;
}

/*
 * Fill ABSENT block @b (claimed: FILLING, its word was @old) and the @n
 * claimed blocks after it, in one ioctl, clamped to @e.
 */
static void fill_absent(const struct upg_extent *e, struct upg_counters *c,
			size_t b, uint64_t old, unsigned int n, uintptr_t addr, bool write)
{
	struct upg_region *r = e->region;
	uintptr_t start = r->start + (b << r->block_shift);
	uintptr_t end = r->start + ((b + n) << r->block_shift) + upg_block_len(r, b + n);
	bool filled;

	start = start < e->start ? e->start : start;
	end = end > e->end ? e->end : end;
	if (upg_test_fill_delay_us)
		usleep(upg_test_fill_delay_us);
	filled = fill_block(r->rt, c, start, end, addr & ~(PAGE - 1), write);
	/*
	 * Filled at all: every block counts as RESIDENT (a page the fill
	 * skipped faults later, page by page); else all go back.
	 */
	for (size_t k = b; k <= b + n; k++) {
		uint64_t w = k == b ? old : upg_ps_make(UPG_PS_ABSENT, 0);

		if (!filled && r->rt->pager)
			upg_pager_release(r->rt->pager, upg_block_len(r, k));
		__atomic_store_n(&r->state[k],
				 upg_ps_with_state(w, filled ? UPG_PS_RESIDENT : UPG_PS_ABSENT),
				 __ATOMIC_RELEASE);
	}
}

/*
 * A stream's fault on ABSENT block @b (claimed, its word @old): fill it
 * and the stream's next blocks; a sequential window in the same ioctl.
 */
static void fill_absent_ahead(const struct upg_extent *e, struct upg_counters *c,
			      size_t b, uint64_t old, uintptr_t addr, bool write)
{
	struct upg_region *r = e->region;
	size_t stride = 1;
	bool read_only;
	unsigned int w = upg_ra_window(r, c, b, write, &stride, &read_only), n = 0;

	if (w)
		n = claim_absent_run(e, b + stride, w, stride);
	fill_absent(e, c, b, old, stride == 1 ? n : 0, addr, write);
	for (unsigned int k = 1; stride > 1 && k <= n; k++)
		fill_absent(e, c, b + k * stride, upg_ps_make(UPG_PS_ABSENT, 0), 0,
			    r->start + ((b + k * stride) << r->block_shift), write);
	if (w)
		upg_ra_done(r, c, b, n, stride);
}

/*
 * Claim the evicted blocks after @b of the stream its fault continues
 * (none if it continues none) into @olds; how many, every *@stride
 * blocks, and the clean copies they keep in *@keep.
 */
static unsigned int claim_window(const struct upg_extent *e, struct upg_counters *c, size_t b,
				 bool write, uint64_t *olds, size_t *stride, enum upg_keep *keep)
{
	struct upg_region *r = e->region;
	bool read_only = false;
	unsigned int w = upg_ra_window(r, c, b, write, stride, &read_only), n;

	*keep = read_only ? UPG_KEEP_ANY : UPG_KEEP_NONE;
	if (!w)
		return 0;
	n = upg_pager_readahead_claim(r->rt->pager, e, b + *stride, w, *stride, olds);
	/* Before the work: a fault where the window ends continues the stream. */
	upg_ra_done(r, c, b, n, *stride);
	return n;
}

/* A stream faulted in a staged block: bring the next ones too. */
static void readahead_evicted(const struct upg_extent *e, struct upg_counters *c, size_t b,
			      bool write)
{
	uint64_t olds[UPG_RA_MAX_BYTES / UPG_PAGE_SIZE];
	size_t stride = 1;
	enum upg_keep keep;
	unsigned int n = claim_window(e, c, b, write, olds, &stride, &keep);

	if (n)
		upg_pager_readahead_fill(e->region->rt->pager, c, e->region, b + stride, n,
					 stride, olds, keep);
}

/*
 * A fault claimed COMPRESSED block @b (FILLING, reserved; it was @old):
 * bring it back, and the window of the stream it continues (none for a
 * prefetch) with it.
 */
static void swap_in_stream(const struct upg_extent *e, struct upg_counters *c, size_t b,
			   uint64_t old, uintptr_t page, enum upg_keep keep, bool write,
			   bool prefetch)
{
	uint64_t olds[1 + UPG_RA_MAX_BYTES / UPG_PAGE_SIZE] = { old };
	size_t stride = 1;
	enum upg_keep ra_keep = UPG_KEEP_NONE;
	unsigned int n = prefetch ? 0 : claim_window(e, c, b, write, olds + 1, &stride, &ra_keep);

	upg_pager_swap_in_stream(e->region->rt->pager, c, e->region, b, page, keep, n, stride,
				 olds, ra_keep);
}

/*
 * A block being copied out (STAGING). A reader's fault parks: the copier
 * wakes the block when done, and the thread faults again; the reader
 * must not wait, for the copier waits for a reader to read its event.
 * The copier's own read of a page dropped meanwhile gets zeros, which is
 * what that page holds. Anyone else retries with no lock held.
 */
static enum fault_result fault_on_staging(const struct upg_extent *e, struct upg_counters *c,
					  uintptr_t page, unsigned int flags)
{
	struct upg_runtime *rt = e->region->rt;

	if (!(flags & UPG_FH_DEFER))
		return FAULT_BUSY;
	if (upg_pager_is_copier(rt->pager, upg_fault_tid)) {
		fill_page(rt, c, page, false);
		return FAULT_DONE;
	}
	upg_stat_inc(c, copyout_parked);
	return FAULT_DONE;
}

/* Lift write-protection for a write at @page, in a block held FILLING. */
static void unprotect(const struct upg_extent *e, uintptr_t page, uint64_t old)
{
	struct upg_region *r = e->region;
	uintptr_t start = page, end = page + PAGE;

	if (old & UPG_PS_CLEAN) {
		size_t b = (page - r->start) >> r->block_shift;

		start = r->start + (b << r->block_shift);
		end = start + upg_block_len(r, b);
		start = start < e->start ? e->start : start;
		end = end > e->end ? e->end : end;
	}
	/* Refused (an event not read yet: -EAGAIN): the writer faults again. */
	if (upg_uffd_writeprotect(&r->rt->uffd, start, end - start, false))
		upg_uffd_wake(&r->rt->uffd, start, end - start);
}

/*
 * A write to a write-protected page: a block with a clean copy (pager.c,
 * "Clean copies") forgets it and the whole block (its part in @e) is
 * unprotected; else (a copy-out that did not go ahead, a copy dropped
 * before) just the page. Lifting the protection wakes the writer. The
 * block is held (FILLING) meanwhile if RESIDENT, so the clock cannot move
 * it out with its copy, or write-protect it for a copy-out, in between.
 */
static enum fault_result fault_wp(const struct upg_extent *e, struct upg_counters *c,
				  uintptr_t page, unsigned int flags)
{
	struct upg_region *r = e->region;
	size_t b = (page - r->start) >> r->block_shift;
	uint64_t *word = &r->state[b];

	for (;;) {
		uint64_t old = __atomic_load_n(word, __ATOMIC_ACQUIRE);

		if (upg_ps_state(old) == UPG_PS_STAGING)
			return fault_on_staging(e, c, page, flags);
		if (upg_ps_is_busy(old)) {
			sched_yield();
			continue;
		}
		if (upg_ps_state(old) != UPG_PS_RESIDENT) {
			unprotect(e, page, 0);
			return FAULT_DONE;
		}
		if (!__atomic_compare_exchange_n(word, &old, upg_ps_with_state(old, UPG_PS_FILLING),
						 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			continue;
		unprotect(e, page, old);
		__atomic_store_n(word, upg_pager_clean_drop(r->rt->pager, c, old),
				 __ATOMIC_RELEASE);
		return FAULT_DONE;
	}
}

/*
 * The block's fill is clamped to @e, the mapped piece of the region the
 * fault is in: the rest of the block may be unmapped, or someone else's.
 */
static enum fault_result fault_in_extent(const struct upg_extent *e,
					 struct upg_counters *c, uintptr_t addr,
					 unsigned int flags)
{
	bool write = flags & UPG_FH_WRITE;
	bool prefetch = flags & UPG_FH_PREFETCH;
	enum upg_keep keep = write ? UPG_KEEP_NONE : prefetch ? UPG_KEEP_ANY : UPG_KEEP_FREE;
	struct upg_region *r = e->region;
	struct upg_pager *pg = r->rt->pager;
	size_t b = (addr - r->start) >> r->block_shift;
	uint64_t *word = &r->state[b];
	uintptr_t page = addr & ~(PAGE - 1);
	unsigned int spins = 0;
	bool waited = false;

	if (flags & UPG_FH_WP)
		return fault_wp(e, c, page, flags);
	for (;;) {
		uint64_t old = __atomic_load_n(word, __ATOMIC_ACQUIRE);

		switch (upg_ps_state(old)) {
		case UPG_PS_ABSENT:
			if (prefetch && !(flags & UPG_FH_POPULATE))
				return FAULT_DONE;
			if (pg && !upg_pager_try_reserve(pg, upg_block_len(r, b)))
				return FAULT_NEED_ROOM;
			if (!__atomic_compare_exchange_n(word, &old,
					upg_ps_with_state(old, UPG_PS_FILLING), false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				if (pg)
					upg_pager_release(pg, upg_block_len(r, b));
				continue;
			}
			if (prefetch)
				fill_absent(e, c, b, old, 0, addr, write);
			else
				fill_absent_ahead(e, c, b, old, addr, write);
			return FAULT_DONE;
		case UPG_PS_FILLING:
		case UPG_PS_EVICTING:
			/*
			 * The owner is between two ioctls (microseconds), or
			 * reading a readahead window from the swap store
			 * (hundreds): yield a few times, then sleep, leaving
			 * the CPU to the owner. Its fill wakes the faulting
			 * thread itself; this only looks again.
			 */
			if (!waited)
				upg_stat_inc(c, fill_waited);
			waited = true;
			if (spins++ < WAIT_SPINS)
				sched_yield();
			else
				nanosleep(&(struct timespec){ .tv_nsec = WAIT_SLEEP_NS }, NULL);
			continue;
		case UPG_PS_RESIDENT:
			if (prefetch && !(flags & UPG_FH_POPULATE))
				return FAULT_DONE;
			/*
			 * A page of it was dropped. Hold the block while the page
			 * is filled: were the clock to move the block out between
			 * our look and the fill, the zero page would land where
			 * data had just moved away, and stay there.
			 */
			if (!__atomic_compare_exchange_n(word, &old,
					upg_ps_with_state(old, UPG_PS_FILLING), false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				continue;
			if (fill_page(r->rt, c, page, write)) {
				/* Its clean copy has the page's old data. */
				upg_stat_inc(c, fill_single);
				old = upg_pager_clean_drop(pg, c, old);
			} else if (write && upg_pager_write_protects(pg)) {
				/* SIGBUS mode cannot tell a write-protect fault. */
				unprotect(e, page, old);
				old = upg_pager_clean_drop(pg, c, old);
			}
			__atomic_store_n(word, old, __ATOMIC_RELEASE);
			return FAULT_DONE;
		case UPG_PS_UNMAPPED:
			if (prefetch)
				return FAULT_DONE;
			/*
			 * Only a block partly unmapped can be here (whole ones
			 * left the table): its mapped part faults like a
			 * resident block's dropped page.
			 */
			upg_stat_inc(c, faults_in_hole);
			fill_page(r->rt, c, page, write);
			return FAULT_DONE;
		case UPG_PS_INACTIVE:
			/* Still counted resident: no reserve. */
			if (!upg_pager_fault(pg, c, e, b, old, page, true, keep))
				continue;
			if (!prefetch)
				readahead_evicted(e, c, b, write);
			return FAULT_DONE;
		case UPG_PS_STAGING:
			return fault_on_staging(e, c, page, flags);
		case UPG_PS_COMPRESSED:
			if (!upg_pager_try_reserve(pg, upg_block_len(r, b)))
				return FAULT_NEED_ROOM;
			if (__atomic_compare_exchange_n(word, &old,
							upg_ps_with_state(old, UPG_PS_FILLING), false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				swap_in_stream(e, c, b, old, page, keep, write, prefetch);
				return FAULT_DONE;
			}
			upg_pager_release(pg, upg_block_len(r, b));
			continue;
		}
	}
}

bool upg_fault_handle(struct upg_runtime *rt, struct upg_counters *c,
		      uintptr_t addr, unsigned int flags)
{
	bool fill_unknown = flags & UPG_FH_FILL_UNKNOWN;
	bool write = flags & UPG_FH_WRITE;
	enum fault_result res = FAULT_DONE;
	struct upg_room_wait room = { 0 };
	const struct upg_extent *e;
	/* A prefetch is no fault, a retry was counted: neither counts. */
	bool counted = flags & (UPG_FH_PREFETCH | UPG_FH_RETRY), waited = false;

	for (;;) {
		pthread_rwlock_rdlock(&rt->lock);
		e = upg_extent_find(rt, addr);
		if (!e && !waited) {
			/*
			 * Perhaps the new range of an mremap whose event another
			 * reader holds: its evicted blocks are still to be carried
			 * over. Let the events read so far be handled first.
			 */
			pthread_rwlock_unlock(&rt->lock);
			upg_uffd_loop_wait_events(rt->loop);
			waited = true;
			continue;
		}
		if ((e || fill_unknown) && !counted) {
			upg_stat_inc(c, faults);
			if (!write)
				upg_stat_inc(c, faults_read);
			counted = true;
		}
		if (e) {
			res = fault_in_extent(e, c, addr, flags);
		} else if (fill_unknown) {
			/*
			 * Registered memory we do not track: a region being
			 * destroyed, or one grown by mremap. Zeros are what the
			 * kernel would give.
			 */
			upg_stat_inc(c, faults_unknown);
			fill_page(rt, c, addr & ~(PAGE - 1), write);
		}
		pthread_rwlock_unlock(&rt->lock);
		if (res == FAULT_BUSY) {
			/* A copy-out takes a millisecond or so; it needs no lock of ours. */
			usleep(50);
			res = FAULT_DONE;
			continue;
		}
		if (res != FAULT_NEED_ROOM)
			return e || fill_unknown;
		res = FAULT_DONE;
		if (upg_pager_reclaim(rt->pager, c, &room, !(flags & UPG_FH_DEFER)))
			continue;
		/* Not woken: the evictor fills it (and wakes it) when room comes. */
		if (upg_pager_defer(rt->pager, c, addr, flags & ~UPG_FH_RETRY))
			return true;
		upg_pager_reclaim(rt->pager, c, &room, true);
	}
}

_Thread_local uint32_t upg_fault_tid;

static void on_fault(void *ctx, struct upg_counters *c, uintptr_t addr,
		     bool write, bool wp, uint32_t tid)
{
	upg_fault_tid = tid;
	/* The kernel sent it: the address is registered with our uffd. */
	upg_fault_handle(ctx, c, addr,
			 (write ? UPG_FH_WRITE : 0) | (wp ? UPG_FH_WP : 0) |
			 UPG_FH_FILL_UNKNOWN | UPG_FH_DEFER);
	upg_fault_tid = 0;
}

/*
 * Wait out a busy block @b of @r, then replace its word; returns the old
 * word. A block being copied out cannot be waited for: the event is
 * recorded for the copier (nothing changed here).
 */
static uint64_t settle_and_set(struct upg_region *r, size_t b, uint64_t to,
			       unsigned int keep, bool *changed)
{
	uint64_t *word = &r->state[b];

	for (;;) {
		uint64_t old = __atomic_load_n(word, __ATOMIC_ACQUIRE);

		*changed = false;
		if (upg_ps_state(old) == UPG_PS_STAGING) {
			uintptr_t bs = r->start + (b << r->block_shift);

			if (upg_pager_staging_event(r->rt, r, b, bs, bs + upg_block_len(r, b),
						    upg_ps_state(to) == UPG_PS_UNMAPPED))
				return old;
			continue;
		}
		if (upg_ps_is_busy(old)) {
			/* A fill or an eviction: microseconds, never waits on us. */
			sched_yield();
			continue;
		}
		if (upg_ps_state(old) == keep)
			return old;
		if (__atomic_compare_exchange_n(word, &old, to, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			*changed = true;
			return old;
		}
	}
}

void upg_blocks_set(struct upg_region *r, uintptr_t start, uintptr_t end,
		    unsigned int to, unsigned int keep)
{
	size_t bs = 1ul << r->block_shift;
	size_t first, last;

	start = start < r->start ? r->start : start;
	end = end > r->end ? r->end : end;
	if (start >= end)
		return;
	first = (start - r->start + bs - 1) >> r->block_shift;
	/* The last block may be short: it ends at r->end. */
	last = end == r->end ? r->nr_blocks : (end - r->start) >> r->block_shift;
	/* A block partly dropped keeps its state; an evicted one loses the part. */
	if (to == UPG_PS_ABSENT) {
		size_t fb = (start - r->start) >> r->block_shift;
		size_t lb = (end - 1 - r->start) >> r->block_shift;

		if (fb < first)
			upg_pager_block_punch(r->rt, r, fb, start,
					      fb == lb ? end : r->start + first * bs);
		if (lb >= last && (lb != fb || fb >= first))
			upg_pager_block_punch(r->rt, r, lb, r->start + last * bs, end);
	}
	for (size_t b = first; b < last; b++) {
		bool changed;
		uint64_t old = settle_and_set(r, b, upg_ps_make((enum upg_ps)to, 0), keep,
					      &changed);

		if (changed)
			upg_pager_block_dropped(r->rt, r, b, old);
	}
}

/*
 * MADV_DONTNEED (or MADV_REMOVE): the kernel drops the pages right after
 * this event is read. Whole blocks go back to ABSENT; a partly covered
 * block stays RESIDENT and its dropped pages fill one by one. If a fault
 * on a dropped page wins the race with this handler, the block ends up
 * ABSENT with that page mapped, and its next fill goes page by page past
 * it: slower, never wrong.
 */
static void on_remove(void *ctx, struct upg_counters *c, uintptr_t start,
		      uintptr_t end)
{
	upg_stat_inc(c, events_remove);
	upg_extents_set_blocks(ctx, start, end, UPG_PS_ABSENT, UPG_PS_UNMAPPED);
}

static void on_unmap(void *ctx, struct upg_counters *c, uintptr_t start,
		     uintptr_t end)
{
	upg_stat_inc(c, events_unmap);
	upg_extents_cut(ctx, start, end);
}

/*
 * mremap moved [from, from + len) to @to (the kernel reports the old range
 * with an UNMAP too; cutting twice is harmless). The new range stays
 * registered with us: it becomes a region of its own with the old blocks'
 * state, so its evicted blocks come back on fault as before. Memory of no
 * region (a region being destroyed) is unregistered instead: the kernel
 * serves it as plain anonymous memory, its pages moved with it.
 */
static void on_remap(void *ctx, struct upg_counters *c, uintptr_t from,
		     uintptr_t to, size_t len)
{
	struct upg_runtime *rt = ctx;
	int ret;

	upg_stat_inc(c, events_remap);
	ret = upg_region_adopt_remap(rt, from, to, len);
	upg_extents_cut(rt, from, from + len);
	if (!ret) {
		upg_stat_inc(c, remap_adopted);
		return;
	}
	if (ret != -ENOENT)
		upg_err("mremap to %p: cannot follow it (%d): evicted data there is lost",
			(void *)to, ret);
	ret = upg_uffd_unregister(&rt->uffd, to, len);
	if (ret)
		upg_warn("mremap to %p: unregister: %d", (void *)to, ret);
}

const struct upg_uffd_ops upg_fault_ops = {
	.fault = on_fault,
	.remove = on_remove,
	.unmap = on_unmap,
	.remap = on_remap,
};
