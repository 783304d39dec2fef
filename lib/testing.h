/*
 * Hooks for tests that must force an interleaving. They are internal
 * symbols: only the tests, linked against the static library, reach them.
 */
#ifndef UPG_TESTING_H
#define UPG_TESTING_H

#include <stdbool.h>
#include <stdint.h>

/* Sleep this long after claiming a block, before filling it. */
extern _Atomic unsigned int upg_test_fill_delay_us;
/* Sleep this long after claiming an INACTIVE block, before compressing it. */
extern _Atomic unsigned int upg_test_evict_delay_us;
/* During that sleep: the address of the block (0 otherwise). */
extern _Atomic uintptr_t upg_test_evicting_addr;

/*
 * Sleep this long in a copy-out (no UFFDIO_MOVE) at phase
 * upg_test_copyout_phase: 0 once the run is write-protected, 1 once it is
 * copied, 2 once it is dropped (MADV_DONTNEED, event handled); meanwhile
 * upg_test_copyout_addr is its start. Setting the delay to 0 ends the
 * sleep within a millisecond.
 */
extern _Atomic unsigned int upg_test_copyout_delay_us;
extern _Atomic unsigned int upg_test_copyout_phase;
extern _Atomic uintptr_t upg_test_copyout_addr;
/* When hi is set: only runs that start in [lo, hi) sleep. */
extern _Atomic uintptr_t upg_test_copyout_lo, upg_test_copyout_hi;
/*
 * The next this many copies of a swap-in or a reactivation fail with
 * -ENOMEM before their UFFDIO_COPY, as when the kernel has no page to
 * give.
 */
extern _Atomic unsigned int upg_test_copy_enomem;
/* Staging drops one madvise() per range, as without process_madvise. */
extern _Atomic bool upg_test_no_batch_drop;

struct upg_region;
/*
 * Make block @block of @r undecodable if it is a COMPRESSED single page:
 * its stored bytes are overwritten so LZ4 must fail. Returns 0, or
 * -EINVAL when the block is not such a block.
 */
int upg_test_corrupt_block(struct upg_region *r, size_t block);
/*
 * Forget @r's readahead streams, so that the faults that follow meet none
 * left by earlier access (whose ends depend on timing). Call it quiescent.
 */
void upg_test_ra_forget(struct upg_region *r);
struct upg_runtime;
/* Staging slots that are free but hold pages (a drop that was missed). */
size_t upg_test_full_free_slots(struct upg_runtime *rt);

/* The swap store (no-ops, -1, without one): write every batch waiting. */
void upg_test_swap_flush(struct upg_runtime *rt);
/* The next @count reads (or writes) of the swap store fail with @err. */
void upg_test_swap_fail(struct upg_runtime *rt, bool write, int err, unsigned int count);
/* Its descriptor, to look at the file. */
int upg_test_swap_fd(struct upg_runtime *rt);

#endif
