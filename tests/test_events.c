/*
 * The application changing managed memory behind the runtime's back:
 * MADV_DONTNEED (with the REMOVE event, and with it forced off), munmap of
 * part of a region, and mremap of a region.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "helpers.h"

#define NR_PAGES	600	/* 2.3 MiB: more than one 2 MiB block */

static char *filled_region(struct upg_runtime *rt, struct upg_region **r)
{
	char *p;

	*r = t_region_create(rt, NR_PAGES * T_PAGE);
	p = upg_region_addr(*r);
	for (size_t pg = 0; pg < NR_PAGES; pg++)
		t_page_fill(p + pg * T_PAGE, pg, 1);
	return p;
}

/*
 * Drop pages [first, first + count): they read zeros, every other page
 * keeps its data, and the dropped ones take new writes again.
 */
static void dontneed_drops_only_the_range(size_t bs, unsigned int features,
					  size_t first, size_t count)
{
	struct upg_runtime *rt = t_runtime_create(bs, features);
	struct upg_region *r;
	char *p = filled_region(rt, &r);
	struct upg_stats st;

	cr_assert_eq(madvise(p + first * T_PAGE, count * T_PAGE, MADV_DONTNEED), 0);
	for (size_t pg = 0; pg < NR_PAGES; pg++) {
		bool dropped = pg >= first && pg < first + count;

		if (dropped)
			cr_assert(t_page_is_zero(p + pg * T_PAGE), "page %zu not dropped", pg);
		else
			cr_assert(t_page_check(p + pg * T_PAGE, pg, 1), "page %zu lost", pg);
	}
	for (size_t pg = first; pg < first + count; pg++)
		t_page_fill(p + pg * T_PAGE, pg, 2);
	for (size_t pg = first; pg < first + count; pg++)
		cr_assert(t_page_check(p + pg * T_PAGE, pg, 2));
	t_stats_settled(rt, &st);
	if (features & UPG_FEAT_EVENT_REMOVE)
		cr_assert_eq(st.events_remove, 1);
	else
		cr_assert_eq(st.events_remove, 0, "REMOVE was forced off");
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

#define DONTNEED_TESTS(suffix, bs)					\
	Test(events, dontneed_part_##suffix, .timeout = 30)		\
	{ dontneed_drops_only_the_range(bs, UPG_FEAT_ALL, 3, 300); }	\
	Test(events, dontneed_part_without_remove_event_##suffix, .timeout = 30) \
	{ dontneed_drops_only_the_range(bs, UPG_FEAT_ALL & ~UPG_FEAT_EVENT_REMOVE, 3, 300); } \
	Test(events, dontneed_one_page_##suffix, .timeout = 30)	\
	{ dontneed_drops_only_the_range(bs, UPG_FEAT_ALL, 17, 1); }	\
	Test(events, dontneed_all_##suffix, .timeout = 30)		\
	{ dontneed_drops_only_the_range(bs, UPG_FEAT_ALL, 0, NR_PAGES); }

DONTNEED_TESTS(4k, 4ul << 10)
DONTNEED_TESTS(64k, 64ul << 10)
DONTNEED_TESTS(2m, 2ul << 20)

/* Map a page of our own at @addr, failing if anything is there. */
static char *map_in_hole(char *addr, size_t len)
{
	char *q = mmap(addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	cr_assert_eq(q, addr, "the hole is free: %s", strerror(errno));
	memset(q, 0x5a, len);
	return q;
}

static void munmap_part_shrinks_region(size_t bs, size_t first, size_t count)
{
	struct upg_runtime *rt = t_runtime_create(bs, UPG_FEAT_ALL);
	struct upg_region *r;
	char *p = filled_region(rt, &r), *q;
	struct upg_stats st;

	cr_assert_eq(munmap(p + first * T_PAGE, count * T_PAGE), 0);
	cr_assert_eq(upg_region_len(r), (NR_PAGES - count) * T_PAGE);
	for (size_t pg = 0; pg < NR_PAGES; pg++)
		if (pg < first || pg >= first + count)
			cr_assert(t_page_check(p + pg * T_PAGE, pg, 1), "page %zu lost", pg);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.events_unmap, 1);
	/* Someone else's mapping in the hole must outlive the region. */
	q = map_in_hole(p + first * T_PAGE, count * T_PAGE);
	upg_region_destroy(r);
	for (size_t i = 0; i < count * T_PAGE; i += T_PAGE)
		cr_assert_eq(q[i], 0x5a);
	munmap(q, count * T_PAGE);
	upg_runtime_destroy(rt);
}

Test(events, munmap_tail_shrinks_region, .timeout = 30)
{
	munmap_part_shrinks_region(64 << 10, NR_PAGES / 2, NR_PAGES - NR_PAGES / 2);
}

Test(events, munmap_middle_leaves_a_hole, .timeout = 30)
{
	munmap_part_shrinks_region(64 << 10, 100, 77);
}

Test(events, munmap_head_part_of_a_block, .timeout = 30)
{
	munmap_part_shrinks_region(2 << 20, 0, 5);
}

Test(events, munmapped_region_destroys_cleanly, .timeout = 30)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *r;
	char *p = filled_region(rt, &r);

	cr_assert_eq(munmap(p, NR_PAGES * T_PAGE), 0);
	cr_assert_eq(upg_region_len(r), 0);
	map_in_hole(p, T_PAGE);
	upg_region_destroy(r);
	cr_assert_eq(p[0], 0x5a);
	upg_runtime_destroy(rt);
}

/*
 * mremap moves the data; the moved memory leaves upager (the region
 * shrinks to nothing) and keeps working as plain anonymous memory.
 */
Test(events, mremap_moves_data_out_of_the_region, .timeout = 30)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	size_t len = NR_PAGES * T_PAGE;
	struct upg_region *r;
	char *p, *q, *target;
	struct upg_stats st;

	r = t_region_create(rt, len);
	p = upg_region_addr(r);
	/* Touch every other page so the move carries holes too. */
	for (size_t pg = 0; pg < NR_PAGES; pg += 2)
		t_page_fill(p + pg * T_PAGE, pg, 3);
	target = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	cr_assert_eq(q, target);
	for (size_t pg = 0; pg < NR_PAGES; pg++) {
		if (pg % 2 == 0)
			cr_assert(t_page_check(q + pg * T_PAGE, pg, 3), "page %zu lost", pg);
		else
			cr_assert(t_page_is_zero(q + pg * T_PAGE));
	}
	q[T_PAGE + 1] = 9;
	cr_assert_eq(q[T_PAGE + 1], 9);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.events_remap, 1);
	cr_assert_eq(upg_region_len(r), 0, "len %zu unmap %lu", upg_region_len(r), (unsigned long)st.events_unmap);
	upg_region_destroy(r);
	cr_assert(t_page_check(q, 0, 3), "destroy left the moved memory alone");
	munmap(q, len);
	upg_runtime_destroy(rt);
}

/*
 * The application unmaps a region it has not destroyed; the next region
 * may get the same addresses. Its faults must be its own, and destroying
 * the old region must leave the new one mapped.
 */
Test(events, new_region_at_an_unmapped_regions_address, .timeout = 30)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *old, *new = NULL;
	char *p = filled_region(rt, &old), *q;
	struct upg_stats st;

	cr_assert_eq(munmap(p, NR_PAGES * T_PAGE), 0);
	/* Keep trying until the kernel hands out the old address again. */
	for (int i = 0; i < 8 && !new; i++) {
		new = t_region_create(rt, NR_PAGES * T_PAGE);
		if (upg_region_addr(new) != p) {
			upg_region_destroy(new);
			new = NULL;
		}
	}
	if (!new)
		cr_skip_test("the kernel did not reuse the address");
	q = upg_region_addr(new);
	for (size_t pg = 0; pg < NR_PAGES; pg++)
		cr_assert(t_page_is_zero(q + pg * T_PAGE), "old data leaked into page %zu", pg);
	t_page_fill(q, 0, 4);
	upg_region_destroy(old);
	cr_assert(t_page_check(q, 0, 4), "destroying the old region touched the new");
	t_stats(rt, &st);
	cr_assert_eq(st.regions, 1);
	cr_assert_eq(st.faults_unknown, 0);
	upg_runtime_destroy(rt);
}

Test(events, runtime_destroy_frees_fully_unmapped_regions, .timeout = 30)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *r;
	char *p = filled_region(rt, &r);
	struct upg_stats st;

	cr_assert_eq(munmap(p, NR_PAGES * T_PAGE), 0);
	t_stats(rt, &st);
	cr_assert_eq(st.regions, 1);
	cr_assert_eq(st.mapped_bytes, 0);
	upg_runtime_destroy(rt);	/* valgrind/ASan: no leak of r */
}
