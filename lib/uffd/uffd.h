/*
 * The only interface to a userfaultfd: open and API handshake, register,
 * fills, wake, and the reader threads (loop.c). The core decides what to
 * fill; this module carries it out and reports the kernel's answer as a
 * negative errno.
 */
#ifndef UPG_UFFD_H
#define UPG_UFFD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../stats.h"

#define UPG_PAGE_SIZE	4096ul
#define UPG_FILL_MAX	(2ul << 20)	/* largest fill block */

struct upg_uffd {
	int fd;
	unsigned int features;	/* UPG_FEAT_* in use */
	uint64_t kernel_features;	/* UFFD_FEATURE_* the kernel offered */
	const void *zeros;	/* UPG_FILL_MAX bytes of zeros: COPY's source */
};

/*
 * Open a userfaultfd (never UFFD_USER_MODE_ONLY: kernel-mode accesses must
 * fault, not fail) and agree the API. @allowed: UPG_FEAT_* the caller lets
 * it use. @sigbus: faults raise SIGBUS in the faulting thread instead of
 * queueing a message. Errors: -ENOSYS, -EPERM (logged with the fix),
 * -EOPNOTSUPP (a required feature is missing, logged).
 */
int upg_uffd_init(struct upg_uffd *u, unsigned int allowed, bool sigbus);
/*
 * A second userfaultfd for the pager's staging area: MOVE only, no events,
 * and nobody reads it, so a MADV_DONTNEED there waits for no reader (the
 * readers may be waiting for the evictor) and a fault there would hang:
 * touch only pages known to be present. -EOPNOTSUPP without MOVE.
 */
int upg_uffd_init_staging(struct upg_uffd *u, unsigned int allowed);
void upg_uffd_fini(struct upg_uffd *u);

/* @wp: write-protect faults too (UPG_FEAT_WP), as the copy-out needs. */
int upg_uffd_register(struct upg_uffd *u, uintptr_t start, size_t len, bool wp);
int upg_uffd_unregister(struct upg_uffd *u, uintptr_t start, size_t len);

/*
 * Map zeros at [start, start + len): the shared zero page for a read (with
 * ZEROPAGE), fresh pages for a write. Wakes threads waiting in the filled
 * range. Returns 0, or -errno with *done set to the bytes filled first:
 *   -EEXIST  a page at start + *done is already mapped
 *   -EAGAIN  the mm is changing (fork, mremap, madvise): wake and refault
 *   -ENOENT  the range is no longer one registered mapping
 */
int upg_uffd_fill_zero(struct upg_uffd *u, uintptr_t start, size_t len,
		       bool write, size_t *done);

/*
 * Copy @len bytes from @src (unmanaged memory) to [start, start + len), as
 * upg_uffd_fill_zero() does with zeros; the same results. @wp: map the
 * pages write-protected (the range registered with @wp), so the first
 * write to each faults.
 */
int upg_uffd_fill_copy(struct upg_uffd *u, uintptr_t start, size_t len,
		       const void *src, bool wp, size_t *done);

/*
 * Move the pages of [src, src + len) to @dst, which must be registered with
 * @u (src need not be); holes in the source are skipped. Wakes waiters at
 * dst. 0, or -errno with *done bytes moved first: -EEXIST a page is mapped
 * at the destination, -EBUSY a source page is shared (after fork) or
 * pinned, -EAGAIN the mm is changing, -ENOENT a range is gone.
 */
int upg_uffd_move(struct upg_uffd *u, uintptr_t dst, uintptr_t src, size_t len,
		  size_t *done);

/*
 * Make [start, start + len) raise SIGBUS when touched (UFFDIO_POISON,
 * 6.6+): for data that is lost, never to be handed back wrong. Without the
 * feature there is no way to fail one access: -EOPNOTSUPP.
 */
int upg_uffd_poison(struct upg_uffd *u, uintptr_t start, size_t len);

/*
 * Write-protect [start, start + len) (@wp), or lift the protection and
 * wake the threads waiting to write there. The range must be registered
 * with @wp. Only present pages are affected. -EAGAIN while an event is
 * unread (the mm is changing), -ENOENT where the range is not registered.
 */
int upg_uffd_writeprotect(struct upg_uffd *u, uintptr_t start, size_t len, bool wp);

/* Wake threads waiting on faults in the range: they retry the access. */
int upg_uffd_wake(struct upg_uffd *u, uintptr_t start, size_t len);

/* What a reader thread hands to the core, one call per message. */
struct upg_uffd_ops {
	/*
	 * @write: a write; @wp: a write to a write-protected page. @tid: the
	 * faulting thread (0 without UPG_FEAT_THREAD_ID).
	 */
	void (*fault)(void *ctx, struct upg_counters *c, uintptr_t addr,
		      bool write, bool wp, uint32_t tid);
	void (*remove)(void *ctx, struct upg_counters *c, uintptr_t start,
		       uintptr_t end);
	void (*unmap)(void *ctx, struct upg_counters *c, uintptr_t start,
		      uintptr_t end);
	void (*remap)(void *ctx, struct upg_counters *c, uintptr_t from,
		      uintptr_t to, size_t len);
};

struct upg_uffd_loop;

/*
 * Start @nr_threads readers, each in poll() on the fd (non-blocking reads:
 * the losers of a wake-up race go back to poll). With @pin, reader i runs
 * on CPU i % nr_cpus: the reader on the faulting thread's CPU then wins the
 * race, which measured 11-12 us a fault here against 52 us unpinned.
 * Reader i bumps @counters[i]. Fault service time is recorded from the read
 * to the end of ops->fault.
 */
int upg_uffd_loop_start(struct upg_uffd *u, unsigned int nr_threads, bool pin,
			const struct upg_uffd_ops *ops, void *ctx,
			struct upg_counters *counters,
			struct upg_uffd_loop **out);

/*
 * Wait until every message read before this call has been handled, or
 * UPG_QUIESCE_MAX_MS at most: a fault may wait for room for as long as
 * the budget cannot be kept, and statistics must not wait with it. For
 * readers of counters; who must see an event's effect calls
 * upg_uffd_loop_wait_events(). Never from a reader thread.
 */
#define UPG_QUIESCE_MAX_MS	50
void upg_uffd_loop_quiesce(struct upg_uffd_loop *loop);

/*
 * Wait until every event read before this call has been handled (events
 * only; faults may still be in hand). The kernel lets munmap(), mremap()
 * and madvise() return once their event is read; a caller that must see
 * the event's effect (region length, create, destroy) calls this first.
 * A reader calls it before it treats an address as unknown: the address
 * may be the new range of an mremap whose event another reader has read
 * but not yet handled.
 */
void upg_uffd_loop_wait_events(struct upg_uffd_loop *loop);

/* Stop and join the readers. NULL is fine. */
void upg_uffd_loop_stop(struct upg_uffd_loop *loop);

#endif
