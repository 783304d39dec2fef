/*
 * upg_advise, upg_pin, upg_unpin (issue 4): WILLNEED brings evicted
 * memory back without faults, COLD evicts now, HOT moves staged blocks
 * back without decompressing, DONTNEED drops contents and store, a pinned
 * range stays resident under pressure and COLD, and bad ranges are refused
 * with the exact error.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "helpers.h"
#include "testing.h"

#define KIB	1024ul
#define MIB	(1024ul * 1024)

static struct upg_runtime *budget_runtime(size_t budget)
{
	struct upg_options o;

	t_options_default(&o);
	o.block_size = 64 * KIB;
	o.budget = budget;
	o.features = t_pager_features;
	return t_runtime_create_opts(&o);
}

static uint8_t *filled_region(struct upg_runtime *rt, size_t len, unsigned int seed)
{
	uint8_t *base = upg_region_addr(t_region_create(rt, len));

	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		t_page_fill(base + pg * T_PAGE, pg, seed);
	return base;
}

static void check_pages(const uint8_t *base, size_t from, size_t len, unsigned int seed)
{
	for (size_t pg = from / T_PAGE; pg < (from + len) / T_PAGE; pg++)
		cr_assert(t_page_check(base + pg * T_PAGE, pg, seed), "page %zu is wrong", pg);
}

/* Pages of [p, p + len) mapped now (mincore: no fault taken). */
static size_t pages_present(void *p, size_t len)
{
	unsigned char vec[len / T_PAGE];
	size_t n = 0;

	cr_assert_eq(mincore(p, len, vec), 0);
	for (size_t i = 0; i < len / T_PAGE; i++)
		n += vec[i] & 1;
	return n;
}

T_BOTH_WAYS(advise, willneed_brings_evicted_memory_back_without_faults, 60)
{
	/*
	 * A small share of the budget: the clock takes a prefetched block
	 * only after two passes over the other 15 MiB.
	 */
	struct upg_runtime *rt = budget_runtime(4 * MIB);
	uint8_t *base = filled_region(rt, 16 * MIB, 1);
	struct upg_stats before, after;

	/* Written first, so evicted while the rest was written. */
	cr_assert_eq(pages_present(base, 256 * KIB), 0);
	t_stats_settled(rt, &before);
	cr_assert_eq(upg_advise(base, 256 * KIB, UPG_ADV_WILLNEED), 0);
	cr_assert_eq(pages_present(base, 256 * KIB), 256 * KIB / T_PAGE);
	check_pages(base, 0, 256 * KIB, 1);
	t_stats_settled(rt, &after);
	cr_assert_eq(after.faults, before.faults, "%llu faults after WILLNEED",
		     (unsigned long long)(after.faults - before.faults));
	cr_assert_geq(after.prefetch_blocks - before.prefetch_blocks, 4);
	upg_runtime_destroy(rt);
}

T_BOTH_WAYS(advise, cold_compresses_a_resident_range_at_once, 60)
{
	struct upg_runtime *rt = budget_runtime(8 * MIB);
	uint8_t *base = filled_region(rt, 1 * MIB, 2);
	struct upg_stats st;

	t_stats(rt, &st);
	cr_assert_eq(st.resident_bytes, 1 * MIB);
	cr_assert_eq(upg_advise(base, 1 * MIB, UPG_ADV_COLD), 0);
	t_stats(rt, &st);
	cr_assert_eq(st.advise_cold_blocks, 16);
	cr_assert_eq(st.resident_bytes, 0);
	/* In the zpool, or (suite swapfile) on the swap store. */
	cr_assert_eq(st.zpool_orig_bytes + st.swap_pages * T_PAGE, 1 * MIB);
	cr_assert_eq(pages_present(base, 1 * MIB), 0);
	check_pages(base, 0, 1 * MIB, 2);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.swapins, 16);
	upg_runtime_destroy(rt);
}

/*
 * Press on a 4 MiB region under a 1 MiB budget until some blocks are
 * staged (INACTIVE): the evictor may have compressed every staged block
 * by the time it stops. Returns the stats then.
 */
static void stage_some(struct upg_runtime *rt, uint8_t *base, unsigned int seed,
		       struct upg_stats *st)
{
	t_stats_settled(rt, st);
	for (unsigned int i = 0; i < 64 && !st->inactive_bytes; i++) {
		t_page_fill(base, 0, seed);
		t_page_fill(base + (i % 64) * 64 * KIB, (i % 64) * 16, seed);
		t_stats_settled(rt, st);
	}
	cr_assert_gt(st->inactive_bytes, 0, "nothing staged to test with");
}

