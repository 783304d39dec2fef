/*
 * The pager: a budget on resident bytes, a clock with second chance, and
 * the background evictor.
 *
 * Resident bytes are counted per block: a fill reserves the block's bytes
 * before it claims the block, eviction and drops give them back. The clock
 * hand walks the regions' blocks: a RESIDENT block with the referenced bit
 * loses the bit (second chance); one without is moved, data intact, into
 * a staging slot with UFFDIO_MOVE (INACTIVE: still resident, but the next
 * touch faults). A fault on an INACTIVE block moves it straight back and
 * marks it referenced. INACTIVE blocks leave in the order they came (a
 * FIFO): those still there when the evictor needs room are compressed into
 * the zpool and their staging memory released (COMPRESSED). A fault on a
 * COMPRESSED block decompresses into a buffer and fills with UFFDIO_COPY.
 *
 * The staging area is registered with a second userfaultfd that asks for
 * no events and that nobody reads (UFFDIO_MOVE needs the destination
 * registered, with the fd the ioctl goes to; the source need not be). So
 * MADV_DONTNEED there waits for no reader: the readers may be waiting for
 * the evictor.
 *
 * Without UFFDIO_MOVE (before 6.8) blocks are copied out instead: see
 * "Copy-out" below. The staging area is then plain memory.
 *
 * Lock order: copy_mutex (copy-out only), evict_lock, rt->lock (shared:
 * faults, the evictor; exclusive: unmap, region create/destroy), then
 * pg->lock (slots, the FIFO, the hand) or zap_lock. The evictor never
 * waits for a reader while it holds any of the others, so a reader may
 * wait for the evictor.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define UPG_LOG_PREFIX "pager: "
#include "core.h"
#include "log.h"
#include "options.h"
#include "pagestate.h"
#include "oom.h"
#include "pager.h"
#include "swap/tier.h"
#include "testing.h"

#define PAGE		UPG_PAGE_SIZE
#define NR_BUFS		64	/* bounce buffers: one per thread at work */
#define NR_RA_BUFS	4	/* readahead windows loaded at once from a swap store */
#define EVICT_BATCH	32	/* evictor steps per hold of rt->lock */
/*
 * Blocks moved out or compressed per step, slots released together: 1 MiB
 * a step (one TLB shoot-down for it), at least 16 blocks, at most
 * EVICT_RUN_MAX (pg->evict_run).
 */
#define EVICT_RUN_BYTES	(1u << 20)
#define EVICT_RUN_MIN	16
#define EVICT_RUN_MAX	256
#define SLOT_SPARE	4
/* Slots emptied in one batch at most (slot_drop_later), and their bytes. */
#define DROP_MAX	64
#define DROP_BYTES	(256u << 10)

_Atomic unsigned int upg_test_evict_delay_us;
_Atomic uintptr_t upg_test_evicting_addr;
_Atomic unsigned int upg_test_copyout_delay_us;
_Atomic unsigned int upg_test_copyout_phase;
_Atomic uintptr_t upg_test_copyout_addr;
_Atomic uintptr_t upg_test_copyout_lo, upg_test_copyout_hi;
_Atomic bool upg_test_no_batch_drop;
_Atomic unsigned int upg_test_copy_enomem;

/* Faults handed to the evictor at most; more wait in their reader. */
#define NR_DEFERRED	128

struct deferred_fault {
	uintptr_t addr;
	unsigned int flags;	/* UPG_FH_* of the fault */
	uint64_t since_ns;	/* first handed over */
};

struct inactive_entry {
	struct upg_region *r;
	size_t block;
	uint64_t slot;
};

/* A block of a copy-out run that an mremap took elsewhere meanwhile. */
struct moved_block {
	struct upg_region *r;	/* where it went; NULL: not moved */
	size_t b;
	uintptr_t from, to;	/* the part moved, at its old addresses */
	bool whole;		/* the whole block (else a copy is made) */
	bool gone;		/* unmapped at the new address since */
	bool dropped;		/* MADV_DONTNEED at the new address since */
};

/*
 * The run being copied out (one at a time: copy_mutex). Event handlers
 * that meet its STAGING blocks record here, under zap_lock; the copier
 * applies it all when done (finish_copy_out).
 */
struct copy_run {
	bool active;		/* its blocks are STAGING */
	bool pending;		/* claimed, not yet copied (copier only) */
	bool queue;		/* INACTIVE at the FIFO's tail (else COLD) */
	struct upg_region *r;
	size_t b0, n;		/* blocks [b0, b0 + n) of r ... */
	uint64_t s0;		/* ... into slots [s0, s0 + n) */
	uintptr_t start;
	size_t len;
	uint32_t tid;		/* atomic: the copying thread, while it copies */
	uint64_t olds[EVICT_RUN_MAX];	/* words before the claim */
	bool gone[EVICT_RUN_MAX];	/* unmapped meanwhile */
	struct moved_block moved[EVICT_RUN_MAX];
	uint8_t *seen;		/* per page: REMOVE events over it */
	unsigned char *vec;	/* per page: mincore() */
};

struct upg_pager {
	struct upg_runtime *rt;
	size_t block_size;
	size_t evict_run;			/* blocks, see EVICT_RUN_BYTES */
	size_t budget, budget_total, high, low;	/* bytes */
	struct upg_tier *tier;		/* the zpool, and a swap store if set */

	struct upg_uffd staging_uffd;	/* with UFFDIO_MOVE only */
	uint8_t *staging;
	size_t nr_slots;
	bool copy_out;			/* no UFFDIO_MOVE: copy blocks out */
	bool keep_clean;		/* clean copies: see "Clean copies" */
	size_t clean_bytes;		/* atomic: their zpool bytes */
	size_t clean_max;		/* ... at most */
	size_t compact_floor;		/* evictor only: see compact_zpool */
	pthread_mutex_t copy_mutex;	/* one copy-out at a time */
	pthread_mutex_t zap_lock;	/* copy's records */
	struct copy_run copy;

	pthread_mutex_t lock;
	/*
	 * Slots are handed out in ring order from the cursor, and INACTIVE
	 * blocks leave in the order they came, so the slots freed together
	 * are mostly neighbours: one range of a batched drop (staging_drop)
	 * releases a run of them.
	 */
	bool *slot_used;
	/*
	 * process_madvise() on ourselves drops scattered slots with one TLB
	 * shoot-down (6.13+ takes any advice for the caller's own mm): a
	 * pidfd of this process (@self_pid), reopened in a fork's child.
	 */
	int self_pidfd;
	pid_t self_pid;
	bool no_batch_drop;		/* atomic: refused once, madvise() per range */
	/* Slots to empty together (slot_drop_later), under lock; still used. */
	uint64_t drops[DROP_MAX];
	size_t nr_drops, drop_bytes;
	/* The clean copy's zpool handle of an INACTIVE block, per slot. */
	uint64_t *slot_clean;
	size_t slot_cursor;
	/* INACTIVE blocks, oldest first; entries go stale when a block
	 * comes back, so the ring has room for twice the slots. */
	struct inactive_entry *ring;
	size_t ring_cap, ring_head, ring_len;
	struct upg_region *hand_region;
	size_t hand_block;

	/*
	 * Evictions hold it shared, fork (pager_fork_prepare) exclusive: no
	 * block leaves while fork brings them all back. Taken before
	 * rt->lock; writers first, so a stream of evictions cannot starve it.
	 */
	pthread_rwlock_t evict_lock;
	struct upg_pager *next_live;	/* live_pagers, under live_lock */

	uint8_t *bufs;			/* NR_BUFS blocks */
	uint64_t bufs_free;		/* bit i: bufs[i] is free */
	uint8_t *ra_bufs;		/* NR_RA_BUFS readahead windows (a swap store only) */
	unsigned int ra_free;		/* bit i: ra_bufs' window i is free */

	size_t resident;		/* bytes, atomic */
	size_t inactive;		/* bytes, atomic */
	size_t pinned;			/* bytes, atomic */
	uint64_t freed_seq;		/* atomic: bumped by every release */
	bool store_full;		/* the zpool refused the last store */
	pthread_mutex_t store_lock;	/* with a swap store: evict_batch one at a time */
	uint32_t evict_seq;		/* futex: the evictor sleeps on it */
	bool evictor_asleep;		/* atomic: a kick must make a syscall */
	uint32_t room_seq;		/* futex: stalled fills sleep on it */
	unsigned int waiters;		/* stalled fills, atomic */
	/*
	 * Faults a reader could not fill for want of room, handed to the
	 * evictor so the reader goes back to reading: a reader that waited
	 * would leave unread the events (munmap, MADV_DONTNEED) that may be
	 * what makes the room, and with every reader waiting nothing would.
	 */
	pthread_mutex_t defer_lock;
	struct deferred_fault deferred[NR_DEFERRED];
	size_t nr_deferred;		/* atomic reads */
	struct upg_room_wait defer_wait;	/* evictor only */
	bool stop;
	bool evictor_started;
	pthread_t evictor;
};

static void futex_wait(uint32_t *word, uint32_t val, long timeout_ns)
{
	struct timespec ts = { timeout_ns / 1000000000, timeout_ns % 1000000000 };

	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake_all(uint32_t *word)
{
	__atomic_fetch_add(word, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static size_t load(const size_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* The resident limit now: budget_total also has to hold the zpool. */
static size_t resident_limit(struct upg_pager *pg)
{
	size_t limit = pg->budget, stored;

	if (!pg->budget_total)
		return limit;
	stored = upg_tier_mem_used(pg->tier);
	if (stored >= pg->budget_total)
		return pg->block_size;	/* one block, so a fault can finish */
	if (pg->budget_total - stored < limit)
		limit = pg->budget_total - stored;
	return limit < pg->block_size ? pg->block_size : limit;
}

/*
 * Every fill above the high watermark kicks: bump the word always (a
 * sleep about to start sees it changed and returns), make the wake-up
 * system call only when the evictor really sleeps.
 */
static void kick_evictor(struct upg_pager *pg)
{
	__atomic_fetch_add(&pg->evict_seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&pg->evictor_asleep, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &pg->evict_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void evictor_sleep(struct upg_pager *pg, uint32_t seq, long timeout_ns)
{
	__atomic_store_n(&pg->evictor_asleep, true, __ATOMIC_SEQ_CST);
	futex_wait(&pg->evict_seq, seq, timeout_ns);
	__atomic_store_n(&pg->evictor_asleep, false, __ATOMIC_SEQ_CST);
}

bool upg_pager_try_reserve(struct upg_pager *pg, size_t len)
{
	size_t cur = load(&pg->resident);
	size_t limit = resident_limit(pg);

	do {
		if (cur + len > limit) {
			kick_evictor(pg);
			return false;
		}
	} while (!__atomic_compare_exchange_n(&pg->resident, &cur, cur + len, true,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	if (cur + len > pg->high)
		kick_evictor(pg);
	return true;
}

void upg_pager_release(struct upg_pager *pg, size_t len)
{
	__atomic_fetch_sub(&pg->resident, len, __ATOMIC_RELAXED);
	__atomic_fetch_add(&pg->freed_seq, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&pg->waiters, __ATOMIC_RELAXED))
		futex_wake_all(&pg->room_seq);
}

void upg_pager_wait_room(struct upg_pager *pg, struct upg_counters *c)
{
	uint64_t t0 = upg_now_ns();
	uint32_t seq = __atomic_load_n(&pg->room_seq, __ATOMIC_ACQUIRE);

	__atomic_fetch_add(&pg->waiters, 1, __ATOMIC_RELAXED);
	kick_evictor(pg);
	/*
	 * Not a loop: the caller retries its fault and comes back if there
	 * is still no room. The timeout bounds a lost wake-up.
	 */
	if (load(&pg->resident) + pg->block_size > resident_limit(pg))
		futex_wait(&pg->room_seq, seq, 10 * 1000000);
	__atomic_fetch_sub(&pg->waiters, 1, __ATOMIC_RELAXED);
	upg_stat_inc(c, stalls);
	upg_stat_add(c, UPG_STAT_stall_ns, upg_now_ns() - t0);
}

/* Bounce buffers: from unmanaged memory, no malloc (SIGBUS handlers). */
static uint8_t *buf_get(struct upg_pager *pg)
{
	for (;;) {
		uint64_t free = __atomic_load_n(&pg->bufs_free, __ATOMIC_ACQUIRE);

		if (!free) {
			sched_yield();
			continue;
		}
		unsigned int i = (unsigned int)__builtin_ctzll(free);

		if (__atomic_compare_exchange_n(&pg->bufs_free, &free, free & ~(1ull << i),
						false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return pg->bufs + (size_t)i * pg->block_size;
	}
}

static void buf_put(struct upg_pager *pg, uint8_t *buf)
{
	size_t i = (size_t)(buf - pg->bufs) / pg->block_size;

	__atomic_fetch_or(&pg->bufs_free, 1ull << i, __ATOMIC_RELEASE);
}

/* A window and the faulting block before it (upg_pager_swap_in_stream). */
static size_t ra_buf_bytes(const struct upg_pager *pg)
{
	return UPG_RA_MAX_BYTES > pg->block_size ? UPG_RA_MAX_BYTES + pg->block_size :
						   pg->block_size;
}

/*
 * A buffer for a readahead window (ra_load), or NULL when all are in
 * use: the window then loads block by block.
 */
static uint8_t *ra_buf_get(struct upg_pager *pg)
{
	unsigned int free = __atomic_load_n(&pg->ra_free, __ATOMIC_ACQUIRE);

	while (free) {
		unsigned int i = (unsigned int)__builtin_ctz(free);

		if (__atomic_compare_exchange_n(&pg->ra_free, &free, free & ~(1u << i), false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return pg->ra_bufs + (size_t)i * ra_buf_bytes(pg);
	}
	return NULL;
}

static void ra_buf_put(struct upg_pager *pg, uint8_t *buf)
{
	size_t i = (size_t)(buf - pg->ra_bufs) / ra_buf_bytes(pg);

	__atomic_fetch_or(&pg->ra_free, 1u << i, __ATOMIC_RELEASE);
}

/*
 * Clean copies. A block brought back by the readahead of a stream that
 * has not written (readahead.h: a writing stream's blocks would each
 * take a write-protect fault; seq with 50 % writes ran 0.94-1.18x
 * kernel-zram with copies, 2.41x without) or by WILLNEED keeps its zpool
 * handle for as long as no byte of it changes, so evicting it again costs
 * no compression (the kernel's zram compresses a clean page again at
 * every eviction). Only those: a stream's blocks
 * are read in order and leave in order, soon, while a block faulted in at
 * random may stay long, its copy's bytes taken from the budget all that
 * time. Measured (upager-bench, 1 GiB, 25 %, text, 2 threads, ratio to
 * kernel-zram, 3 runs): copies for every read swap-in gave seq 2.57-2.88x
 * against 1.83-2.12x without, but uniform 0.86-0.97x against 1.04-1.11x.
 * With a swap store, a block stored straight to it (tier.h: 0 bytes) is
 * kept by every read fault too (UPG_KEEP_FREE): its copy is a slot on the
 * store, no memory, and keeping it saves a write at its next eviction,
 * as the kernel's swap cache keeps a clean page's slot (upager-bench
 * uniform read, 1 GiB random at 25 %: one write a page evicted before,
 * none once the copies are in place).
 * Its pages are filled write-protected (UFFDIO_COPY_MODE_WP):
 * the first write faults, and the handler forgets the copy before it
 * lifts the protection (fault.c, fault_wp), so a kept copy is always the
 * block's data. Moved out by the clock, the block's handle waits in
 * slot_clean[] beside its slot, and compressing it only frees the slot.
 * Moved back, it is copied in write-protected (UFFDIO_MOVE would map it
 * writable). A page dropped (REMOVE, or filled alone), an mremap or a pin
 * forgets the copy.
 *
 * Why synchronous write-protect faults and not WP_ASYNC + PAGEMAP_SCAN:
 * UFFDIO_MOVE drops the uffd-wp bit, so the written bit would have to be
 * read before the move, and a write between that scan and the move would
 * go unseen, the copy handed back stale. A synchronous fault cannot be
 * missed; it costs a fault on the first write after a read swap-in
 * (swap-ins for a write keep no copy).
 *
 * The copies must not make upager's memory (resident + zpool) larger
 * than the kernel's at the same budget (the budget + a store of the
 * evicted data). Under budget_total they count as all zpool bytes do.
 * Else a copy of C bytes for U bytes of pages is charged to the resident
 * limit: charged k * C, the budget holds k * C bytes less of pages, which
 * the store then holds at C / U of their size, so memory grows by
 * C - k * C + k * C * C / U: nothing at k = U / (U - C). A block that
 * compresses worse than half keeps no copy (its charge would pass the
 * block's own size: incompressible data would double). At most clean_max
 * bytes of copies. They need EVENT_REMOVE (a MADV_DONTNEED not seen would
 * leave a copy of data the application freed) and UFFDIO_MOVE (copy-out
 * write-protects for its own ends).
 *
 * At most 1/32 of the budget in clean copies, and 32 MiB. Measured
 * (upager-bench, 2 GiB, text, seq, ratio to kernel-zram, single runs): at
 * a 50 % budget a cap of 1/8 (128 MiB) gave 1.25-1.44x, 1/32 2.01x, 1/128
 * 2.09x; at 25 %, 1/8 2.62x, 1/32 2.58x, 1/128 2.11x. Why the large cap
 * costs so much is not known yet.
 */
#define CLEAN_MAX	(32ul << 20)

static size_t clean_charge(struct upg_pager *pg, uint64_t handle, size_t bytes)
{
	size_t orig = upg_tier_object_pages(pg->tier, handle) * PAGE;

	return pg->budget_total || !bytes ? 0 : bytes * orig / (orig - bytes);
}

/*
 * Does @keep let @handle stay as a clean copy? UPG_KEEP_FREE: only an
 * object stored straight to the swap store (0 bytes), whose copy holds
 * no memory; a same-filled one (0 bytes too) costs nothing to store
 * again, so it is not worth a write-protect fault.
 */
static bool keep_allows(struct upg_pager *pg, enum upg_keep keep, uint64_t handle)
{
	return keep == UPG_KEEP_ANY ||
	       (keep == UPG_KEEP_FREE && upg_tier_has_store(pg->tier) &&
		!upg_tier_object_bytes(pg->tier, handle));
}

/* Count @handle as a clean copy, if @keep allows it, it is worth its room and fits. */
static bool clean_keep(struct upg_pager *pg, uint64_t handle, enum upg_keep keep)
{
	size_t bytes = upg_tier_object_bytes(pg->tier, handle);
	size_t cur = load(&pg->clean_bytes), charge;

	if (!keep_allows(pg, keep, handle))
		return false;
	if (!bytes)
		return true;	/* no memory: neither counted nor capped */
	if (bytes > upg_tier_object_pages(pg->tier, handle) * PAGE / 2)
		return false;
	do {
		if (cur + bytes > pg->clean_max)
			return false;
	} while (!__atomic_compare_exchange_n(&pg->clean_bytes, &cur, cur + bytes, true,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	charge = clean_charge(pg, handle, bytes);
	if (charge && !upg_pager_try_reserve(pg, charge)) {
		__atomic_fetch_sub(&pg->clean_bytes, bytes, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

/* A clean copy is one no more (its bytes uncounted); freed if @free_it. */
static void clean_forget(struct upg_pager *pg, uint64_t handle, bool free_it)
{
	size_t bytes = upg_tier_object_bytes(pg->tier, handle);
	size_t charge = clean_charge(pg, handle, bytes);

	__atomic_fetch_sub(&pg->clean_bytes, bytes, __ATOMIC_RELAXED);
	if (charge)
		upg_pager_release(pg, charge);
	if (free_it)
		upg_tier_free(pg->tier, handle);
}

/* The clean copy waiting beside @slot (0: none), taken from it. */
static uint64_t slot_take_clean(struct upg_pager *pg, uint64_t slot)
{
	return __atomic_exchange_n(&pg->slot_clean[slot], 0, __ATOMIC_ACQ_REL);
}

uint64_t upg_pager_clean_drop(struct upg_pager *pg, struct upg_counters *c, uint64_t old)
{
	if (!(old & UPG_PS_CLEAN))
		return old;
	clean_forget(pg, upg_ps_slot(old), true);
	upg_stat_inc(c, clean_dropped);
	return upg_ps_make(upg_ps_state(old), 0) | (old & (UPG_PS_REF | UPG_PS_PIN));
}

bool upg_pager_write_protects(const struct upg_pager *pg)
{
	return pg && (pg->copy_out || pg->keep_clean);
}

static uint8_t *slot_addr(struct upg_pager *pg, uint64_t slot)
{
	return pg->staging + slot * pg->block_size;
}

/* Empty a slot's pages: no event, nobody waits (see the file comment). */
static void slot_discard(struct upg_pager *pg, uint64_t slot, size_t off, size_t len)
{
	madvise(slot_addr(pg, slot) + off, len, MADV_DONTNEED);
}

/* The pidfd staging_drop() advises through (< 0: madvise() instead). */
static void self_pidfd_open(struct upg_pager *pg)
{
	pg->self_pid = getpid();
	pg->self_pidfd = (int)syscall(SYS_pidfd_open, pg->self_pid, 0);
}

/*
 * Empty the staging ranges @iov[0..n) with one TLB shoot-down for all
 * (process_madvise batches it, 6.16+); madvise() per range where the
 * kernel refuses. Measured here (scattered 4 KiB ranges, another CPU in
 * the mm): 1.3-1.5 us a range in batches of 512, 50 us each alone.
 * The pidfd must be this process's: after a fork without our handler
 * (a raw clone) it would name the parent, so check.
 */
static bool staging_drop(struct upg_pager *pg, struct upg_counters *c, struct iovec *iov,
			 size_t n)
{
	bool ok = true;
	bool batch = pg->self_pidfd >= 0 && pg->self_pid == getpid() &&
		     !__atomic_load_n(&pg->no_batch_drop, __ATOMIC_RELAXED) &&
		     !upg_test_no_batch_drop;
	size_t done = 0;

	while (batch && done < n) {
		size_t k = n - done < IOV_MAX ? n - done : IOV_MAX, want = 0;
		long ret;

		for (size_t i = 0; i < k; i++)
			want += iov[done + i].iov_len;
		ret = syscall(SYS_process_madvise, pg->self_pidfd, iov + done, k,
			      MADV_DONTNEED, 0);
		if (ret < 0 && errno != EINTR && errno != EAGAIN) {
			if (!__atomic_exchange_n(&pg->no_batch_drop, true, __ATOMIC_RELAXED))
				upg_info("process_madvise: %s: one madvise per range from now on",
					 strerror(errno));
			break;
		}
		if (ret != (long)want)
			break;	/* cut short: the rest one by one */
		upg_stat_inc(c, drop_batches);
		done += k;
	}
	for (; done < n; done++)
		ok &= !madvise(iov[done].iov_base, iov[done].iov_len, MADV_DONTNEED);
	return ok;
}

/*
 * Slots a drop could not empty stay taken: a full slot handed out again
 * would refuse every move into it, or lend its stale pages to a run
 * (gap_take). Their memory is lost until the runtime ends.
 */
static void drop_failed(size_t n)
{
	upg_err("MADV_DONTNEED on the staging area failed (%s): %zu slots kept out of use",
		strerror(errno), n);
}

/* The next free slot from the cursor on, once round at most. */
static bool slot_alloc(struct upg_pager *pg, uint64_t *slot)
{
	bool ok = false;

	pthread_mutex_lock(&pg->lock);
	for (size_t i = 0; i < pg->nr_slots && !ok; i++) {
		size_t s = (pg->slot_cursor + i) % pg->nr_slots;

		if (!pg->slot_used[s]) {
			pg->slot_used[s] = true;
			pg->slot_cursor = (s + 1) % pg->nr_slots;
			*slot = s;
			ok = true;
		}
	}
	pthread_mutex_unlock(&pg->lock);
	return ok;
}

/* A block's slot is free again; a clean copy still beside it goes. */
static void slot_free(struct upg_pager *pg, uint64_t slot)
{
	uint64_t clean = slot_take_clean(pg, slot);

	if (clean)
		clean_forget(pg, clean, true);
	pthread_mutex_lock(&pg->lock);
	pg->slot_used[slot] = false;
	pthread_mutex_unlock(&pg->lock);
}

/* Empty the slots @slots[0..n) in one batch and free them. */
static void slots_drop(struct upg_pager *pg, struct upg_counters *c, const uint64_t *slots,
		       size_t n)
{
	struct iovec iov[DROP_MAX];

	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = slot_addr(pg, slots[i]);
		iov[i].iov_len = pg->block_size;
	}
	if (!staging_drop(pg, c, iov, n)) {
		drop_failed(n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		slot_free(pg, slots[i]);
}

/* Take the slots waiting to be emptied; call with pg->lock held. */
static size_t drops_take(struct upg_pager *pg, uint64_t *slots)
{
	size_t n = pg->nr_drops;

	memcpy(slots, pg->drops, n * sizeof(*slots));
	pg->nr_drops = 0;
	pg->drop_bytes = 0;
	return n;
}

/*
 * @slot, copied back from (reactivate), is to be emptied and freed: with
 * others, DROP_MAX or DROP_BYTES at a time, or when the evictor next turns
 * (upg_pager_drops_flush), so that they share one TLB shoot-down. Its
 * pages meanwhile are memory of no block: DROP_BYTES bounds them.
 */
static void slot_drop_later(struct upg_pager *pg, struct upg_counters *c, uint64_t slot)
{
	uint64_t slots[DROP_MAX];
	size_t n = 0;

	pthread_mutex_lock(&pg->lock);
	pg->drops[pg->nr_drops++] = slot;
	pg->drop_bytes += pg->block_size;
	if (pg->nr_drops == DROP_MAX || pg->drop_bytes >= DROP_BYTES)
		n = drops_take(pg, slots);
	pthread_mutex_unlock(&pg->lock);
	slots_drop(pg, c, slots, n);
}

void upg_pager_drops_flush(struct upg_pager *pg, struct upg_counters *c)
{
	uint64_t slots[DROP_MAX];
	size_t n;

	pthread_mutex_lock(&pg->lock);
	n = drops_take(pg, slots);
	pthread_mutex_unlock(&pg->lock);
	slots_drop(pg, c, slots, n);
}

static uintptr_t block_start(const struct upg_region *r, size_t b)
{
	return r->start + (b << r->block_shift);
}

/*
 * The next mapped piece of block @b of @r at or after @from, as [*start,
 * *end): the part of an extent of @r that overlaps the block. A block whole
 * when it was evicted may be cut by a munmap since; every piece still
 * mapped must get its data back. Call with rt->lock held.
 */
static bool next_piece(struct upg_runtime *rt, struct upg_region *r, size_t b,
		       uintptr_t from, uintptr_t *start, uintptr_t *end)
{
	uintptr_t be = block_start(r, b) + upg_block_len(r, b);

	if (from >= be)
		return false;
	for (const struct upg_extent *e = upg_extent_next(rt, from); e && e->start < be;
	     e = upg_extent_next(rt, e->end)) {
		if (e->region != r)
			continue;	/* another mapping in a hole of ours */
		*start = e->start > from ? e->start : from;
		*end = e->end < be ? e->end : be;
		return true;
	}
	return false;
}

/*
 * A page-by-page fill or move met @err at a page: go on past it? Only
 * past a page mapped already (-EEXIST: kept) or a part gone (-ENOENT).
 */
static bool fill_goes_on(int err)
{
	return err == -EEXIST || err == -ENOENT;
}

/*
 * After a fill or move of [start, end) stopped by @err: count it and wake
 * the thread to fault again. -EAGAIN: an event of this userfaultfd is not
 * read yet, and until it is the kernel refuses every MOVE and COPY into
 * it (retrying here would wait for a reader, perhaps this one). Anything
 * else (-ENOMEM) must not pass for a page mapped by someone else: that
 * page would be filled with zeros at the next fault.
 */
static void fill_stopped(struct upg_runtime *rt, struct upg_counters *c, int err,
			 uintptr_t start, uintptr_t end)
{
	if (err == -EAGAIN)
		upg_stat_inc(c, fill_retried);
	else
		upg_stat_inc(c, fill_failed);
	upg_uffd_wake(&rt->uffd, start, end - start);
}

/*
 * Move [start, end) of a block back from @src in its slot. Past a page
 * the kernel will not move (-EEXIST: one is mapped there, kept; -ENOENT:
 * that part is gone) it goes on page by page. Returns 0, or the error
 * that stopped it (fill_stopped): the caller keeps the block as it is and
 * lets the thread fault again.
 */
static int move_back(struct upg_runtime *rt, struct upg_counters *c, uintptr_t start,
		     uintptr_t end, uintptr_t src)
{
	size_t done = 0;
	int ret = upg_uffd_move(&rt->uffd, start, src, end - start, &done);

	/* Every page after the first refused answers for itself. */
	for (uintptr_t p = start + done; ret && p < end; p += PAGE) {
		int one = upg_uffd_move(&rt->uffd, p, src + (p - start), PAGE, &done);

		if (!fill_goes_on(one) && one) {
			fill_stopped(rt, c, one, start, end);
			return one;
		}
		if (one)
			upg_stat_inc(c, fill_raced);
	}
	return 0;
}

/* UFFDIO_COPY, unless a test makes it fail for want of memory. */
static int copy_in(struct upg_runtime *rt, uintptr_t dst, size_t len, const uint8_t *buf,
		   bool wp, size_t *done)
{
	unsigned int left = upg_test_copy_enomem;

	while (left)
		if (atomic_compare_exchange_weak(&upg_test_copy_enomem, &left, left - 1)) {
			*done = 0;
			return -ENOMEM;
		}
	return upg_uffd_fill_copy(&rt->uffd, dst, len, buf, wp, done);
}

/*
 * Copy [start, end) of the block from @buf, write-protected if @wp, page
 * by page past mapped ones (kept: *@raced is set) and parts gone. Returns
 * 0, or the error that stopped it, as move_back().
 */
static int fill_from(struct upg_runtime *rt, struct upg_counters *c,
		     uintptr_t start, uintptr_t end, const uint8_t *buf, bool wp,
		     bool *raced)
{
	size_t done = 0;
	int ret = copy_in(rt, start, end - start, buf, wp, &done);

	/* Every page after the first refused answers for itself. */
	for (uintptr_t p = start + done; ret && p < end; p += PAGE) {
		int one = copy_in(rt, p, PAGE, buf + (p - start), wp, &done);

		if (!fill_goes_on(one) && one) {
			fill_stopped(rt, c, one, start, end);
			return one;
		}
		if (one) {
			upg_stat_inc(c, fill_raced);
			upg_uffd_wake(&rt->uffd, p, PAGE);
			*raced = true;
		}
	}
	return 0;
}

/*
 * Has @slot all @blen bytes? A hole (a page the block did not have when
 * it moved) must not be read: it would fault on the staging fd.
 */
static bool slot_whole(struct upg_pager *pg, uint64_t slot, size_t blen)
{
	unsigned char vec[UPG_FILL_MAX / PAGE];

	if (mincore(slot_addr(pg, slot), blen, vec))
		return false;
	for (size_t i = 0; i < blen / PAGE; i++)
		if (!(vec[i] & 1))
			return false;
	return true;
}

/*
 * Fault on an INACTIVE block: copy its pages back from the slot, each
 * mapped piece of it, write-protected when its clean copy is to be kept
 * (@keep, a read), and empty the slot later with others
 * (slot_drop_later). A move back would clear the slot's page table
 * entries, and each UFFDIO_MOVE pays a TLB shoot-down (measured here:
 * 30-50 us with another CPU in the mm, against about 4 us for a 4 KiB
 * copy and its share of the batched drop). Moved back instead: a slot
 * with holes (pages the block did not have: reading a hole would fault
 * on the staging fd), blocks of DROP_BYTES or more (each would be
 * dropped alone, and a large copy costs more than the shoot-down), and
 * what a copy could not get memory for. Refused for now (-EAGAIN, or
 * an error): the block stays INACTIVE in its slot, whatever went back
 * already mapped (a later move or copy skips those pages).
 */
static void reactivate(struct upg_pager *pg, struct upg_counters *c,
		       struct upg_region *r, size_t b, uint64_t slot,
		       uint64_t *word, uint64_t ref, enum upg_keep keep)
{
	uintptr_t bs = block_start(r, b), start, end;
	size_t blen = upg_block_len(r, b);
	bool copy = pg->copy_out ||
		    (pg->block_size < DROP_BYTES && slot_whole(pg, slot, blen));
	uint64_t waiting = copy ? __atomic_load_n(&pg->slot_clean[slot], __ATOMIC_ACQUIRE) : 0;
	bool clean = waiting && keep_allows(pg, keep, waiting);
	bool raced = false, moved = !copy;
	uint64_t to = upg_ps_make(UPG_PS_RESIDENT, 0), handle;

	for (uintptr_t a = bs; next_piece(pg->rt, r, b, a, &start, &end); a = end) {
		uint8_t *src = slot_addr(pg, slot) + (start - bs);
		int ret = copy ? fill_from(pg->rt, c, start, end, src, clean, &raced)
			       : move_back(pg->rt, c, start, end, (uintptr_t)src);

		/* A copy refused for want of memory: a move allocates none. */
		if (ret && ret != -EAGAIN && copy && !pg->copy_out) {
			ret = move_back(pg->rt, c, start, end, (uintptr_t)src);
			raced = moved = true;	/* moved pages are writable: no clean copy */
		}
		if (ret) {
			__atomic_store_n(word, upg_ps_make(UPG_PS_INACTIVE, slot), __ATOMIC_RELEASE);
			return;
		}
	}
	/* A page kept (already mapped) may have been written: no copy. */
	if (clean && !raced)
		to = upg_ps_make(UPG_PS_RESIDENT, slot_take_clean(pg, slot)) | UPG_PS_CLEAN;
	if (moved)
		upg_stat_inc(c, reactivate_moved);
	/* A copy not kept goes now: its block has moved on. */
	handle = slot_take_clean(pg, slot);
	if (handle)
		clean_forget(pg, handle, true);
	__atomic_fetch_sub(&pg->inactive, blen, __ATOMIC_RELAXED);
	upg_stat_inc(c, reactivations);
	__atomic_store_n(word, to | ref, __ATOMIC_RELEASE);
	/*
	 * What is left in the slot (all of it after a copy; after a move,
	 * pages the region had already, parts no longer mapped) goes with
	 * the next batch; the block no longer names the slot, so a batch
	 * emptied here holds no fault on it.
	 */
	slot_drop_later(pg, c, slot);
}

/*
 * The page at @page cannot be given back: it must fail the access that
 * wants it, never be filled. UFFDIO_POISON makes that access (and every
 * later one) raise SIGBUS. Without it (before 6.6) the thread that
 * faulted, when known (@tid), gets SIGBUS sent (si_code SI_TKILL, no
 * address) and is woken into it; a page read ahead names no thread and
 * stays as it is, failing whoever touches it next.
 */
static void fail_page(struct upg_pager *pg, struct upg_counters *c, uintptr_t page,
		      uint32_t tid)
{
	if (!upg_uffd_poison(&pg->rt->uffd, page, PAGE))
		return;
	if (tid) {
		syscall(SYS_tgkill, getpid(), (pid_t)tid, SIGBUS);
		upg_stat_inc(c, swapin_sigbus_sent);
	}
	upg_uffd_wake(&pg->rt->uffd, page, PAGE);
}

/*
 * A swap-in whose load failed (@ret): never hand back a wrong page. The
 * block stays COMPRESSED (its data is gone, not zero); the faulting
 * access gets SIGBUS where the kernel can poison the page.
 */
static void swap_in_failed(struct upg_pager *pg, struct upg_counters *c, uintptr_t bs,
			   size_t blen, uint64_t handle, uint64_t *word, uintptr_t page,
			   uint32_t tid, int ret)
{
	upg_err("block at %p failed to load (%s: undecodable, a bad checksum or a "
		"failed read): its accesses get SIGBUS", (void *)bs, strerror(-ret));
	upg_stat_inc(c, swapin_failed);
	fail_page(pg, c, page, tid);
	upg_pager_release(pg, blen);	/* the caller's reserve */
	__atomic_store_n(word, upg_ps_make(UPG_PS_COMPRESSED, handle), __ATOMIC_RELEASE);
}

/*
 * A swap-in's fill was refused for now: the block stays COMPRESSED, its
 * handle kept. Pages filled already stay mapped (right; the next swap-in
 * skips them), uncounted until then.
 */
static void swap_in_refused(struct upg_pager *pg, size_t blen, uint64_t handle,
			    uint64_t *word, bool clean)
{
	if (clean)
		clean_forget(pg, handle, false);
	upg_pager_release(pg, blen);	/* the caller's reserve */
	__atomic_store_n(word, upg_ps_make(UPG_PS_COMPRESSED, handle), __ATOMIC_RELEASE);
}

/* A swap-in's pages are in: RESIDENT, with its clean copy if @clean. */
static void swap_in_done(struct upg_pager *pg, struct upg_counters *c, uint64_t handle,
			 uint64_t *word, uint64_t ref, bool clean, bool raced)
{
	upg_stat_inc(c, swapins);
	/* A page kept (already mapped) may have been written: no copy. */
	if (clean && !raced) {
		upg_stat_inc(c, clean_kept);
		__atomic_store_n(word, upg_ps_make(UPG_PS_RESIDENT, handle) | UPG_PS_CLEAN | ref,
				 __ATOMIC_RELEASE);
		return;
	}
	if (clean)
		clean_forget(pg, handle, false);
	upg_tier_free(pg->tier, handle);
	__atomic_store_n(word, upg_ps_make(UPG_PS_RESIDENT, 0) | ref, __ATOMIC_RELEASE);
}

/*
 * Fault on a COMPRESSED block whose data the store gave (@ret 0) into
 * @buf, or failed to: fill each mapped piece. @keep (a read): keep the
 * handle as a clean copy, the pages write-protected.
 */
static void swap_in_loaded(struct upg_pager *pg, struct upg_counters *c,
			   struct upg_region *r, size_t b, uint64_t handle,
			   uint64_t *word, uintptr_t page, uint64_t ref, uint32_t tid, enum upg_keep keep,
			   const uint8_t *buf, int ret)
{
	size_t blen = upg_block_len(r, b);
	uintptr_t bs = block_start(r, b), start, end;
	bool clean, raced = false;

	if (ret) {
		swap_in_failed(pg, c, bs, blen, handle, word, page, tid, ret);
		return;
	}
	clean = pg->keep_clean && clean_keep(pg, handle, keep);
	for (uintptr_t a = bs; next_piece(pg->rt, r, b, a, &start, &end); a = end) {
		if (fill_from(pg->rt, c, start, end, buf + (start - bs), clean, &raced)) {
			swap_in_refused(pg, blen, handle, word, clean);
			return;
		}
		upg_stat_add(c, UPG_STAT_swapin_pages, (end - start) / PAGE);
	}
	swap_in_done(pg, c, handle, word, ref, clean, raced);
}

/* Fault on a COMPRESSED block: load it, then as swap_in_loaded(). */
static void swap_in(struct upg_pager *pg, struct upg_counters *c,
		    struct upg_region *r, size_t b, uint64_t handle,
		    uint64_t *word, uintptr_t page, uint64_t ref, uint32_t tid, enum upg_keep keep)
{
	uint8_t *buf = buf_get(pg);
	int ret = upg_tier_load(pg->tier, handle, buf, upg_block_len(r, b) / PAGE);

	swap_in_loaded(pg, c, r, b, handle, word, page, ref, tid, keep, buf, ret);
	buf_put(pg, buf);
}

/*
 * Load the COMPRESSED blocks of a readahead window from the swap store
 * together (block k at @buf + k blocks), so that a stream reads its
 * neighbouring slots in one I/O, not one per block: each read waits
 * tens of microseconds, long enough for the stream to catch up and
 * fault on every block of its window.
 */
static void ra_load(struct upg_pager *pg, struct upg_region *r, size_t b, unsigned int n,
		    size_t stride, const uint64_t *olds, uint8_t *buf, int *rets)
{
	uint64_t handles[UPG_TIER_LOAD_MANY_MAX];
	uint8_t *dsts[UPG_TIER_LOAD_MANY_MAX];
	size_t pages[UPG_TIER_LOAD_MANY_MAX];

	for (unsigned int k = 0; k < n; k++) {
		bool compressed = upg_ps_state(olds[k]) == UPG_PS_COMPRESSED;

		handles[k] = compressed ? upg_ps_slot(olds[k]) : 0;
		pages[k] = upg_block_len(r, b + k * stride) / PAGE;
		dsts[k] = buf + (size_t)k * pg->block_size;
	}
	upg_tier_load_many(pg->tier, n, handles, pages, dsts, rets);
}

bool upg_pager_fault(struct upg_pager *pg, struct upg_counters *c,
		     const struct upg_extent *e, size_t block, uint64_t old,
		     uintptr_t page, bool ref, enum upg_keep keep)
{
	uint64_t *word = &e->region->state[block];
	uint64_t refbit = ref ? UPG_PS_REF : 0;

	if (!__atomic_compare_exchange_n(word, &old, upg_ps_with_state(old, UPG_PS_FILLING),
					 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return false;
	if (upg_ps_state(old) == UPG_PS_INACTIVE)
		reactivate(pg, c, e->region, block, upg_ps_slot(old), word, refbit, keep);
	else
		swap_in(pg, c, e->region, block, upg_ps_slot(old), word, page, refbit,
			upg_fault_tid, keep);
	return true;
}

unsigned int upg_pager_readahead_claim(struct upg_pager *pg, const struct upg_extent *e,
				       size_t b, unsigned int n, size_t stride, uint64_t *olds)
{
	struct upg_region *r = e->region;
	unsigned int k;

	for (k = 0; k < n && b + k * stride < r->nr_blocks; k++) {
		size_t bk = b + k * stride;
		uint64_t *word = &r->state[bk], old = __atomic_load_n(word, __ATOMIC_ACQUIRE);
		size_t blen = upg_block_len(r, bk);
		bool compressed = upg_ps_state(old) == UPG_PS_COMPRESSED;

		if (block_start(r, bk) + blen > e->end)
			break;	/* the stream leaves this mapped piece */
		if (!compressed && upg_ps_state(old) != UPG_PS_INACTIVE)
			break;	/* resident, absent or busy: not ours to bring back */
		/* Only into free room: readahead never makes a fill wait. */
		if (compressed && !upg_pager_try_reserve(pg, blen))
			break;
		if (!__atomic_compare_exchange_n(word, &old, upg_ps_with_state(old, UPG_PS_FILLING),
						 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			if (compressed)
				upg_pager_release(pg, blen);
			break;
		}
		olds[k] = old;
	}
	return k;
}

/* A readahead buffer for @n blocks, or NULL: they load one by one. */
static uint8_t *ra_buf_for(struct upg_pager *pg, unsigned int n)
{
	if (n < 2 || !pg->ra_bufs || n > UPG_TIER_LOAD_MANY_MAX ||
	    n * pg->block_size > ra_buf_bytes(pg))
		return NULL;
	return ra_buf_get(pg);
}

/*
 * Fill loaded COMPRESSED blocks @b, @b + 1, ... (at most @n: up to the
 * first that is not one, failed to load, or leaves the extent @b is in)
 * in one UFFDIO_COPY from @ra, where they lie in the same order. Copied
 * block by block, a window paid an ioctl a block, and its stream, woken
 * by the first, caught up and faulted on blocks not copied yet. A run
 * keeps its blocks' clean copies or none (the pages write-protected or
 * not): it ends where that changes. A page found mapped already keeps no
 * block of the run a copy. Returns how many blocks it filled (0: @b is
 * not such a block).
 */
static unsigned int fill_run(struct upg_pager *pg, struct upg_counters *c, struct upg_region *r,
			     size_t b, unsigned int n, const uint64_t *olds, enum upg_keep keep,
			     const uint8_t *ra, const int *rets)
{
	uintptr_t start = block_start(r, b), end;
	const struct upg_extent *e = upg_extent_find(pg->rt, start);
	bool clean = false, raced = false;
	unsigned int m;

	if (!e || e->region != r)
		return 0;
	for (m = 0; m < n; m++) {
		uint64_t handle = upg_ps_slot(olds[m]);
		bool kept;

		if (upg_ps_state(olds[m]) != UPG_PS_COMPRESSED || rets[m] ||
		    block_start(r, b + m) + upg_block_len(r, b + m) > e->end)
			break;
		kept = pg->keep_clean && clean_keep(pg, handle, keep);
		if (m && kept != clean) {
			if (kept)
				clean_forget(pg, handle, false);
			break;
		}
		clean = kept;
	}
	if (!m)
		return 0;
	end = block_start(r, b + m - 1) + upg_block_len(r, b + m - 1);
	if (fill_from(pg->rt, c, start, end, ra, clean, &raced)) {
		/*
		 * Stopped part way (an event not read yet, no memory): the
		 * blocks before the stop are mapped whole and would never
		 * fault again. Block by block then, each deciding its copy
		 * anew: pages mapped already answer -EEXIST (kept, raced),
		 * and a block still missing a page is refused and faults.
		 */
		for (unsigned int k = 0; k < m; k++) {
			if (clean)
				clean_forget(pg, upg_ps_slot(olds[k]), false);
			swap_in_loaded(pg, c, r, b + k, upg_ps_slot(olds[k]), &r->state[b + k],
				       block_start(r, b + k), UPG_PS_REF, 0, keep,
				       ra + (size_t)k * pg->block_size, 0);
		}
		return m;
	}
	upg_stat_add(c, UPG_STAT_swapin_pages, (end - start) / PAGE);
	for (unsigned int k = 0; k < m; k++)
		swap_in_done(pg, c, upg_ps_slot(olds[k]), &r->state[b + k], UPG_PS_REF, clean, raced);
	return m;
}

/*
 * Bring back the claimed window (upg_pager_readahead_claim), loaded into
 * @ra with results @rets (ra_load), or block by block if @ra is NULL.
 * Referenced, as a faulted block: whether the stream uses them is
 * invisible (no accessed bit), and one that lost it at once would be
 * staged before the stream got there, and fault after all.
 */
static void fill_window(struct upg_pager *pg, struct upg_counters *c, struct upg_region *r,
			size_t b, unsigned int n, size_t stride, const uint64_t *olds,
			enum upg_keep keep, const uint8_t *ra, const int *rets)
{
	for (unsigned int k = 0, done; k < n; k += done) {
		size_t bk = b + k * stride;
		uint64_t *word = &r->state[bk];

		done = ra && stride == 1 ? fill_run(pg, c, r, bk, n - k, olds + k, keep,
						     ra + (size_t)k * pg->block_size, rets + k) : 0;
		if (done)
			continue;
		done = 1;
		if (upg_ps_state(olds[k]) == UPG_PS_INACTIVE)
			reactivate(pg, c, r, bk, upg_ps_slot(olds[k]), word, UPG_PS_REF, keep);
		else if (ra)
			swap_in_loaded(pg, c, r, bk, upg_ps_slot(olds[k]), word, block_start(r, bk),
				       UPG_PS_REF, 0, keep, ra + (size_t)k * pg->block_size, rets[k]);
		else
			swap_in(pg, c, r, bk, upg_ps_slot(olds[k]), word,
				block_start(r, bk), UPG_PS_REF, 0, keep);
	}
}

void upg_pager_readahead_fill(struct upg_pager *pg, struct upg_counters *c,
			      struct upg_region *r, size_t b, unsigned int n, size_t stride,
			      const uint64_t *olds, enum upg_keep keep)
{
	int rets[UPG_TIER_LOAD_MANY_MAX];
	uint8_t *ra = ra_buf_for(pg, n);

	if (ra)
		ra_load(pg, r, b, n, stride, olds, ra, rets);
	fill_window(pg, c, r, b, n, stride, olds, keep, ra, rets);
	if (ra)
		ra_buf_put(pg, ra);
}

void upg_pager_swap_in_stream(struct upg_pager *pg, struct upg_counters *c,
			      struct upg_region *r, size_t b, uintptr_t page, enum upg_keep keep,
			      unsigned int n, size_t stride, const uint64_t *olds,
			      enum upg_keep ra_keep)
{
	int rets[UPG_TIER_LOAD_MANY_MAX];
	uint8_t *ra = stride == 1 ? ra_buf_for(pg, n + 1) : NULL;
	uint64_t *word = &r->state[b], handle = upg_ps_slot(olds[0]);

	if (!ra) {
		swap_in(pg, c, r, b, handle, word, page, UPG_PS_REF, upg_fault_tid, keep);
		upg_pager_readahead_fill(pg, c, r, b + stride, n, stride, olds + 1, ra_keep);
		return;
	}
	ra_load(pg, r, b, n + 1, 1, olds, ra, rets);
	/* The faulting block first: its fill wakes the thread. */
	swap_in_loaded(pg, c, r, b, handle, word, page, UPG_PS_REF, upg_fault_tid, keep,
		       ra, rets[0]);
	fill_window(pg, c, r, b + 1, n, 1, olds + 1, ra_keep, ra + pg->block_size, rets + 1);
	ra_buf_put(pg, ra);
}

void upg_pager_block_dropped(struct upg_runtime *rt, struct upg_region *r,
			     size_t b, uint64_t old)
{
	struct upg_pager *pg = rt->pager;
	size_t blen = upg_block_len(r, b);

	if (!pg)
		return;
	if (old & UPG_PS_PIN)
		__atomic_fetch_sub(&pg->pinned, blen, __ATOMIC_RELAXED);
	switch (upg_ps_state(old)) {
	case UPG_PS_RESIDENT:
		if (old & UPG_PS_CLEAN)
			clean_forget(pg, upg_ps_slot(old), true);
		upg_pager_release(pg, blen);
		break;
	case UPG_PS_INACTIVE:
		slot_discard(pg, upg_ps_slot(old), 0, blen);
		slot_free(pg, upg_ps_slot(old));
		__atomic_fetch_sub(&pg->inactive, blen, __ATOMIC_RELAXED);
		upg_pager_release(pg, blen);
		break;
	case UPG_PS_COMPRESSED:
		upg_tier_free(pg->tier, upg_ps_slot(old));
		break;
	default:
		break;
	}
}

/*
 * Claim a block that is not busy; returns its old word, or a STAGING
 * word unclaimed (nothing may wait for those).
 */
static uint64_t claim(uint64_t *word)
{
	for (;;) {
		uint64_t old = __atomic_load_n(word, __ATOMIC_ACQUIRE);

		if (upg_ps_state(old) == UPG_PS_STAGING)
			return old;
		if (upg_ps_is_busy(old)) {
			sched_yield();
			continue;
		}
		if (__atomic_compare_exchange_n(word, &old, upg_ps_with_state(old, UPG_PS_EVICTING),
						false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return old;
	}
}

void upg_pager_block_punch(struct upg_runtime *rt, struct upg_region *r,
			   size_t b, uintptr_t start, uintptr_t end)
{
	struct upg_pager *pg = rt->pager;
	uint64_t *word = &r->state[b], old, handle;
	uintptr_t bs = block_start(r, b);
	size_t blen = upg_block_len(r, b);
	uint8_t *buf;

	if (!pg)
		return;
	old = claim(word);
	while (upg_ps_state(old) == UPG_PS_STAGING) {
		if (upg_pager_staging_event(rt, r, b, start, end, false))
			return;
		old = claim(word);
	}
	switch (upg_ps_state(old)) {
	case UPG_PS_RESIDENT:
		/* Its clean copy still has the dropped pages. */
		old = upg_pager_clean_drop(pg, upg_shared_counters(rt), old);
		break;
	case UPG_PS_INACTIVE:
		slot_discard(pg, upg_ps_slot(old), start - bs, end - start);
		handle = slot_take_clean(pg, upg_ps_slot(old));
		if (handle) {
			clean_forget(pg, handle, true);
			upg_stat_inc(upg_shared_counters(rt), clean_dropped);
		}
		break;
	case UPG_PS_COMPRESSED:
		/* Store it again without the dropped pages. */
		buf = buf_get(pg);
		if (!upg_tier_load(pg->tier, upg_ps_slot(old), buf, blen / PAGE)) {
			memset(buf + (start - bs), 0, end - start);
			if (!upg_tier_store(pg->tier, buf, blen / PAGE, &handle)) {
				upg_tier_free(pg->tier, upg_ps_slot(old));
				old = upg_ps_make(UPG_PS_COMPRESSED, handle);
			} else {
				upg_err("no room to drop part of block %p: it keeps its data",
					(void *)bs);
			}
		}
		buf_put(pg, buf);
		break;
	default:
		break;
	}
	__atomic_store_n(word, old, __ATOMIC_RELEASE);
}

/*
 * Drop the entries of blocks no longer INACTIVE in their slot (moved back,
 * dropped, region gone), keeping the order. A busy block may come back
 * to its slot (a punch holds it so): kept. Call with pg->lock.
 */
static void ring_compact(struct upg_pager *pg)
{
	size_t kept = 0;

	for (size_t i = 0; i < pg->ring_len; i++) {
		struct inactive_entry ent = pg->ring[(pg->ring_head + i) % pg->ring_cap];
		uint64_t w;

		if (!ent.r)
			continue;
		w = __atomic_load_n(&ent.r->state[ent.block], __ATOMIC_ACQUIRE);
		if (!upg_ps_is_busy(w) && w != upg_ps_make(UPG_PS_INACTIVE, ent.slot))
			continue;
		pg->ring[(pg->ring_head + kept++) % pg->ring_cap] = ent;
	}
	pg->ring_len = kept;
}

/* Queue an INACTIVE block at the FIFO's tail; false when it is full. */
static bool ring_push(struct upg_pager *pg, struct upg_region *r, size_t b, uint64_t slot)
{
	bool ok;

	pthread_mutex_lock(&pg->lock);
	if (pg->ring_len == pg->ring_cap)
		ring_compact(pg);	/* full of stale entries, most likely */
	ok = pg->ring_len < pg->ring_cap;
	if (ok)
		pg->ring[(pg->ring_head + pg->ring_len++) % pg->ring_cap] =
			(struct inactive_entry){ r, b, slot };
	pthread_mutex_unlock(&pg->lock);
	return ok;
}

/* The FIFO names a block that moved to another region (mremap). */
static void ring_rename(struct upg_pager *pg, struct upg_region *old, size_t j,
			struct upg_region *nr, size_t k)
{
	pthread_mutex_lock(&pg->lock);
	for (size_t i = 0; i < pg->ring_len; i++) {
		struct inactive_entry *ent = &pg->ring[(pg->ring_head + i) % pg->ring_cap];

		if (ent->r == old && ent->block == j)
			*ent = (struct inactive_entry){ nr, k, ent->slot };
	}
	pthread_mutex_unlock(&pg->lock);
}

/*
 * Copy-out: the clock's move without UFFDIO_MOVE (kernels before 6.8).
 *
 * A run of claimed blocks becomes STAGING (the words hold their slots and
 * the run is recorded in pg->copy), then, with no lock held, copy_out()
 * write-protects it, copies its present pages to the slots with
 * process_vm_readv() (which fails on an unmapped page instead of
 * faulting), drops them with MADV_DONTNEED and finishes. Writes after
 * the write-protect fault and park; so does every fault on the run, and
 * the finish wakes them: they fault again on an INACTIVE block.
 *
 * That MADV_DONTNEED raises a REMOVE event on our own userfaultfd and
 * returns once a reader has read it. So while a run is STAGING nothing
 * may wait for it holding what a reader needs (rt->lock, evict_lock):
 * faults park or retry with no lock held, and events meeting the run are
 * recorded here for the finish instead of waited out:
 *   - REMOVE: per page, how many events covered it. The copier's own
 *     MADV_DONTNEED gives one; a second is the application's, and the
 *     page reads zeros. The finish comes after every event read before
 *     the copier's MADV_DONTNEED returned has been handled, so its own
 *     is never taken for the application's.
 *   - UNMAP of a whole block: it ends UNMAPPED, its slot freed.
 *   - REMAP (mremap) of a block: its new block waits STAGING too; the
 *     finish looks where the data is (the pages moved with the mapping
 *     if the mremap came before our MADV_DONTNEED, else in our slot).
 * Region destroy and fork hold copy_mutex: a copy-out holds its region
 * with no lock, and fork must not find blocks half out.
 */

void upg_pager_copy_lock(struct upg_pager *pg)
{
	if (pg && pg->copy_out)
		pthread_mutex_lock(&pg->copy_mutex);
}

void upg_pager_copy_unlock(struct upg_pager *pg)
{
	if (pg && pg->copy_out)
		pthread_mutex_unlock(&pg->copy_mutex);
}

bool upg_pager_is_copier(struct upg_pager *pg, uint32_t tid)
{
	return pg && tid && __atomic_load_n(&pg->copy.tid, __ATOMIC_ACQUIRE) == tid;
}

/*
 * The claimed (EVICTING) blocks [b0, b0 + n) of @r, going to slots
 * [s0, s0 + n), become the STAGING run (copier, rt->lock shared).
 */
static void stage_run(struct upg_pager *pg, struct upg_region *r, size_t b0, uint64_t s0,
		      size_t n, const uint64_t *olds, bool queue)
{
	struct copy_run *run = &pg->copy;
	uintptr_t end = block_start(r, b0 + n - 1) + upg_block_len(r, b0 + n - 1);

	pthread_mutex_lock(&pg->zap_lock);
	run->r = r;
	run->b0 = b0;
	run->n = n;
	run->s0 = s0;
	run->queue = queue;
	run->start = block_start(r, b0);
	run->len = end - run->start;
	memcpy(run->olds, olds, n * sizeof(olds[0]));
	memset(run->gone, 0, n * sizeof(run->gone[0]));
	memset(run->moved, 0, n * sizeof(run->moved[0]));
	memset(run->seen, 0, run->len / PAGE);
	run->active = true;
	run->pending = true;
	for (size_t k = 0; k < n; k++)
		__atomic_store_n(&r->state[b0 + k], upg_ps_make(UPG_PS_STAGING, s0 + k),
				 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pg->zap_lock);
}

/* The run's entry for block @b of @r: its own index, or a moved one's. */
static bool run_find(struct copy_run *run, struct upg_region *r, size_t b, size_t *i,
		     bool *moved)
{
	for (size_t k = 0; k < run->n; k++)
		if (run->moved[k].r == r && run->moved[k].b == b) {
			*i = k;
			*moved = true;
			return true;
		}
	*moved = false;
	*i = b - run->b0;
	return r == run->r && b >= run->b0 && b < run->b0 + run->n;
}

bool upg_pager_staging_event(struct upg_runtime *rt, struct upg_region *r, size_t b,
			     uintptr_t start, uintptr_t end, bool unmapped)
{
	struct upg_pager *pg = rt->pager;
	struct copy_run *run = &pg->copy;
	bool moved, recorded = false;
	size_t i;

	pthread_mutex_lock(&pg->zap_lock);
	if (!run->active ||
	    upg_ps_state(__atomic_load_n(&r->state[b], __ATOMIC_ACQUIRE)) != UPG_PS_STAGING)
		goto out;
	recorded = true;
	if (!run_find(run, r, b, &i, &moved)) {
		upg_err("bug: block %p is STAGING outside the run", (void *)block_start(r, b));
		goto out;
	}
	if (moved) {
		if (unmapped)
			run->moved[i].gone = true;
		else if (start <= block_start(r, b) &&
			 end >= block_start(r, b) + upg_block_len(r, b))
			run->moved[i].dropped = true;
		else
			upg_err("MADV_DONTNEED of part of block %p while it was being "
				"evicted and moved: that part keeps its data",
				(void *)block_start(r, b));
		goto out;
	}
	if (unmapped) {
		run->gone[i] = true;
		goto out;
	}
	start = start > run->start ? start : run->start;
	end = end < run->start + run->len ? end : run->start + run->len;
	for (uintptr_t p = start & ~(PAGE - 1); p < end; p += PAGE) {
		uint8_t *n = &run->seen[(p - run->start) / PAGE];

		*n += *n < UINT8_MAX;
	}
out:
	pthread_mutex_unlock(&pg->zap_lock);
	return recorded;
}

/*
 * mremap took [from, to) of block @j of @old (its whole block if @whole),
 * STAGING, to block @k of @nr (rt->lock exclusive): @nr's block waits
 * STAGING for the finish, which sees where the data went.
 */
static void staging_moved(struct upg_pager *pg, struct upg_region *old, size_t j,
			  struct upg_region *nr, size_t k, bool whole, uintptr_t from,
			  uintptr_t to)
{
	struct copy_run *run = &pg->copy;
	bool moved;
	size_t i;

	pthread_mutex_lock(&pg->zap_lock);
	if (!run_find(run, old, j, &i, &moved) || (moved && !whole) ||
	    (!moved && run->moved[i].r)) {
		/* A second mremap cutting one block within a copy-out: not followed. */
		upg_err("mremap: block %p was cut twice while being evicted: "
			"the part moved reads zeros", (void *)block_start(old, j));
		nr->state[k] = upg_ps_make(UPG_PS_ABSENT, 0);
	} else if (moved) {
		/* Moved on again, whole: follow it. */
		run->moved[i].r = nr;
		run->moved[i].b = k;
		nr->state[k] = upg_ps_make(UPG_PS_STAGING, 0);
		old->state[j] = upg_ps_make(UPG_PS_UNMAPPED, 0);
	} else {
		run->moved[i] = (struct moved_block){ nr, k, from, to, whole, false, false };
		nr->state[k] = upg_ps_make(UPG_PS_STAGING, 0);
	}
	pthread_mutex_unlock(&pg->zap_lock);
}

/*
 * Copy the run's present pages to its slots. A page not present reads
 * zeros (dropped, or never filled): the slot's hole says the same. A page
 * unmapped meanwhile fails the read, not the thread; one dropped
 * meanwhile faults, and a reader fills it with zeros (upg_pager_is_copier).
 */
static void copy_pages(struct upg_pager *pg, struct copy_run *run)
{
	size_t nr = run->len / PAGE;
	uint8_t *dst = slot_addr(pg, run->s0);
	pid_t pid = getpid();

	if (mincore((void *)run->start, run->len, run->vec))
		memset(run->vec, 1, nr);	/* part unmapped: let each read say */
	for (size_t p = 0; p < nr;) {
		size_t q = p;
		ssize_t got;

		if (!(run->vec[p] & 1)) {
			p++;
			continue;
		}
		while (q < nr && (run->vec[q] & 1))
			q++;
		struct iovec local = { dst + p * PAGE, (q - p) * PAGE };
		struct iovec remote = { (void *)(run->start + p * PAGE), (q - p) * PAGE };

		got = process_vm_readv(pid, &local, 1, &remote, 1, 0);
		/* Short: the page after what was read is gone; go on past it. */
		p = got < 0 ? p + 1 : p + (size_t)got / PAGE + ((size_t)got < (q - p) * PAGE);
	}
}

/* Any page of block @b of @r present? (rt->lock shared) */
static bool block_present(struct upg_pager *pg, struct upg_region *r, size_t b)
{
	unsigned char vec[UPG_FILL_MAX / PAGE];
	uintptr_t start, end;

	for (uintptr_t a = block_start(r, b); next_piece(pg->rt, r, b, a, &start, &end); a = end) {
		if (mincore((void *)start, end - start, vec))
			continue;
		for (size_t i = 0; i < (end - start) / PAGE; i++)
			if (vec[i] & 1)
				return true;
	}
	return false;
}

/*
 * The new block of run block @i, moved by an mremap: RESIDENT if its
 * pages went with the mapping, else it takes (whole) or copies (part) the
 * slot's data. Returns true when it took the slot. Under zap_lock.
 */
static bool finish_moved(struct upg_pager *pg, struct copy_run *run, size_t i, bool copied)
{
	struct moved_block *m = &run->moved[i];
	uintptr_t obs = block_start(run->r, run->b0 + i);
	size_t nlen = upg_block_len(m->r, m->b);
	uint64_t *word = &m->r->state[m->b], slot;
	bool took = false;

	if (m->gone) {
		__atomic_store_n(word, upg_ps_make(UPG_PS_UNMAPPED, 0), __ATOMIC_RELEASE);
		return false;
	}
	if (m->dropped) {
		__atomic_store_n(word, upg_ps_make(UPG_PS_ABSENT, 0), __ATOMIC_RELEASE);
		return false;
	}
	__atomic_fetch_add(&pg->resident, nlen, __ATOMIC_RELAXED);
	if (!copied || block_present(pg, m->r, m->b)) {
		__atomic_store_n(word, upg_ps_make(UPG_PS_RESIDENT, 0), __ATOMIC_RELEASE);
		return false;
	}
	if (m->whole) {
		slot = run->s0 + i;
		took = true;
	} else if (slot_alloc(pg, &slot)) {
		memcpy(slot_addr(pg, slot) + (m->from - obs),
		       slot_addr(pg, run->s0 + i) + (m->from - obs), m->to - m->from);
	} else {
		upg_err("mremap: no room to keep the moved part of block %p: it reads zeros",
			(void *)obs);
		upg_pager_release(pg, nlen);
		__atomic_store_n(word, upg_ps_make(UPG_PS_ABSENT, 0), __ATOMIC_RELEASE);
		return false;
	}
	__atomic_fetch_add(&pg->inactive, nlen, __ATOMIC_RELAXED);
	__atomic_store_n(word, upg_ps_make(UPG_PS_INACTIVE, slot), __ATOMIC_RELEASE);
	ring_push(pg, m->r, m->b, slot);
	return took;
}

/*
 * Apply what happened to the run and end it: each block becomes INACTIVE
 * in its slot (pages the application dropped meanwhile read zeros),
 * ABSENT if all were dropped, UNMAPPED if unmapped, or, not @copied, what
 * it was. Then wake what parked on it.
 */
static void finish_copy_out(struct upg_pager *pg, struct upg_counters *c, bool copied)
{
	struct copy_run *run = &pg->copy;
	struct upg_runtime *rt = pg->rt;
	/* The copier's own MADV_DONTNEED counts one event on each page. */
	unsigned int own = copied && (rt->uffd.features & UPG_FEAT_EVENT_REMOVE);
	size_t nwake = 0;
	struct { uintptr_t start; size_t len; } wake[EVICT_RUN_MAX + 1];

	pthread_rwlock_rdlock(&rt->lock);	/* finish_moved looks at extents */
	pthread_mutex_lock(&pg->zap_lock);
	for (size_t i = 0; i < run->n; i++) {
		size_t b = run->b0 + i, blen = upg_block_len(run->r, b), dropped = 0;
		uint64_t *word = &run->r->state[b], slot = run->s0 + i;
		uintptr_t bs = block_start(run->r, b);
		bool took = false;

		if (run->moved[i].r) {
			took = finish_moved(pg, run, i, copied);
			wake[nwake].start = block_start(run->moved[i].r, run->moved[i].b);
			wake[nwake++].len = upg_block_len(run->moved[i].r, run->moved[i].b);
		}
		if (run->gone[i] || (run->moved[i].r && run->moved[i].whole)) {
			if (!took) {
				slot_discard(pg, slot, 0, blen);
				slot_free(pg, slot);
			}
			upg_pager_release(pg, blen);
			__atomic_store_n(word, upg_ps_make(UPG_PS_UNMAPPED, 0), __ATOMIC_RELEASE);
			continue;
		}
		if (!copied) {
			slot_free(pg, slot);
			__atomic_store_n(word, run->olds[i], __ATOMIC_RELEASE);
			continue;
		}
		for (size_t off = 0; off < blen; off += PAGE)
			if (run->seen[(bs + off - run->start) / PAGE] > own) {
				slot_discard(pg, slot, off, PAGE);
				dropped++;
			}
		if (dropped == blen / PAGE) {
			slot_free(pg, slot);
			upg_pager_release(pg, blen);
			__atomic_store_n(word, upg_ps_make(UPG_PS_ABSENT, 0), __ATOMIC_RELEASE);
			continue;
		}
		__atomic_fetch_add(&pg->inactive, blen, __ATOMIC_RELAXED);
		__atomic_store_n(word, upg_ps_make(UPG_PS_INACTIVE, slot), __ATOMIC_RELEASE);
		if (run->queue)
			ring_push(pg, run->r, b, slot);
		upg_stat_inc(c, deactivations);
	}
	run->active = false;
	pthread_mutex_unlock(&pg->zap_lock);
	pthread_rwlock_unlock(&rt->lock);
	wake[nwake].start = run->start;
	wake[nwake++].len = run->len;
	for (size_t i = 0; i < nwake; i++)
		upg_uffd_wake(&rt->uffd, wake[i].start, wake[i].len);
}

static void copyout_test_hook(struct copy_run *run, unsigned int phase)
{
	unsigned int delay = upg_test_copyout_delay_us;

	/* Read first: the test may reset it once it sees the address. */
	if (!delay || phase != upg_test_copyout_phase)
		return;
	if (upg_test_copyout_hi &&
	    (run->start < upg_test_copyout_lo || run->start >= upg_test_copyout_hi))
		return;
	upg_test_copyout_addr = run->start;
	/* The delay, or until the test resets it (a run it does not want). */
	for (unsigned int slept = 0; slept < delay && upg_test_copyout_delay_us; slept += 1000)
		usleep(1000);
	upg_test_copyout_addr = 0;
}

/*
 * Copy the staged run out (see "Copy-out"). Call with copy_mutex and no
 * other lock: the MADV_DONTNEED waits for a reader to read its event.
 */
static void copy_out(struct upg_pager *pg, struct upg_counters *c)
{
	struct copy_run *run = &pg->copy;
	struct upg_runtime *rt = pg->rt;
	bool copied = false;

	run->pending = false;
	__atomic_store_n(&run->tid, (uint32_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	/* -EAGAIN (an event unread) or -ENOENT (unmapped): leave it for now. */
	if (!upg_uffd_writeprotect(&rt->uffd, run->start, run->len, true)) {
		copyout_test_hook(run, 0);
		copy_pages(pg, run);
		copyout_test_hook(run, 1);
		madvise((void *)run->start, run->len, MADV_DONTNEED);
		/* Our REMOVE event handled before the finish reads the counts. */
		if (rt->uffd.features & UPG_FEAT_EVENT_REMOVE)
			upg_uffd_loop_wait_events(rt->loop);
		copyout_test_hook(run, 2);
		copied = true;
		upg_stat_inc(c, copyouts);
	} else {
		upg_stat_add(c, UPG_STAT_deactivate_failed, run->n);
	}
	finish_copy_out(pg, c, copied);
	__atomic_store_n(&run->tid, 0, __ATOMIC_RELEASE);
}

/*
 * A block cut by an mremap: the new region's block gets its own copy of
 * the evicted data (the same offsets: the layouts line up), or, failing
 * that, nothing (logged: its moved pages then read as zeros).
 */
static uint64_t share_block(struct upg_pager *pg, struct upg_region *old, size_t j,
			    uint64_t w, struct upg_region *nr, size_t k,
			    uintptr_t from, uintptr_t to)
{
	uintptr_t bs = block_start(old, j), be = bs + upg_block_len(old, j);
	uintptr_t s = bs > from ? bs : from, t = be < to ? be : to;
	size_t nlen = upg_block_len(nr, k), olen = upg_block_len(old, j), done;
	uint64_t slot, handle;
	uint8_t *buf;

	switch (upg_ps_state(w)) {
	case UPG_PS_RESIDENT:
		__atomic_fetch_add(&pg->resident, nlen, __ATOMIC_RELAXED);
		return upg_ps_make(UPG_PS_RESIDENT, 0);
	case UPG_PS_INACTIVE:
		if (!slot_alloc(pg, &slot))
			break;
		if (pg->copy_out) {
			/* Plain memory: holes read as zeros. */
			memcpy(slot_addr(pg, slot) + (s - bs), slot_addr(pg, upg_ps_slot(w)) + (s - bs),
			       t - s);
		} else if (upg_uffd_move(&pg->staging_uffd,
					 (uintptr_t)slot_addr(pg, slot) + (s - bs),
					 (uintptr_t)slot_addr(pg, upg_ps_slot(w)) + (s - bs),
					 t - s, &done)) {
			slot_free(pg, slot);
			break;
		}
		__atomic_fetch_add(&pg->resident, nlen, __ATOMIC_RELAXED);
		__atomic_fetch_add(&pg->inactive, nlen, __ATOMIC_RELAXED);
		ring_push(pg, nr, k, slot);
		return upg_ps_make(UPG_PS_INACTIVE, slot);
	case UPG_PS_COMPRESSED:
		buf = buf_get(pg);
		handle = 0;
		if (!upg_tier_load(pg->tier, upg_ps_slot(w), buf, olen / PAGE) &&
		    upg_tier_store(pg->tier, buf, nlen / PAGE, &handle))
			handle = 0;
		buf_put(pg, buf);
		if (!handle)
			break;
		return upg_ps_make(UPG_PS_COMPRESSED, handle);
	default:
		return upg_ps_make(upg_ps_state(w), 0);
	}
	upg_err("mremap: no room to keep the moved part of block %p: it reads zeros",
		(void *)bs);
	return upg_ps_make(UPG_PS_ABSENT, 0);
}

void upg_pager_block_moved(struct upg_runtime *rt, struct upg_region *old, size_t j,
			   struct upg_region *nr, size_t k, uintptr_t from, uintptr_t to)
{
	struct upg_pager *pg = rt->pager;
	uint64_t w = old->state[j];
	uintptr_t bs = block_start(old, j), be = bs + upg_block_len(old, j);
	size_t olen = upg_block_len(old, j), nlen = upg_block_len(nr, k);
	bool counted = upg_ps_state(w) == UPG_PS_RESIDENT || upg_ps_state(w) == UPG_PS_INACTIVE;

	if (pg && upg_ps_state(w) == UPG_PS_STAGING) {
		staging_moved(pg, old, j, nr, k, bs >= from && be <= to,
			      bs > from ? bs : from, be < to ? be : to);
		return;
	}
	if (pg && (w & UPG_PS_CLEAN)) {
		/* Whether the moved pages keep their write-protection is not ours to know. */
		w = upg_pager_clean_drop(pg, upg_shared_counters(rt), w);
		old->state[j] = w;
	}
	if (bs >= from && be <= to) {
		/* Wholly moved: the new block takes the word and what it owns. */
		nr->state[k] = w;
		old->state[j] = upg_ps_make(UPG_PS_UNMAPPED, 0);
		if (!pg)
			return;
		if (upg_ps_state(w) == UPG_PS_INACTIVE)
			ring_rename(pg, old, j, nr, k);
		if (counted && nlen != olen) {
			__atomic_fetch_add(&pg->resident, nlen, __ATOMIC_RELAXED);
			upg_pager_release(pg, olen);
		}
		return;
	}
	nr->state[k] = pg ? share_block(pg, old, j, w, nr, k, from, to)
			  : upg_ps_make(upg_ps_state(w), 0);
	if (!pg)
		return;
	upg_stat_inc(upg_shared_counters(rt), remap_shared_blocks);
	if (upg_ps_state(w) == UPG_PS_INACTIVE) {
		/* Its slot lost the moved part (copied out with the new block). */
		uint64_t handle = slot_take_clean(pg, upg_ps_slot(w));

		if (handle)
			clean_forget(pg, handle, true);
	}
}


/* DEACT_STAGED: a run is claimed for copy_out(), to run with no lock held. */
enum deact { DEACT_OK, DEACT_NONE, DEACT_NO_SLOT, DEACT_STAGED };

static void stage_run(struct upg_pager *pg, struct upg_region *r, size_t b0, uint64_t s0,
		      size_t n, const uint64_t *olds, bool queue);


/* The slot right after @prev, if it is free (a run of neighbours). */
static bool slot_alloc_after(struct upg_pager *pg, uint64_t prev, uint64_t *slot)
{
	bool ok;

	pthread_mutex_lock(&pg->lock);
	ok = prev + 1 < pg->nr_slots && !pg->slot_used[prev + 1];
	if (ok) {
		pg->slot_used[prev + 1] = true;
		pg->slot_cursor = (prev + 2) % pg->nr_slots;
		*slot = prev + 1;
	}
	pthread_mutex_unlock(&pg->lock);
	return ok;
}

/*
 * Claim block @b of @r for deactivation if it may go: RESIDENT, not
 * pinned, not referenced (a referenced one loses the bit: second chance;
 * @force takes it anyway), wholly in one extent. Returns its old word
 * (never 0: RESIDENT is not), or 0.
 */
static uint64_t claim_cold(struct upg_pager *pg, struct upg_counters *c,
			   struct upg_region *r, size_t b, bool force)
{
	uint64_t *word = &r->state[b], old = __atomic_load_n(word, __ATOMIC_ACQUIRE);
	uintptr_t bs = block_start(r, b);
	const struct upg_extent *e;

	if (upg_ps_state(old) != UPG_PS_RESIDENT)
		return 0;
	if (old & UPG_PS_PIN) {
		upg_stat_inc(c, pin_skipped);
		return 0;
	}
	if ((old & UPG_PS_REF) && !force) {
		/* A lost CAS is a block in use anyway. */
		__atomic_compare_exchange_n(word, &old, old & ~UPG_PS_REF, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		return 0;
	}
	e = upg_extent_find(pg->rt, bs);
	if (!e || e->region != r || e->end < bs + upg_block_len(r, b) || e->start > bs)
		return 0;	/* partly unmapped: stays resident */
	if (!__atomic_compare_exchange_n(word, &old,
					 upg_ps_with_state(old & ~UPG_PS_REF, UPG_PS_EVICTING),
					 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return 0;
	return old & ~UPG_PS_REF;
}

/*
 * Claim block @b of @r as a hole in a run: a block with no page mapped
 * (COMPRESSED or ABSENT, checked with mincore), which UFFDIO_MOVE skips
 * (ALLOW_SRC_HOLES). Held EVICTING while the run moves, so that no fill
 * maps a page there meanwhile; its word goes back as it was (*@old).
 * Blocks evicted one by one after a scattered access pattern sit among
 * such holes: moved in one run they save a call each. Not the TLB
 * shoot-down: the kernel (6.18) flushes once per stretch of mapped pages
 * in a move (measured, another CPU in the mm: one move over every 4th
 * page 27-31 us a page, a move per page 41-53 us, a move of 64 mapped
 * pages 1-1.5 us a page). Scattered evictions pay a shoot-down each,
 * where the kernel's reclaim batches them; only MADV_DONTNEED batches
 * scattered ranges (process_madvise), and on the region it waits for a
 * reader to read each range's REMOVE event (11-30 us a range).
 */
static bool claim_hole(struct upg_pager *pg, struct upg_region *r, size_t b, uint64_t *old)
{
	uint64_t *word = &r->state[b], w = __atomic_load_n(word, __ATOMIC_ACQUIRE);
	uintptr_t bs = block_start(r, b);
	size_t blen = upg_block_len(r, b);
	unsigned char vec[UPG_FILL_MAX / PAGE];
	const struct upg_extent *e;

	if (upg_ps_state(w) != UPG_PS_COMPRESSED && upg_ps_state(w) != UPG_PS_ABSENT)
		return false;
	e = upg_extent_find(pg->rt, bs);
	if (!e || e->region != r || e->end < bs + blen || e->start > bs)
		return false;
	if (!__atomic_compare_exchange_n(word, &w, upg_ps_with_state(w, UPG_PS_EVICTING),
					 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return false;
	/*
	 * Pages may be mapped there all the same (a swap-in cut short by an
	 * unread event, a fault that won against a REMOVE): not a hole.
	 */
	if (mincore((void *)bs, blen, vec) == 0) {
		size_t i = 0;

		while (i < blen / PAGE && !(vec[i] & 1))
			i++;
		if (i == blen / PAGE) {
			*old = w;
			return true;
		}
	}
	__atomic_store_n(word, w, __ATOMIC_RELEASE);
	return false;
}

/* How many pages of the first @len bytes of @slot are there (mincore). */
static size_t slot_pages(struct upg_pager *pg, uint64_t slot, size_t len)
{
	unsigned char vec[UPG_FILL_MAX / PAGE];
	size_t n = 0;

	if (mincore(slot_addr(pg, slot), len, vec))
		return 0;
	for (size_t i = 0; i < len / PAGE; i++)
		n += vec[i] & 1;
	return n;
}

/* Block @b of @r, claimed out of word @old, is in @slot now: INACTIVE. */
static void staged(struct upg_pager *pg, struct upg_region *r, size_t b, uint64_t slot,
		   uint64_t old, bool queue)
{
	if (old & UPG_PS_CLEAN)
		__atomic_store_n(&pg->slot_clean[slot], upg_ps_slot(old), __ATOMIC_RELEASE);
	__atomic_fetch_add(&pg->inactive, upg_block_len(r, b), __ATOMIC_RELAXED);
	__atomic_store_n(&r->state[b], upg_ps_make(UPG_PS_INACTIVE, slot), __ATOMIC_RELEASE);
	if (queue)
		ring_push(pg, r, b, slot);
}

/*
 * Move the claimed blocks [b0, b0 + n) of @r to slots [s0, s0 + n) in one
 * UFFDIO_MOVE: one TLB shoot-down for the run. What moved becomes
 * INACTIVE, at the FIFO's tail if @queue (else the caller compresses it
 * at once); what did not (-EBUSY: a page shared after fork or pinned by
 * the kernel; -EAGAIN: the mm is changing) goes back as it was. Blocks
 * marked in @holes (NULL: none) had nothing to move: they go back as
 * they were, their slots free.
 */
static void move_run(struct upg_pager *pg, struct upg_counters *c, struct upg_region *r,
		     size_t b0, uint64_t s0, size_t n, const uint64_t *olds, const bool *holes,
		     bool queue)
{
	struct upg_runtime *rt = pg->rt;
	uintptr_t start = block_start(r, b0);
	size_t len = block_start(r, b0 + n - 1) + upg_block_len(r, b0 + n - 1) - start;
	size_t done = 0, moved;
	int ret;

	ret = upg_uffd_move(&pg->staging_uffd, (uintptr_t)slot_addr(pg, s0), start, len, &done);
	upg_stat_inc(c, move_runs);
	for (size_t k = 0; k < n; k++) {
		uintptr_t bs = block_start(r, b0 + k);
		size_t blen = upg_block_len(r, b0 + k);
		uint64_t *word = &r->state[b0 + k];

		if (holes && holes[k]) {
			upg_stat_inc(c, move_run_holes);
			slot_free(pg, s0 + k);
			__atomic_store_n(word, olds[k], __ATOMIC_RELEASE);
			continue;
		}
		/*
		 * Past the count the kernel gave, ask the slot what moved: on
		 * 6.18 a refused move (-EAGAIN) was seen to leave one page
		 * more in the slots than it counted. Trusting the count then
		 * put the block back RESIDENT without that page (a later fault
		 * filled zeros) and freed a full slot.
		 */
		if (!ret || bs + blen <= start + done ||
		    (moved = slot_pages(pg, s0 + k, blen)) == blen / PAGE) {
			staged(pg, r, b0 + k, s0 + k, olds[k], queue);
			upg_stat_inc(c, deactivations);
			continue;
		}
		upg_stat_inc(c, deactivate_failed);
		if (moved && move_back(rt, c, bs, bs + blen, (uintptr_t)slot_addr(pg, s0 + k))) {
			/*
			 * Part of it is in the slot and cannot go back now (an
			 * event not read yet): it is INACTIVE, as if it had all
			 * moved; its pages still mapped are kept by the move
			 * back (their source is a hole).
			 */
			staged(pg, r, b0 + k, s0 + k, olds[k], queue);
			continue;
		}
		slot_free(pg, s0 + k);
		__atomic_store_n(word, olds[k], __ATOMIC_RELEASE);
	}
}

/*
 * The clock hand: the next RESIDENT blocks without the referenced bit,
 * wholly inside one extent, up to evict_run neighbours at a time, move to
 * neighbouring staging slots. DEACT_NONE: the hand went once round
 * without finding one (call with rt->lock shared).
 */
static enum deact deactivate_next(struct upg_pager *pg, struct upg_counters *c)
{
	struct upg_runtime *rt = pg->rt;
	size_t scanned = 0, total = 0, hops = 0;
	uint64_t olds[EVICT_RUN_MAX], slot;
	bool holes[EVICT_RUN_MAX] = { false };

	for (struct upg_region *r = rt->regions; r; r = r->next)
		total += r->nr_blocks;
	if (!slot_alloc(pg, &slot))
		return DEACT_NO_SLOT;
	while (scanned < total && hops <= rt->nr_regions + 1) {
		struct upg_region *r = pg->hand_region;
		size_t b0, n = 1;
		uint64_t next;

		if (!r || pg->hand_block >= r->nr_blocks) {
			pg->hand_region = r && r->next ? r->next : rt->regions;
			pg->hand_block = 0;
			hops++;
			continue;
		}
		scanned++;
		b0 = pg->hand_block++;
		olds[0] = claim_cold(pg, c, r, b0, false);
		if (!olds[0])
			continue;
		/*
		 * Take the cold neighbours too, while their slots are free, and
		 * with UFFDIO_MOVE the holes between them (claim_hole).
		 */
		while (n < pg->evict_run && pg->hand_block < r->nr_blocks &&
		       slot_alloc_after(pg, slot + n - 1, &next)) {
			size_t b = pg->hand_block++;

			olds[n] = claim_cold(pg, c, r, b, false);
			holes[n] = !olds[n] && !pg->copy_out && claim_hole(pg, r, b, &olds[n]);
			if (!olds[n] && !holes[n]) {
				slot_free(pg, next);
				break;
			}
			n++;
		}
		/* A run ends with a block that moves. */
		for (; holes[n - 1]; n--) {
			slot_free(pg, slot + n - 1);
			__atomic_store_n(&r->state[b0 + n - 1], olds[n - 1], __ATOMIC_RELEASE);
			holes[n - 1] = false;
		}
		if (pg->copy_out) {
			stage_run(pg, r, b0, slot, n, olds, true);
			return DEACT_STAGED;
		}
		move_run(pg, c, r, b0, slot, n, olds, holes, true);
		return DEACT_OK;
	}
	slot_free(pg, slot);
	return DEACT_NONE;
}

/*
 * Store the pages of @slot (@blen bytes) in the zpool. Pages the block
 * never had (a partial MADV_DONTNEED) are holes in the slot; reading one
 * would fault on the staging fd, which nobody reads. They read as zeros,
 * so store zeros.
 */
static int store_slot(struct upg_pager *pg, uint64_t slot, size_t blen, uint64_t *handle)
{
	unsigned char vec[UPG_FILL_MAX / PAGE];
	uint8_t *src = slot_addr(pg, slot), *buf = NULL;
	size_t nr = blen / PAGE;
	int ret;

	if (mincore(src, blen, vec) == 0) {
		for (size_t i = 0; i < nr; i++) {
			if (vec[i] & 1)
				continue;
			if (!buf) {
				buf = buf_get(pg);
				memcpy(buf, src, i * PAGE);
			}
			memset(buf + i * PAGE, 0, PAGE);
			for (i++; i < nr && (vec[i] & 1); i++)
				memcpy(buf + i * PAGE, src + i * PAGE, PAGE);
			i--;
		}
	}
	ret = upg_tier_store(pg->tier, buf ? buf : src, nr, handle);
	if (buf)
		buf_put(pg, buf);
	return ret;
}

/* Put entries back at the FIFO's head, in their order. */
static void ring_unpop(struct upg_pager *pg, const struct inactive_entry *ents, size_t n)
{
	pthread_mutex_lock(&pg->lock);
	while (n--) {
		pg->ring_head = (pg->ring_head + pg->ring_cap - 1) % pg->ring_cap;
		pg->ring[pg->ring_head] = ents[n];
		pg->ring_len++;
	}
	pthread_mutex_unlock(&pg->lock);
}

/*
 * Take the free slots between @from and @to (exclusive) if all of them
 * are free: a MADV_DONTNEED may then run across them (free slots are
 * empty) and a run with holes (claim_hole) is released in one call, one
 * TLB shoot-down. Give them back with gap_put().
 */
#define GAP_MAX		64	/* slots: past that, two calls cost less than the walk */

static bool gap_take(struct upg_pager *pg, uint64_t from, uint64_t to)
{
	bool ok = to > from && to - from - 1 <= GAP_MAX;

	pthread_mutex_lock(&pg->lock);
	for (uint64_t s = from + 1; ok && s < to; s++)
		ok = !pg->slot_used[s];
	for (uint64_t s = from + 1; ok && s < to; s++)
		pg->slot_used[s] = true;
	pthread_mutex_unlock(&pg->lock);
	return ok;
}

static void gap_put(struct upg_pager *pg, uint64_t from, uint64_t to)
{
	pthread_mutex_lock(&pg->lock);
	for (uint64_t s = from + 1; s < to; s++)
		pg->slot_used[s] = false;
	pthread_mutex_unlock(&pg->lock);
}

/*
 * Release compressed slots: one range per run of neighbours, free slots
 * between them included, all in one batched drop (staging_drop).
 */
static void slots_release(struct upg_pager *pg, struct upg_counters *c, const uint64_t *slots,
			  const size_t *lens, size_t n)
{
	struct iovec iov[EVICT_RUN_MAX];
	bool gap[EVICT_RUN_MAX];	/* gap[k]: slots between k - 1 and k taken */
	size_t nr_iov = 0;
	bool ok;

	if (!n)
		return;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;

		gap[i] = false;
		while (j < n && (gap[j] = gap_take(pg, slots[j - 1], slots[j])))
			j++;
		iov[nr_iov].iov_base = slot_addr(pg, slots[i]);
		iov[nr_iov++].iov_len = (slots[j - 1] - slots[i]) * pg->block_size + lens[j - 1];
		i = j;
	}
	ok = staging_drop(pg, c, iov, nr_iov);
	if (!ok)
		drop_failed(n);
	for (size_t k = 0; k < n; k++) {
		if (gap[k] && ok)
			gap_put(pg, slots[k - 1], slots[k]);
		if (ok)
			slot_free(pg, slots[k]);
		__atomic_fetch_sub(&pg->inactive, lens[k], __ATOMIC_RELAXED);
		upg_pager_release(pg, lens[k]);
	}
}

/* Any slot, for compress_block(). */
#define ANY_SLOT	UINT64_MAX

/*
 * Compress block @b of @r if it is INACTIVE (in @slot, or in any slot):
 * COMPRESSED, its slot in *@freed for slots_release(). Returns the
 * block's length, 0 when it is not INACTIVE there (it came back, or was
 * dropped, since), or the zpool's error (it stays INACTIVE).
 */
static long compress_block(struct upg_pager *pg, struct upg_counters *c,
			   struct upg_region *r, size_t b, uint64_t slot, uint64_t *freed)
{
	uint64_t *word = &r->state[b], old = __atomic_load_n(word, __ATOMIC_ACQUIRE), handle;
	size_t blen = upg_block_len(r, b);
	int ret;

	if (upg_ps_state(old) != UPG_PS_INACTIVE ||
	    (slot != ANY_SLOT && old != upg_ps_make(UPG_PS_INACTIVE, slot)) ||
	    !__atomic_compare_exchange_n(word, &old, upg_ps_with_state(old, UPG_PS_EVICTING),
					 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return 0;
	if (upg_test_evict_delay_us) {
		/* Read first: the test may reset it once it sees the address. */
		unsigned int delay = upg_test_evict_delay_us;

		upg_test_evicting_addr = block_start(r, b);
		usleep(delay);
		upg_test_evicting_addr = 0;
	}
	handle = slot_take_clean(pg, upg_ps_slot(old));
	if (handle) {
		/* Not written since its swap-in: the copy is its data. */
		clean_forget(pg, handle, false);
		upg_stat_inc(c, clean_reused);
	} else {
		ret = store_slot(pg, upg_ps_slot(old), blen, &handle);
		__atomic_store_n(&pg->store_full, ret == -ENOSPC, __ATOMIC_RELAXED);
		if (ret) {
			upg_stat_inc(c, evict_failed);
			__atomic_store_n(word, old, __ATOMIC_RELEASE);
			return ret;
		}
	}
	/* Faults now swap in from the zpool; the slot goes in slots_release(). */
	__atomic_store_n(word, upg_ps_make(UPG_PS_COMPRESSED, handle), __ATOMIC_RELEASE);
	*freed = upg_ps_slot(old);
	upg_stat_inc(c, evictions);
	upg_stat_add(c, UPG_STAT_evict_pages, blen / PAGE);
	return (long)blen;
}

/*
 * Compress up to @max of the oldest INACTIVE blocks and release their
 * memory. Returns the blocks evicted (0: every entry was stale), -ENOENT
 * if the FIFO is empty, or the zpool's error when it refused the first
 * (call with rt->lock shared).
 */
static int evict_batch(struct upg_pager *pg, struct upg_counters *c, size_t max)
{
	struct inactive_entry ents[EVICT_RUN_MAX];
	uint64_t slots[EVICT_RUN_MAX];
	size_t lens[EVICT_RUN_MAX], n, done = 0;
	bool serial = upg_tier_has_store(pg->tier);
	int ret = 0;

	/*
	 * With a swap store, one batch at a time: the tier hands out slots
	 * in the order it is given pages, and two batches stored at once
	 * (the evictor's and a direct reclaim's) interleave their slots,
	 * so that a stream's readahead needed a read every 3 pages.
	 */
	if (serial)
		pthread_mutex_lock(&pg->store_lock);
	pthread_mutex_lock(&pg->lock);
	n = pg->ring_len < max ? pg->ring_len : max;
	n = n < pg->evict_run ? n : pg->evict_run;
	for (size_t i = 0; i < n; i++) {
		ents[i] = pg->ring[pg->ring_head];
		pg->ring_head = (pg->ring_head + 1) % pg->ring_cap;
	}
	pg->ring_len -= n;
	pthread_mutex_unlock(&pg->lock);
	for (size_t i = 0; i < n; i++) {
		long len;

		if (!ents[i].r)
			continue;	/* its region is gone */
		len = compress_block(pg, c, ents[i].r, ents[i].block, ents[i].slot, &slots[done]);
		if (len < 0) {
			ret = (int)len;
			ring_unpop(pg, ents + i, n - i);	/* keep their places */
			break;
		}
		if (len)
			lens[done++] = (size_t)len;
	}
	if (serial)
		pthread_mutex_unlock(&pg->store_lock);
	if (!n)
		return -ENOENT;
	slots_release(pg, c, slots, lens, done);
	return done ? (int)done : ret;
}

/* Compress blocks [b, b + k) of @r that are INACTIVE; returns how many. */
static size_t compress_range(struct upg_pager *pg, struct upg_counters *c,
			     struct upg_region *r, size_t b, size_t k)
{
	uint64_t slots[EVICT_RUN_MAX];
	size_t lens[EVICT_RUN_MAX], done = 0;

	for (size_t i = b; i < b + k; i++) {
		long len = compress_block(pg, c, r, i, ANY_SLOT, &slots[done]);

		if (len < 0) {
			/* Staged but the zpool is full: let the FIFO retry it. */
			uint64_t w = __atomic_load_n(&r->state[i], __ATOMIC_ACQUIRE);

			if (upg_ps_state(w) == UPG_PS_INACTIVE)
				ring_push(pg, r, i, upg_ps_slot(w));
			continue;
		}
		if (len)
			lens[done++] = (size_t)len;
	}
	slots_release(pg, c, slots, lens, done);
	upg_stat_add(c, UPG_STAT_advise_cold_blocks, done);
	return done;
}

size_t upg_pager_cold(struct upg_pager *pg, struct upg_counters *c,
		      struct upg_region *r, size_t b0, size_t n)
{
	uint64_t olds[EVICT_RUN_MAX], slot, next;

	for (size_t b = b0; b < b0 + n;) {
		size_t k = 0;

		if (upg_ps_is_busy(__atomic_load_n(&r->state[b], __ATOMIC_ACQUIRE)))
			return b - b0;
		/* No staging slot free: make room the usual way first. */
		if (!slot_alloc(pg, &slot) && (evict_batch(pg, c, pg->evict_run) < 0 ||
					       !slot_alloc(pg, &slot)))
			break;
		while (k < pg->evict_run && b + k < b0 + n &&
		       (k == 0 || slot_alloc_after(pg, slot + k - 1, &next))) {
			olds[k] = claim_cold(pg, c, r, b + k, true);
			if (!olds[k]) {
				slot_free(pg, k ? next : slot);
				break;
			}
			k++;
		}
		if (k && pg->copy_out) {
			/* Copied out and compressed by upg_pager_cold_finish(). */
			stage_run(pg, r, b, slot, k, olds, false);
			return b + k - b0;
		}
		if (k)
			move_run(pg, c, r, b, slot, k, olds, NULL, false);
		else
			k = 1;	/* not RESIDENT: compress it if INACTIVE */
		compress_range(pg, c, r, b, k);
		b += k;
	}
	return n;
}

void upg_pager_cold_finish(struct upg_pager *pg, struct upg_counters *c)
{
	struct copy_run *run = &pg->copy;

	if (!pg->copy.pending)
		return;
	copy_out(pg, c);
	/* copy_mutex keeps the region alive; compression needs no other lock. */
	compress_range(pg, c, run->r, run->b0, run->n);
}

void upg_pager_hold(struct upg_pager *pg)
{
	pthread_rwlock_rdlock(&pg->evict_lock);
}

void upg_pager_unhold(struct upg_pager *pg)
{
	pthread_rwlock_unlock(&pg->evict_lock);
}

int upg_pager_pin(struct upg_pager *pg, struct upg_region *r, size_t b, bool pin)
{
	uint64_t *word = &r->state[b];

	for (;;) {
		uint64_t old = __atomic_load_n(word, __ATOMIC_ACQUIRE), want;

		if (upg_ps_is_busy(old)) {
			sched_yield();	/* a fill or an eviction: microseconds */
			continue;
		}
		if (pin && upg_ps_state(old) != UPG_PS_RESIDENT)
			return -EAGAIN;
		if (!!(old & UPG_PS_PIN) == pin)
			return 0;
		/*
		 * A pinned block never leaves, so its clean copy would only
		 * take room. Its pages stay write-protected until written.
		 */
		want = pin ? (old & ~UPG_PS_CLEAN & ((1ull << UPG_PS_SLOT_SHIFT) - 1)) | UPG_PS_PIN
			   : old & ~UPG_PS_PIN;
		if (!__atomic_compare_exchange_n(word, &old, want, false,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			continue;
		if (old & UPG_PS_CLEAN) {
			clean_forget(pg, upg_ps_slot(old), true);
			upg_stat_inc(upg_shared_counters(pg->rt), clean_dropped);
		}
		if (pin)
			__atomic_fetch_add(&pg->pinned, upg_block_len(r, b), __ATOMIC_RELAXED);
		else
			__atomic_fetch_sub(&pg->pinned, upg_block_len(r, b), __ATOMIC_RELAXED);
		return 0;
	}
}

bool upg_pager_pin_fits(struct upg_pager *pg, size_t nr_blocks)
{
	return nr_blocks <= pg->budget / pg->block_size &&
	       load(&pg->pinned) + nr_blocks * pg->block_size <= pg->budget;
}

void upg_pager_oom_info(struct upg_pager *pg, struct upg_oom_info *info)
{
	size_t limit = resident_limit(pg);

	*info = (struct upg_oom_info){
		.budget = limit,
		.resident = load(&pg->resident),
		.pinned = load(&pg->pinned),
		.zpool = upg_tier_mem_used(pg->tier),
		.zpool_max = pg->rt->opts.zpool_max ? pg->rt->opts.zpool_max
						    : pg->budget_total,
	};
	if (info->pinned + pg->block_size > limit)
		info->why = "everything pinned";
	else if (__atomic_load_n(&pg->store_full, __ATOMIC_RELAXED))
		info->why = upg_tier_has_store(pg->tier) ? "zpool and swap store full"
							  : "zpool full";
	else
		info->why = "nothing evictable";
}

/*
 * The INACTIVE share: two eviction steps' worth (2 MiB at 4 KiB blocks),
 * at most an eighth of the budget. Staged blocks count against the budget
 * and every touch of one costs a fault (there is no accessed bit to read
 * instead), so a larger share shrinks the part of the budget that is
 * touched for free; a smaller one only turns some cheap refaults (moved
 * back) into swap-ins (decompressed), the same number of faults. Measured
 * (upager-bench, 1 GiB, 25 %, text, 4 KiB blocks, ratio to kernel-zram):
 * a share of 1/8 of the budget gave zipf(0.99) 0.82x, 1/32 0.98x, 1/128
 * (this) 1.12x; uniform 0.91x at 1/32, 0.98x at 1/128; seq 1.7-1.8x at
 * both. A hill-climber on refaults per eviction always walked here too.
 * With reactivation by copy (no shoot-down), 1/32 and 1/64 of a 512 MiB
 * budget against this 2 MiB gave zipf after uniform (2 GiB, 25 %) the
 * same ops/s and faults within the noise, three runs each.
 */
static size_t inactive_target(struct upg_pager *pg)
{
	size_t two_steps = 2 * pg->evict_run * pg->block_size;

	return two_steps < pg->budget / 8 ? two_steps : pg->budget / 8;
}

/*
 * One step of the evictor towards @low: deactivate a block while the
 * INACTIVE share is below its target, else compress the oldest INACTIVE
 * ones, no more than it takes to reach @low (the rest keep their second
 * chance). Returns false when neither can be done (nothing evictable, or
 * the zpool refuses).
 */
static bool evict_step(struct upg_pager *pg, struct upg_counters *c, size_t low)
{
	size_t inactive = load(&pg->inactive), resident = load(&pg->resident);
	size_t need = resident > low ? (resident - low) / pg->block_size + 1 : 1;
	int ret;

	if (inactive < inactive_target(pg) + pg->block_size &&
	    pg->ring_len + pg->evict_run <= pg->ring_cap) {
		switch (deactivate_next(pg, c)) {
		case DEACT_OK:
		case DEACT_STAGED:
			return true;
		case DEACT_NO_SLOT:
		case DEACT_NONE:
			break;
		}
	}
	do
		ret = evict_batch(pg, c, need < pg->evict_run ? need : pg->evict_run);
	while (ret == 0);	/* stale entries */
	return ret > 0;
}

static void drain_deferred(struct upg_pager *pg, struct upg_counters *c);

/* Evict until resident is at the low watermark or nothing more can go. */
static void evict_round(struct upg_pager *pg, struct upg_counters *c)
{
	struct upg_runtime *rt = pg->rt;

	while (!__atomic_load_n(&pg->stop, __ATOMIC_RELAXED)) {
		size_t limit = resident_limit(pg), low = pg->low;
		bool progress = true;

		/* budget_total squeezes the resident limit: keep the gap. */
		if (limit < pg->budget)
			low = limit > pg->budget - pg->low ? limit - (pg->budget - pg->low) : 0;
		/*
		 * A block must fit under the limit once done, though the clean
		 * copies' bytes make resident no multiple of a block.
		 */
		if (low + pg->block_size > limit)
			low = limit > pg->block_size ? limit - pg->block_size : 0;
		if (load(&pg->resident) <= low)
			return;
		upg_pager_copy_lock(pg);
		pthread_rwlock_rdlock(&pg->evict_lock);
		pthread_rwlock_rdlock(&rt->lock);
		for (int i = 0; progress && i < EVICT_BATCH && load(&pg->resident) > low &&
				!pg->copy.pending; i++)
			progress = evict_step(pg, c, low);
		pthread_rwlock_unlock(&rt->lock);
		pthread_rwlock_unlock(&pg->evict_lock);
		if (pg->copy.pending)
			copy_out(pg, c);
		upg_pager_copy_unlock(pg);
		futex_wake_all(&pg->room_seq);
		/* Faults handed over get the room as soon as the waiters do. */
		drain_deferred(pg, c);
		if (!progress) {
			upg_stat_inc(c, evict_stuck);
			return;
		}
	}
}

/*
 * Give back the zpool's freed slots (zpool.c, compaction): when the slots
 * freed in arenas still in use hold more than 1/COMPACT_SHARE of its memory
 * (after the stored set shrank: a phase with more resident, clean copies
 * dropped), drain the emptiest arenas, moving each COMPRESSED block's
 * object out of them (held EVICTING meanwhile: a fault waits
 * microseconds). Clean copies' handles stay where they are. With a swap
 * store the state words hold the tier's handles, which never change: the
 * tier moves its objects itself (upg_tier_relocate_draining). When the
 * arenas to drain would free under a quarter of the waste (it is spread
 * over fuller ones), no drain starts until the waste has grown by
 * another 1/COMPACT_SHARE of the zpool. The walk holds rt->lock shared
 * (an munmap waits for it: a few ms for 2 GiB of 4 KiB blocks).
 */
#define COMPACT_MIN	(4u << 20)	/* bytes of waste: less is not worth a walk */
#define COMPACT_SHARE	32		/* ... nor less than 1/32 of the zpool */

static void compact_zpool(struct upg_pager *pg, struct upg_counters *c)
{
	struct upg_runtime *rt = pg->rt;
	const uint64_t flags = ((1ull << UPG_PS_SLOT_SHIFT) - 1) & ~UPG_PS_STATE_MASK;
	struct upg_zpool *zp = upg_tier_zpool(pg->tier);
	size_t waste = upg_zpool_waste_bytes(zp), freeable;
	struct upg_zpool_stats zs;
	uint64_t moved = 0;
	int ret = 0;

	/* Called at every turn of the evictor: the cheap test first. */
	if (waste < COMPACT_MIN || waste < pg->compact_floor)
		return;
	upg_zpool_stats(zp, &zs);
	if (waste < zs.mem_used / COMPACT_SHARE)
		return;
	freeable = upg_zpool_drain_begin(zp);
	if (freeable < waste / 4) {
		upg_zpool_drain_end(zp);
		pg->compact_floor = waste + zs.mem_used / COMPACT_SHARE;
		return;
	}
	if (upg_tier_has_store(pg->tier)) {
		/* State words hold the tier's handles: the tier moves its objects. */
		moved = upg_tier_relocate_draining(pg->tier);
		goto done;
	}
	pthread_rwlock_rdlock(&pg->evict_lock);
	pthread_rwlock_rdlock(&rt->lock);
	for (struct upg_region *r = rt->regions; r && !ret; r = r->next) {
		for (size_t b = 0; b < r->nr_blocks && !ret; b++) {
			uint64_t *word = &r->state[b], w = __atomic_load_n(word, __ATOMIC_ACQUIRE);
			uint64_t h = upg_ps_slot(w), nh;

			/* A record's pages are read only once it is held. */
			if (upg_ps_state(w) != UPG_PS_COMPRESSED ||
			    (upg_tier_object_pages(pg->tier, h) == 1 && !upg_zpool_draining(zp, h)))
				continue;
			if (!__atomic_compare_exchange_n(word, &w, upg_ps_with_state(w, UPG_PS_EVICTING),
							 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				continue;
			if (!upg_zpool_draining(zp, h) ||
			    (ret = upg_zpool_relocate(zp, h, &nh))) {
				__atomic_store_n(word, w, __ATOMIC_RELEASE);
				continue;
			}
			__atomic_store_n(word, upg_ps_make(UPG_PS_COMPRESSED, nh) | (w & flags),
					 __ATOMIC_RELEASE);
			upg_tier_free(pg->tier, h);
			moved++;
		}
	}
	pthread_rwlock_unlock(&rt->lock);
	pthread_rwlock_unlock(&pg->evict_lock);
done:
	upg_zpool_drain_end(zp);
	upg_stat_inc(c, zpool_compactions);
	upg_stat_add(c, UPG_STAT_zpool_relocated, moved);
	if (ret)
		upg_warn("zpool compaction stopped: %s", strerror(-ret));
	pg->compact_floor = 0;
}

static void *evictor_main(void *arg)
{
	struct upg_pager *pg = arg;
	struct upg_counters *c = upg_shared_counters(pg->rt);

	while (!__atomic_load_n(&pg->stop, __ATOMIC_ACQUIRE)) {
		uint32_t seq = __atomic_load_n(&pg->evict_seq, __ATOMIC_ACQUIRE);

		bool deferred = __atomic_load_n(&pg->nr_deferred, __ATOMIC_ACQUIRE);

		upg_pager_drops_flush(pg, c);
		if (load(&pg->resident) > pg->high || deferred ||
		    __atomic_load_n(&pg->waiters, __ATOMIC_RELAXED)) {
			evict_round(pg, c);
			drain_deferred(pg, c);
			deferred = __atomic_load_n(&pg->nr_deferred, __ATOMIC_ACQUIRE);
			if (deferred)
				usleep(1000);	/* no room yet: let things move */
			else if (load(&pg->resident) > pg->low &&
				 !__atomic_load_n(&pg->waiters, __ATOMIC_RELAXED))
				evictor_sleep(pg, seq, 10 * 1000000);
			else if (load(&pg->resident) > pg->low)
				usleep(1000);	/* stuck with waiters: let things move */
			compact_zpool(pg, c);
			continue;
		}
		compact_zpool(pg, c);
		evictor_sleep(pg, seq, 100 * 1000000);
	}
	return NULL;
}

/*
 * A fill has waited for room: if nothing was freed anywhere for
 * UPG_OOM_DETECT_MS, the budget cannot be kept and the OOM policy decides.
 */
static void room_check(struct upg_pager *pg, struct upg_counters *c, struct upg_room_wait *w)
{
	uint64_t now = upg_now_ns(), seq = __atomic_load_n(&pg->freed_seq, __ATOMIC_RELAXED);

	if (!w->since_ns || seq != w->freed_seq) {
		w->since_ns = now;
		w->freed_seq = seq;
		return;
	}
	if (now - w->since_ns >= UPG_OOM_DETECT_MS * 1000000ull)
		upg_oom(pg->rt, c, w, now);
}

bool upg_pager_reclaim(struct upg_pager *pg, struct upg_counters *c,
		       struct upg_room_wait *w, bool may_wait)
{
	uint64_t t0 = upg_now_ns();
	int ret;

	pthread_rwlock_rdlock(&pg->evict_lock);
	pthread_rwlock_rdlock(&pg->rt->lock);
	/* About 256 KiB: enough to share a shoot-down, not to stall long. */
	do
		ret = evict_batch(pg, c, pg->block_size < (256u << 10) ?
				  (256u << 10) / pg->block_size : 1);
	while (ret == 0);	/* stale entries */
	pthread_rwlock_unlock(&pg->rt->lock);
	pthread_rwlock_unlock(&pg->evict_lock);
	kick_evictor(pg);
	if (ret < 0) {
		if (!may_wait)
			return false;
		upg_pager_wait_room(pg, c);
		room_check(pg, c, w);
		return true;
	}
	upg_stat_inc(c, reclaims_direct);
	upg_stat_inc(c, stalls);
	upg_stat_add(c, UPG_STAT_stall_ns, upg_now_ns() - t0);
	return true;
}

/* Set by drain_deferred around a retry: the fault's first hand-over. */
static _Thread_local uint64_t retry_since;
static _Thread_local bool retry_deferred;

bool upg_pager_defer(struct upg_pager *pg, struct upg_counters *c, uintptr_t addr,
		     unsigned int flags)
{
	uint64_t since = retry_since ? retry_since : upg_now_ns();
	bool ok;

	pthread_mutex_lock(&pg->defer_lock);
	ok = pg->nr_deferred < NR_DEFERRED;
	if (ok) {
		pg->deferred[pg->nr_deferred] = (struct deferred_fault){ addr, flags, since };
		__atomic_store_n(&pg->nr_deferred, pg->nr_deferred + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&pg->defer_lock);
	if (!ok)
		return false;
	if (retry_since)
		retry_deferred = true;
	else
		upg_stat_inc(c, stalls);
	kick_evictor(pg);
	return true;
}

/*
 * The evictor retries the faults handed over, once each per call; those
 * still without room are handed over again (keeping their first time).
 * When none could go and nothing was freed for UPG_OOM_DETECT_MS, the OOM
 * policy decides, here.
 */
static void drain_deferred(struct upg_pager *pg, struct upg_counters *c)
{
	struct deferred_fault batch[NR_DEFERRED];
	size_t n, again = 0;

	if (!__atomic_load_n(&pg->nr_deferred, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&pg->defer_lock);
	n = pg->nr_deferred;
	memcpy(batch, pg->deferred, n * sizeof(batch[0]));
	__atomic_store_n(&pg->nr_deferred, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&pg->defer_lock);
	for (size_t i = 0; i < n; i++) {
		retry_since = batch[i].since_ns;
		retry_deferred = false;
		upg_fault_handle(pg->rt, c, batch[i].addr, batch[i].flags | UPG_FH_RETRY);
		if (retry_deferred)
			again++;
		else
			upg_stat_add(c, UPG_STAT_stall_ns, upg_now_ns() - batch[i].since_ns);
	}
	retry_since = 0;
	if (!again) {
		pg->defer_wait = (struct upg_room_wait){ 0 };
		return;
	}
	room_check(pg, c, &pg->defer_wait);
}

void upg_pager_region_gone(struct upg_pager *pg, struct upg_region *r)
{
	if (!pg)
		return;
	for (size_t b = 0; b < r->nr_blocks; b++) {
		uint64_t old = __atomic_exchange_n(&r->state[b], 0, __ATOMIC_ACQ_REL);

		upg_pager_block_dropped(pg->rt, r, b, old);
	}
	pthread_mutex_lock(&pg->lock);
	if (pg->hand_region == r) {
		pg->hand_region = NULL;
		pg->hand_block = 0;
	}
	/* Its FIFO entries are stale now: no block of it is INACTIVE. */
	for (size_t i = 0; i < pg->ring_len; i++) {
		struct inactive_entry *ent = &pg->ring[(pg->ring_head + i) % pg->ring_cap];

		if (ent->r == r)
			ent->r = NULL;
	}
	pthread_mutex_unlock(&pg->lock);
}

void upg_test_swap_flush(struct upg_runtime *rt)
{
	if (rt->pager)
		upg_tier_test_flush(rt->pager->tier);
}

void upg_test_swap_fail(struct upg_runtime *rt, bool write, int err, unsigned int count)
{
	if (rt->pager)
		upg_tier_test_fail(rt->pager->tier, write, err, count);
}

int upg_test_swap_fd(struct upg_runtime *rt)
{
	return rt->pager ? upg_tier_test_fd(rt->pager->tier) : -1;
}

size_t upg_test_full_free_slots(struct upg_runtime *rt)
{
	struct upg_pager *pg = rt->pager;
	unsigned char vec[UPG_FILL_MAX / PAGE];
	size_t n = 0;

	if (!pg)
		return 0;
	/* Slots are taken under pg->lock: a free one stays free meanwhile. */
	pthread_mutex_lock(&pg->lock);
	for (size_t slot = 0; slot < pg->nr_slots; slot++) {
		if (pg->slot_used[slot] || mincore(slot_addr(pg, slot), pg->block_size, vec))
			continue;
		for (size_t i = 0; i < pg->block_size / PAGE; i++)
			if (vec[i] & 1) {
				n++;
				break;
			}
	}
	pthread_mutex_unlock(&pg->lock);
	return n;
}

int upg_test_corrupt_block(struct upg_region *r, size_t block)
{
	struct upg_pager *pg = r->rt->pager;
	uint64_t word = __atomic_load_n(&r->state[block], __ATOMIC_ACQUIRE);
	size_t len = 0;
	uint8_t *p;

	if (!pg || upg_ps_state(word) != UPG_PS_COMPRESSED || upg_block_len(r, block) != PAGE)
		return -EINVAL;
	if (upg_tier_has_store(pg->tier))
		return upg_tier_test_corrupt(pg->tier, upg_ps_slot(word));
	p = upg_zpool_test_object_ptr(upg_tier_zpool(pg->tier), upg_ps_slot(word), &len);
	if (!p || len == PAGE)	/* a same-filled or raw page decodes anyway */
		return -EINVAL;
	/* Token 0xff and length bytes 0xff: a literal run past the input. */
	memset(p, 0xff, len);
	return 0;
}

size_t upg_pager_swap_capacity(struct upg_pager *pg)
{
	return upg_tier_store_capacity(pg->tier);
}

void upg_pager_stats(struct upg_pager *pg, struct upg_stats *st)
{
	struct upg_tier_stats ts;
	const struct upg_zpool_stats *zs = &ts.zpool;

	if (!pg)
		return;
	upg_tier_stats(pg->tier, &ts);
	st->budget_bytes = pg->budget;
	st->resident_bytes = load(&pg->resident);
	st->inactive_bytes = load(&pg->inactive);
	st->pinned_bytes = load(&pg->pinned);
	st->zpool_bytes = zs->mem_used;
	st->zpool_orig_bytes = zs->orig_bytes;
	st->zpool_stored_bytes = zs->stored_bytes;
	st->zpool_same_pages = zs->same_pages;
	st->zpool_raw_pages = zs->raw_pages;
	st->tier_bytes = ts.mem_used;
	st->swap_pages = ts.swap_pages;
	st->swap_bytes = ts.swap_bytes;
	st->swap_writes = ts.swap_writes;
	st->swap_written_pages = ts.swap_written_pages;
	st->swap_reads = ts.swap_reads;
	st->swap_read_pages = ts.swap_read_pages;
	st->swap_writeback_pages = ts.writeback_pages;
	st->swap_direct_pages = ts.direct_pages;
	st->swap_checksum_errors = ts.checksum_errors;
	st->swap_read_errors = ts.read_errors;
	st->swap_write_errors = ts.write_errors;
	st->swap_fragmentation_pct = ts.swap_fragmentation_pct;
	st->swap_degraded = ts.degraded;
	st->clean_bytes = load(&pg->clean_bytes);
}

/*
 * fork(). Without UFFD_FEATURE_EVENT_FORK the child's copy of a region is
 * plain memory, no longer registered: a block evicted at fork would read
 * as zeros there. Until fork is followed through the event (issue 4), the
 * parent brings every evicted block back before fork(), over budget if
 * need be, and holds evictions until fork returns: the child gets all its
 * data. A raw clone() without fork's handlers is not covered.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct upg_pager *live_pagers;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/*
 * Block @b of @e back in memory for fork. A fill in hand (readahead) is
 * waited out: its owner never waits on us. A swap-in the kernel refuses
 * for now (an event not read yet) is tried again for up to a second; a
 * reader may be stuck behind evict_lock, which fork holds, so not for
 * ever: the child then reads zeros there (logged). An undecodable block
 * stays as it is (its accesses get SIGBUS in the parent).
 */
static void bring_back(struct upg_pager *pg, struct upg_counters *c,
		       const struct upg_extent *e, size_t b)
{
	struct upg_region *r = e->region;
	uint64_t t0 = upg_now_ns();

	for (;;) {
		uint64_t old = __atomic_load_n(&r->state[b], __ATOMIC_ACQUIRE);
		bool compressed = upg_ps_state(old) == UPG_PS_COMPRESSED;
		uint64_t failed = __atomic_load_n(&c->count[UPG_STAT_swapin_failed],
						  __ATOMIC_RELAXED);

		if (upg_ps_is_busy(old)) {
			sched_yield();
			continue;
		}
		if (!compressed && upg_ps_state(old) != UPG_PS_INACTIVE)
			return;
		if (upg_now_ns() - t0 > 1000000000ull) {
			upg_err("fork: block %p could not be brought back: the child reads "
				"zeros there", (void *)block_start(r, b));
			return;
		}
		/* Over budget on purpose: the child must get it all. */
		if (compressed)
			__atomic_fetch_add(&pg->resident, upg_block_len(r, b), __ATOMIC_RELAXED);
		/* No clean copy: the pages will be shared with the child. */
		if (!upg_pager_fault(pg, c, e, b, old, block_start(r, b), true, false)) {
			if (compressed)
				upg_pager_release(pg, upg_block_len(r, b));
			continue;	/* it changed under us: look again */
		}
		if (upg_ps_state(__atomic_load_n(&r->state[b], __ATOMIC_ACQUIRE)) == UPG_PS_RESIDENT) {
			upg_stat_inc(c, fork_brought_back);
			return;
		}
		/* Undecodable (logged by swap_in), or refused for now: again. */
		if (__atomic_load_n(&c->count[UPG_STAT_swapin_failed], __ATOMIC_RELAXED) != failed)
			return;
		sched_yield();
	}
}

static void bring_back_all(struct upg_pager *pg)
{
	struct upg_runtime *rt = pg->rt;
	struct upg_counters *c = upg_shared_counters(rt);

	pthread_rwlock_rdlock(&rt->lock);
	for (size_t i = 0; i < rt->nr_extents; i++) {
		const struct upg_extent *e = &rt->extents[i];
		struct upg_region *r = e->region;
		size_t first = (e->start - r->start) >> r->block_shift;
		size_t last = (e->end - 1 - r->start) >> r->block_shift;

		for (size_t b = first; b <= last; b++)
			bring_back(pg, c, e, b);
	}
	pthread_rwlock_unlock(&rt->lock);
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&live_lock);
	for (struct upg_pager *pg = live_pagers; pg; pg = pg->next_live) {
		upg_pager_copy_lock(pg);	/* no block half out */
		pthread_rwlock_wrlock(&pg->evict_lock);
		bring_back_all(pg);
		/* Slots left full for the child to inherit are only a cost. */
		upg_pager_drops_flush(pg, upg_shared_counters(pg->rt));
	}
}

static void fork_done(void)
{
	for (struct upg_pager *pg = live_pagers; pg; pg = pg->next_live) {
		pthread_rwlock_unlock(&pg->evict_lock);
		upg_pager_copy_unlock(pg);
	}
	pthread_mutex_unlock(&live_lock);
}

/* The child's pidfd for staging_drop(): its own, not its parent's. */
static void fork_child(void)
{
	for (struct upg_pager *pg = live_pagers; pg; pg = pg->next_live) {
		if (pg->self_pidfd >= 0)
			close(pg->self_pidfd);
		self_pidfd_open(pg);
	}
	fork_done();
}

static void atfork_register(void)
{
	pthread_atfork(fork_prepare, fork_done, fork_child);
}

static void live_add(struct upg_pager *pg)
{
	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&live_lock);
	pg->next_live = live_pagers;
	live_pagers = pg;
	pthread_mutex_unlock(&live_lock);
}

static void live_del(struct upg_pager *pg)
{
	pthread_mutex_lock(&live_lock);
	for (struct upg_pager **p = &live_pagers; *p; p = &(*p)->next_live)
		if (*p == pg) {
			*p = pg->next_live;
			break;
		}
	pthread_mutex_unlock(&live_lock);
}

int upg_pager_create(struct upg_runtime *rt, struct upg_pager **out)
{
	const struct upg_options *o = &rt->opts;
	struct upg_tier_config tc = { 0 };
	pthread_rwlockattr_t rwa;
	struct upg_pager *pg;
	int ret;

	*out = NULL;
	if (!o->budget && !o->budget_total)
		return 0;
	if (!(upg_runtime_features(rt) & UPG_FEAT_MOVE) &&
	    (upg_runtime_features(rt) & (UPG_FEAT_WP | UPG_FEAT_THREAD_ID)) !=
		    (UPG_FEAT_WP | UPG_FEAT_THREAD_ID)) {
		upg_err("a budget needs UFFDIO_MOVE (kernel 6.8+), or write-protect "
			"faults and thread ids to copy pages out (5.7+)");
		return -EOPNOTSUPP;
	}
	pg = calloc(1, sizeof(*pg));
	if (!pg)
		return -ENOMEM;
	pg->rt = rt;
	pg->self_pidfd = -1;
	pg->copy_out = !(upg_runtime_features(rt) & UPG_FEAT_MOVE);
	pg->keep_clean = !pg->copy_out &&
			 (upg_runtime_features(rt) & (UPG_FEAT_WP | UPG_FEAT_EVENT_REMOVE)) ==
				 (UPG_FEAT_WP | UPG_FEAT_EVENT_REMOVE);
	pg->block_size = o->block_size;
	pg->budget = o->budget ? o->budget : o->budget_total;
	pg->budget_total = o->budget_total;
	/* upg_options_validate() saw to low <= high <= budget. */
	upg_watermarks(o, pg->budget, &pg->low, &pg->high);
	/* No more in one step than an eighth of the budget. */
	pg->evict_run = (pg->budget / 8 < EVICT_RUN_BYTES ? pg->budget / 8
							   : EVICT_RUN_BYTES) / pg->block_size;
	pg->evict_run = pg->evict_run < EVICT_RUN_MIN ? EVICT_RUN_MIN :
			pg->evict_run > EVICT_RUN_MAX ? EVICT_RUN_MAX : pg->evict_run;
	pg->clean_max = pg->budget / 32 < CLEAN_MAX ? pg->budget / 32 : CLEAN_MAX;
	pthread_mutex_init(&pg->lock, NULL);
	pthread_mutex_init(&pg->defer_lock, NULL);
	pthread_mutex_init(&pg->copy_mutex, NULL);
	pthread_mutex_init(&pg->zap_lock, NULL);
	pthread_mutex_init(&pg->store_lock, NULL);
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&pg->evict_lock, &rwa);
	pthread_rwlockattr_destroy(&rwa);
	tc.zpool.max_bytes = o->zpool_max ? o->zpool_max : o->budget_total;
	if (o->swap[0]) {
		tc.swap_path = o->swap;
		tc.swap_size = o->swap_size;
		/*
		 * The zpool's share: zpool_max, else a quarter of the budget
		 * (zswap's default pool is a fifth of RAM).
		 */
		tc.zpool_share = o->zpool_max ? o->zpool_max
			       : (o->budget_total ? o->budget_total : pg->budget) / 4;
		tc.readers = rt->nr_counters - 1;	/* the fault threads */
		tc.no_tmpfile = !(o->features & UPG_FEAT_TMPFILE);
		tc.no_direct = !(o->features & UPG_FEAT_DIRECT);
	}
	ret = upg_tier_create(&tc, &pg->tier);
	if (ret)
		goto err_free;
	if (!pg->copy_out) {
		ret = upg_uffd_init_staging(&pg->staging_uffd, o->features);
		if (ret)
			goto err_zpool;
	}
	/*
	 * Slots for the INACTIVE share and then some; virtual until used.
	 * SLOT_SPARE times that, so the slots after the cursor are free as a
	 * rule and a run finds its neighbours there (slot_alloc_after).
	 */
	pg->nr_slots = SLOT_SPARE * ((inactive_target(pg) + 2 * pg->block_size) / pg->block_size +
				     pg->evict_run);
	pg->staging = mmap(NULL, pg->nr_slots * pg->block_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	pg->bufs = mmap(NULL, NR_BUFS * pg->block_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (upg_tier_has_store(pg->tier)) {
		pg->ra_bufs = mmap(NULL, NR_RA_BUFS * ra_buf_bytes(pg), PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		pg->ra_free = (1u << NR_RA_BUFS) - 1;
	}
	pg->ring_cap = 2 * pg->nr_slots;
	pg->slot_used = calloc(pg->nr_slots, sizeof(*pg->slot_used));
	pg->slot_clean = calloc(pg->nr_slots, sizeof(*pg->slot_clean));
	pg->ring = calloc(pg->ring_cap, sizeof(*pg->ring));
	if (pg->copy_out) {
		pg->copy.seen = calloc(pg->evict_run * pg->block_size / PAGE, 1);
		pg->copy.vec = calloc(pg->evict_run * pg->block_size / PAGE, 1);
	}
	ret = -ENOMEM;
	if (pg->staging == MAP_FAILED || pg->bufs == MAP_FAILED || pg->ra_bufs == MAP_FAILED ||
	    !pg->slot_used ||
	    !pg->slot_clean || !pg->ring ||
	    (pg->copy_out && (!pg->copy.seen || !pg->copy.vec)))
		goto err_maps;
	if (!pg->copy_out) {
		ret = upg_uffd_register(&pg->staging_uffd, (uintptr_t)pg->staging,
					pg->nr_slots * pg->block_size, false);
		if (ret)
			goto err_maps;
	}
	pg->bufs_free = ~0ull;
	self_pidfd_open(pg);
	ret = -pthread_create(&pg->evictor, NULL, evictor_main, pg);
	if (ret)
		goto err_maps;
	pg->evictor_started = true;
	live_add(pg);
	*out = pg;
	return 0;

err_maps:
	free(pg->slot_used);
	free(pg->slot_clean);
	free(pg->ring);
	free(pg->copy.seen);
	free(pg->copy.vec);
	if (pg->bufs != MAP_FAILED && pg->bufs)
		munmap(pg->bufs, NR_BUFS * pg->block_size);
	if (pg->ra_bufs != MAP_FAILED && pg->ra_bufs)
		munmap(pg->ra_bufs, NR_RA_BUFS * ra_buf_bytes(pg));
	if (pg->staging != MAP_FAILED && pg->staging)
		munmap(pg->staging, pg->nr_slots * pg->block_size);
	upg_uffd_fini(&pg->staging_uffd);
err_zpool:
	upg_tier_destroy(pg->tier);
err_free:
	pthread_rwlock_destroy(&pg->evict_lock);
	pthread_mutex_destroy(&pg->lock);
	pthread_mutex_destroy(&pg->copy_mutex);
	pthread_mutex_destroy(&pg->zap_lock);
	pthread_mutex_destroy(&pg->store_lock);
	if (pg->self_pidfd >= 0)
		close(pg->self_pidfd);
	free(pg);
	return ret;
}

void upg_pager_destroy(struct upg_pager *pg)
{
	if (!pg)
		return;
	live_del(pg);
	__atomic_store_n(&pg->stop, true, __ATOMIC_RELEASE);
	kick_evictor(pg);
	if (pg->evictor_started)
		pthread_join(pg->evictor, NULL);
	if (pg->self_pidfd >= 0)
		close(pg->self_pidfd);
	munmap(pg->staging, pg->nr_slots * pg->block_size);
	munmap(pg->bufs, NR_BUFS * pg->block_size);
	if (pg->ra_bufs)
		munmap(pg->ra_bufs, NR_RA_BUFS * ra_buf_bytes(pg));
	upg_uffd_fini(&pg->staging_uffd);
	upg_tier_destroy(pg->tier);
	free(pg->slot_used);
	free(pg->slot_clean);
	free(pg->ring);
	free(pg->copy.seen);
	free(pg->copy.vec);
	pthread_rwlock_destroy(&pg->evict_lock);
	pthread_mutex_destroy(&pg->lock);
	pthread_mutex_destroy(&pg->copy_mutex);
	pthread_mutex_destroy(&pg->zap_lock);
	pthread_mutex_destroy(&pg->store_lock);
	free(pg);
}