/*
 * Does the kernel take MADV_DONTNEED for our own pidfd, several ranges in
 * one call (6.13+)? Before, the pager drops one range at a time.
 */
static bool kernel_batches_dontneed(void)
{
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	uint8_t *p = mmap(NULL, 4 * T_PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec iov[2] = { { p, T_PAGE }, { p + 2 * T_PAGE, T_PAGE } };
	long ret;

	cr_assert(p != MAP_FAILED);
	memset(p, 1, 4 * T_PAGE);
	ret = pidfd < 0 ? -1 : syscall(SYS_process_madvise, pidfd, iov, 2, MADV_DONTNEED, 0);
	munmap(p, 4 * T_PAGE);
	if (pidfd >= 0)
		close(pidfd);
	return ret == 2 * (long)T_PAGE;
}

/*
 * HOT brings staged blocks back from their slots without decompressing:
 * copied back, the slots emptied together (one process_madvise: one TLB
 * shoot-down), or with @no_batch one madvise() each, as where the
 * kernel refuses process_madvise on itself.
 */
static void hot_brings_staged_blocks_back(bool no_batch)
{
	struct upg_runtime *rt = budget_runtime(1 * MIB);
	uint8_t *base = filled_region(rt, 4 * MIB, 3);
	struct upg_stats at_start, before, after;

	upg_test_no_batch_drop = no_batch;
	t_stats_settled(rt, &at_start);
	stage_some(rt, base, 3, &before);
	cr_assert_eq(upg_advise(base, 4 * MIB, UPG_ADV_HOT), 0);
	t_stats_settled(rt, &after);
	upg_test_no_batch_drop = false;
	cr_assert_eq(after.inactive_bytes, 0);
	cr_assert_eq(after.swapins, before.swapins);
	cr_assert_geq(after.reactivations - before.reactivations,
		      before.inactive_bytes / (64 * KIB));
	cr_assert_eq(after.reactivate_moved, before.reactivate_moved, "no slot had a hole");
	check_pages(base, 0, 4 * MIB, 3);
	/* HOT empties the slots before it returns, and frees only empty ones. */
	cr_assert_eq(upg_test_full_free_slots(rt), 0);
	if (no_batch)
		cr_assert_eq(after.drop_batches, at_start.drop_batches);
	else if (kernel_batches_dontneed())
		cr_assert_gt(after.drop_batches, before.drop_batches);
	upg_runtime_destroy(rt);
}

T_BOTH_WAYS(advise, hot_copies_staged_blocks_back_without_decompressing, 60)
{
	hot_brings_staged_blocks_back(false);
}

T_BOTH_WAYS(advise, hot_brings_staged_blocks_back_one_madvise_each, 60)
{
	hot_brings_staged_blocks_back(true);
}

/*
 * A copy the kernel refuses for want of memory (forced: the hook fails
 * the block's copy and then its first page's) never passes for a page
 * someone else mapped, which would leave the rest to be zero-filled. A
 * swap-in keeps the block compressed and the thread faults again; a
 * reactivation moves the block back instead (a move needs no memory).
 */
T_BOTH_WAYS(advise, a_copy_without_memory_loses_nothing, 60)
{
	struct upg_runtime *rt = budget_runtime(1 * MIB);
	uint8_t *base = filled_region(rt, 4 * MIB, 7);
	struct upg_stats before, after;

	t_stats_settled(rt, &before);
	upg_test_copy_enomem = 2;
	cr_assert(t_page_check(base + T_PAGE, 1, 7), "page 1 is wrong");
	/* Page 0 too: had the first refusal passed for a race, it would read zeros. */
	check_pages(base, 0, 64 * KIB, 7);
	t_stats_settled(rt, &after);
	cr_assert_eq(upg_test_copy_enomem, 0);
	cr_assert_geq(after.fill_failed, before.fill_failed + 1);
	cr_assert_eq(after.swapins, before.swapins + 1, "swapped in once, at the second try");

	stage_some(rt, base, 7, &before);
	upg_test_copy_enomem = UINT_MAX;
	cr_assert_eq(upg_advise(base, 4 * MIB, UPG_ADV_HOT), 0);
	upg_test_copy_enomem = 0;
	t_stats_settled(rt, &after);
	if (!(t_pager_features & UPG_FEAT_MOVE)) {
		/* Copy-out has no move: HOT left the staged blocks where they were. */
		check_pages(base, 0, 4 * MIB, 7);
		upg_runtime_destroy(rt);
		return;
	}
	cr_assert_eq(after.inactive_bytes, 0);
	cr_assert_gt(after.reactivate_moved, before.reactivate_moved, "%llu staged",
		     (unsigned long long)before.inactive_bytes / (64 * KIB));
	cr_assert_eq(upg_test_full_free_slots(rt), 0);
	check_pages(base, 0, 4 * MIB, 7);
	upg_runtime_destroy(rt);
}

/*
 * A staged block whose slot has a hole (a page the application dropped
 * while the block was staged) is moved back, not copied: the copy would
 * read the hole and fault on the staging fd, which nobody reads (the test
 * would hang). The dropped page reads zeros after, and the slots are
 * freed empty.
 */
Test(advise, a_staged_block_with_a_hole_moves_back, .timeout = 60)
{
	struct upg_runtime *rt = budget_runtime(1 * MIB);
	uint8_t *base = filled_region(rt, 4 * MIB, 5);
	struct upg_stats before, after;

	stage_some(rt, base, 5, &before);
	/* Page 3 of every block but the first (stage_some writes there). */
	for (size_t off = 64 * KIB; off < 4 * MIB; off += 64 * KIB)
		cr_assert_eq(madvise(base + off + 3 * T_PAGE, T_PAGE, MADV_DONTNEED), 0);
	t_stats_settled(rt, &before);
	cr_assert_eq(upg_advise(base, 4 * MIB, UPG_ADV_HOT), 0);
	t_stats_settled(rt, &after);
	cr_assert_gt(after.reactivate_moved, before.reactivate_moved, "%llu staged",
		     (unsigned long long)before.inactive_bytes / (64 * KIB));
	cr_assert_eq(upg_test_full_free_slots(rt), 0);
	for (size_t pg = 0; pg < 4 * MIB / T_PAGE; pg++) {
		static const uint8_t zero[T_PAGE];

		if (pg >= 16 && pg % 16 == 3)
			cr_assert(!memcmp(base + pg * T_PAGE, zero, T_PAGE), "page %zu", pg);
		else
			cr_assert(t_page_check(base + pg * T_PAGE, pg, 5), "page %zu is wrong", pg);
	}
	upg_runtime_destroy(rt);
}

Test(advise, dontneed_drops_contents_and_their_store, .timeout = 60)
{
	struct upg_runtime *rt = budget_runtime(1 * MIB);
	uint8_t *base = filled_region(rt, 4 * MIB, 4);
	struct upg_stats st;

	cr_assert_eq(upg_advise(base, 4 * MIB, UPG_ADV_DONTNEED), 0);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.zpool_orig_bytes, 0);
	cr_assert_eq(st.resident_bytes, 0);
	for (size_t pg = 0; pg < 4 * MIB / T_PAGE; pg += 7)
		cr_assert(t_page_is_zero(base + pg * T_PAGE), "page %zu", pg);
	upg_runtime_destroy(rt);
}

Test(advise, bad_advice_and_unmanaged_ranges_are_refused, .timeout = 30)
{
	struct upg_runtime *rt = budget_runtime(1 * MIB);
	struct upg_region *r = t_region_create(rt, 1 * MIB);
	uint8_t *base = upg_region_addr(r);
	void *plain = mmap(NULL, 64 * KIB, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_eq(upg_advise(base + 1, T_PAGE, UPG_ADV_COLD), -EINVAL);
	cr_assert_eq(upg_advise(base, 0, UPG_ADV_COLD), -EINVAL);
	cr_assert_eq(upg_advise(base, T_PAGE, 0), -EINVAL);
	cr_assert_eq(upg_advise(base, T_PAGE, 1u << 9), -EINVAL);
	cr_assert_eq(upg_advise(base, T_PAGE, UPG_ADV_COLD | UPG_ADV_HOT), -EINVAL);
	cr_assert_eq(upg_advise(base, T_PAGE, UPG_ADV_DONTNEED | UPG_ADV_WILLNEED), -EINVAL);
	cr_assert_eq(upg_advise(plain, T_PAGE, UPG_ADV_WILLNEED), -ENOMEM);
	cr_assert_eq(upg_advise(base, 1 * MIB + T_PAGE, UPG_ADV_WILLNEED), -ENOMEM);
	cr_assert_eq(upg_pin(plain, T_PAGE), -ENOMEM);
	cr_assert_eq(upg_pin(base + 8, T_PAGE), -EINVAL);
	cr_assert_eq(upg_advise(base, 1 * MIB, UPG_ADV_WILLNEED | UPG_ADV_HOT), 0);
	upg_region_destroy(r);
	/* Gone with its region. */
	cr_assert_eq(upg_advise(base, T_PAGE, UPG_ADV_WILLNEED), -ENOMEM);
	munmap(plain, 64 * KIB);
	upg_runtime_destroy(rt);
}

T_BOTH_WAYS(advise, pinned_range_stays_resident_under_pressure_and_cold, 120)
{
	struct upg_runtime *rt = budget_runtime(1 * MIB);
	uint8_t *base = filled_region(rt, 4 * MIB, 5);
	struct upg_stats st;

	cr_assert_eq(upg_pin(base, 256 * KIB), 0);
	cr_assert_eq(pages_present(base, 256 * KIB), 256 * KIB / T_PAGE);
	/* Stream the rest through the budget, twice, rewriting it. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t off = 256 * KIB; off < 4 * MIB; off += T_PAGE)
			t_page_fill(base + off, off / T_PAGE, 6 + (unsigned int)pass);
		cr_assert_eq(pages_present(base, 256 * KIB), 256 * KIB / T_PAGE,
			     "a pinned page left in pass %d", pass);
	}
	cr_assert_eq(upg_advise(base, 256 * KIB, UPG_ADV_COLD), 0);
	cr_assert_eq(pages_present(base, 256 * KIB), 256 * KIB / T_PAGE);
	t_stats(rt, &st);
	cr_assert_eq(st.pinned_bytes, 256 * KIB);
	cr_assert_gt(st.pin_skipped, 0);

	cr_assert_eq(upg_unpin(base, 256 * KIB), 0);
	cr_assert_eq(upg_advise(base, 256 * KIB, UPG_ADV_COLD), 0);
	cr_assert_eq(pages_present(base, 256 * KIB), 0);
	t_stats(rt, &st);
	cr_assert_eq(st.pinned_bytes, 0);
	check_pages(base, 0, 256 * KIB, 5);
	for (size_t off = 256 * KIB; off < 4 * MIB; off += T_PAGE)
		cr_assert(t_page_check(base + off, off / T_PAGE, 7), "page %zu", off / T_PAGE);
	upg_runtime_destroy(rt);
}

Test(advise, pin_fills_untouched_memory_and_dontneed_ends_it, .timeout = 60)
{
	struct upg_runtime *rt = budget_runtime(1 * MIB);
	uint8_t *base = upg_region_addr(t_region_create(rt, 1 * MIB));
	struct upg_stats st;

	cr_assert_eq(upg_pin(base, 128 * KIB), 0);
	cr_assert_eq(pages_present(base, 128 * KIB), 128 * KIB / T_PAGE);
	cr_assert(t_page_is_zero(base + 64 * KIB));
	t_stats(rt, &st);
	cr_assert_eq(st.pinned_bytes, 128 * KIB);
	cr_assert_eq(st.faults, 0, "pinning is not faulting");
	cr_assert_eq(upg_advise(base, 128 * KIB, UPG_ADV_DONTNEED), 0);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.pinned_bytes, 0);
	upg_runtime_destroy(rt);
}

Test(advise, pins_past_the_budget_are_refused_and_holes_are_filled, .timeout = 60)
{
	struct upg_runtime *rt = budget_runtime(1 * MIB);
	uint8_t *base = upg_region_addr(t_region_create(rt, 4 * MIB));
	struct upg_stats st;

	/* As mlock(2) past its limit: -ENOMEM, nothing pinned. */
	cr_assert_eq(upg_pin(base, 1 * MIB + T_PAGE), -ENOMEM);
	t_stats(rt, &st);
	cr_assert_eq(st.pinned_bytes, 0);
	cr_assert_eq(upg_pin(base, 512 * KIB), 0);
	cr_assert_eq(upg_pin(base + 1 * MIB, 576 * KIB), -ENOMEM, "with what is pinned already");
	/* A page dropped from a pinned block comes back with the next pin. */
	cr_assert_eq(madvise(base + 68 * KIB, T_PAGE, MADV_DONTNEED), 0);
	cr_assert_eq(pages_present(base + 64 * KIB, 64 * KIB), 64 * KIB / T_PAGE - 1);
	cr_assert_eq(upg_pin(base, 512 * KIB), 0);
	cr_assert_eq(pages_present(base, 512 * KIB), 512 * KIB / T_PAGE);
	cr_assert(t_page_is_zero(base + 68 * KIB));
	upg_runtime_destroy(rt);
}
