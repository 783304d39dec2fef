/*
 * The pager (issue 4): regions larger than their budget keep every byte
 * through eviction to the zpool and back, under threads, with faults that
 * meet blocks being evicted, kernel-mode reads into compressed memory,
 * MADV_DONTNEED and munmap of evicted memory, and a resident size that
 * stays under the budget. Suite copyout runs the same without UFFDIO_MOVE
 * (blocks copied out) and forces each phase of a copy-out to meet a
 * write, a read, MADV_DONTNEED, munmap and mremap.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "readahead.h"
#include "testing.h"

enum kind { K_TEXT, K_RANDOM, K_ZERO, K_MIXED };

/*
 * Page @pg at version @v: its bytes are a function of both, so a page
 * that comes back stale, shifted or from another page shows. text draws
 * words from a small vocabulary (LZ4 compresses it ~2-3x); zero pages and
 * one-word pages exercise the zpool's same-filled path.
 */
static void gen_page(uint8_t *p, size_t pg, uint32_t v, enum kind k)
{
	static const char *const words[] = { "page ", "fault ", "budget ", "the ",
		"evict ", "clock ", "resident ", "zpool ", "of ", "and ", "swap ",
		"memory ", "kernel ", "user ", "space " };
	uint64_t seed = t_mix(pg * 1000003ull + v);

	if (k == K_MIXED)
		k = (enum kind)(seed % 4 == 3 ? K_TEXT : seed % 4);
	switch (k) {
	case K_ZERO:
		if (v % 2) {	/* one repeated word */
			for (size_t i = 0; i < T_PAGE; i += 8)
				memcpy(p + i, &seed, 8);
		} else {
			memset(p, 0, T_PAGE);
		}
		return;
	case K_RANDOM:
		for (size_t i = 0; i < T_PAGE; i += 8) {
			uint64_t w = t_mix(seed + i);

			memcpy(p + i, &w, 8);
		}
		return;
	default:
		for (size_t i = 0; i < T_PAGE;) {
			const char *w = words[t_mix(seed + i) % 15];
			size_t n = strlen(w);

			n = n > T_PAGE - i ? T_PAGE - i : n;
			memcpy(p + i, w, n);
			i += n;
		}
		memcpy(p, &pg, sizeof(pg));	/* every page differs */
		memcpy(p + 8, &v, sizeof(v));
		return;
	}
}

static bool page_ok(const uint8_t *p, size_t pg, uint32_t v, enum kind k)
{
	uint8_t want[T_PAGE];

	gen_page(want, pg, v, k);
	return memcmp(p, want, T_PAGE) == 0;
}

static enum upg_fault_mode pager_fault_mode = UPG_FAULT_POLL;

static struct upg_runtime *pager_runtime(size_t bs, size_t budget)
{
	struct upg_options o;

	t_options_default(&o);
	o.block_size = bs;
	o.budget = budget;
	o.features = t_pager_features;
	o.fault_mode = pager_fault_mode;
	return t_runtime_create_opts(&o);
}

/* A 64 KiB-block runtime and a region of @len written at version @v. */
static uint8_t *written_region(size_t budget, size_t len, uint32_t v, enum kind k,
			       struct upg_runtime **rt, struct upg_region **r)
{
	uint8_t *base;

	*rt = pager_runtime(64ul << 10, budget);
	*r = t_region_create(*rt, len);
	base = upg_region_addr(*r);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		gen_page(base + pg * T_PAGE, pg, v, k);
	return base;
}

struct worker {
	pthread_t thread;
	uint8_t *base;
	size_t nr_pages;
	uint32_t *version;	/* per page, owned by one worker */
	unsigned int id, nr;
	uint64_t ops;
	enum kind kind;
	size_t bad;
};

/*
 * Random reads and writes of the pages this worker owns (pg % nr == id):
 * 7 in 8 on a hot eighth of the region (it fits the budget), the rest
 * anywhere, so blocks go out, come back and go out again.
 */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t x = t_mix(w->id + 1);
	size_t mine = w->nr_pages / w->nr;

	for (uint64_t i = 0; i < w->ops; i++) {
		size_t pg;

		x = t_mix(x + i);
		pg = ((x >> 8) % 8 ? x % (mine / 8) : x % mine) * w->nr + w->id;
		if ((x >> 32) % 2) {
			gen_page(w->base + pg * T_PAGE, pg, ++w->version[pg], w->kind);
		} else if (!page_ok(w->base + pg * T_PAGE, pg, w->version[pg], w->kind)) {
			w->bad++;
		}
	}
	return NULL;
}

/*
 * A region 4x its budget, @threads threads, @ops accesses in all, then
 * every page checked. Returns the stats.
 */
static void integrity(size_t bs, enum kind k, unsigned int threads, uint64_t ops,
		      struct upg_stats *st)
{
	size_t budget = 8ul << 20, len = 4 * budget, nr_pages = len / T_PAGE;
	struct upg_runtime *rt = pager_runtime(bs, budget);
	struct upg_region *r = t_region_create(rt, len);
	uint8_t *base = upg_region_addr(r);
	uint32_t *version = calloc(nr_pages, sizeof(*version));
	struct worker w[8];

	cr_assert_not_null(version);
	for (size_t pg = 0; pg < nr_pages; pg++)
		gen_page(base + pg * T_PAGE, pg, 0, k);
	for (unsigned int i = 0; i < threads; i++) {
		w[i] = (struct worker){ .base = base, .nr_pages = nr_pages,
			.version = version, .id = i, .nr = threads,
			.ops = ops / threads, .kind = k };
		pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
	}
	for (unsigned int i = 0; i < threads; i++) {
		pthread_join(w[i].thread, NULL);
		cr_assert_eq(w[i].bad, 0, "worker %u read %zu wrong pages", i, w[i].bad);
	}
	for (size_t pg = 0; pg < nr_pages; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, version[pg], k),
			  "page %zu (version %u) wrong at the end", pg, version[pg]);
	t_stats_settled(rt, st);
	cr_assert_gt(st->evictions, 0, "nothing was evicted");
	if (!(t_pager_features & UPG_FEAT_MOVE))
		cr_assert_gt(st->copyouts, 0, "nothing was copied out");
	cr_assert_gt(st->swapins, 0, "nothing came back from the zpool");
	cr_assert_eq(st->swapin_failed, 0);
	free(version);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

T_BOTH_WAYS(pager, text_pages_survive_eviction_under_four_threads, 240)
{
	struct upg_stats st;

	integrity(64ul << 10, K_TEXT, 4, 1000000, &st);
	/*
	 * Text went through the zpool. With a swap store (suite swapfile)
	 * its small share may be empty at the end, all written back.
	 */
	cr_assert(st.zpool_stored_bytes > 0 || st.swap_writeback_pages > 0,
		  "no text page was ever compressed");
}

Test(pager, random_pages_survive_eviction_4k_blocks, .timeout = 240)
{
	struct upg_stats st;

	integrity(4ul << 10, K_RANDOM, 4, 1000000, &st);
}

Test(pager, zero_and_one_word_pages_survive_eviction, .timeout = 240)
{
	struct upg_stats st;

	integrity(64ul << 10, K_ZERO, 2, 1000000, &st);
}

/*
 * SIGBUS mode: the faulting thread resolves its own fault, and cannot
 * tell a write to a write-protected page from a missing one.
 */
Test(copyout, text_pages_survive_eviction_in_sigbus_mode, .timeout = 240,
     .init = t_copy_out_mode)
{
	struct upg_stats st;

	pager_fault_mode = UPG_FAULT_SIGBUS;
	integrity(T_PAGE, K_TEXT, 3, 100000, &st);
}

T_BOTH_WAYS(pager, mixed_pages_survive_eviction_2m_blocks, 240)
{
	struct upg_stats st;

	/* A miss moves 2 MiB: fewer operations keep it to seconds. */
	integrity(2ul << 20, K_MIXED, 3, 20000, &st);
}

/* Rss of the mapping that starts at @addr, from /proc/self/smaps, bytes. */
static size_t mapping_rss(const void *addr)
{
	char line[256], want[32];
	FILE *f = fopen("/proc/self/smaps", "r");
	bool in = false;
	size_t kb = 0;

	cr_assert_not_null(f);
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)addr);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ':') && !strncmp(line, want, strlen(want)))
			in = true;
		else if (in && !strncmp(line, "Rss:", 4)) {
			kb = strtoul(line + 4, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb << 10;
}

T_BOTH_WAYS(pager, resident_memory_stays_under_the_budget, 120)
{
	size_t bs = 64ul << 10, budget = 16ul << 20, len = 64ul << 20, peak = 0;
	struct upg_runtime *rt = pager_runtime(bs, budget);
	struct upg_region *r = t_region_create(rt, len);
	uint8_t *base = upg_region_addr(r);
	struct upg_stats st;

	for (int pass = 0; pass < 3; pass++) {
		for (size_t pg = 0; pg < len / T_PAGE; pg++) {
			gen_page(base + pg * T_PAGE, pg, (uint32_t)pass, K_TEXT);
			if (pg % 256 == 0) {
				size_t rss = mapping_rss(base);

				peak = rss > peak ? rss : peak;
			}
		}
	}
	/* The fill in flight on each reader may pass the budget by a block. */
	cr_assert_leq(peak, budget + 4 * bs, "region Rss peaked at %zu KiB, budget %zu KiB",
		      peak >> 10, budget >> 10);
	t_stats_settled(rt, &st);
	cr_assert_leq(st.resident_bytes, budget);
	cr_assert_eq(st.budget_bytes, budget);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 2, K_TEXT), "page %zu", pg);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

struct toucher {
	pthread_t thread;
	uint8_t *base;
	size_t len;
	_Atomic bool stop;
};

/*
 * Write pages of the region's second half over and over: evictions. Each
 * page is made aside and copied whole: gen_page() in place writes text
 * over the header before the header again, and a read of the page then
 * (the victim block may be one of these) saw it half-written.
 */
static void *touch_main(void *arg)
{
	struct toucher *t = arg;
	uint8_t page[T_PAGE];

	for (size_t off = t->len / 2; !t->stop; off = off + T_PAGE < t->len ? off + T_PAGE : t->len / 2) {
		gen_page(page, off / T_PAGE, 1, K_TEXT);
		memcpy(t->base + off, page, T_PAGE);
	}
	return NULL;
}

/*
 * Hold an eviction 300 ms after it claims its block, and touch that very
 * block meanwhile: the fault must wait for the eviction, then bring the
 * block back with its data; none lost, none doubled.
 */
T_BOTH_WAYS(pager, fault_on_a_block_being_evicted_waits_and_sees_its_data, 120)
{
	size_t bs = 64ul << 10, budget = 8 * bs, len = 32 * bs, first;
	struct upg_options o;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base;
	struct toucher t;

	/*
	 * Three readers: the sleeping eviction may hold one (direct reclaim)
	 * and the toucher's fault another; the third serves our read.
	 */
	t_options_default(&o);
	o.block_size = bs;
	o.features = t_pager_features;
	o.budget = budget;
	o.fault_threads = 3;
	rt = t_runtime_create_opts(&o);
	r = t_region_create(rt, len);
	base = upg_region_addr(r);
	t = (struct toucher){ .base = base, .len = len };
	struct upg_stats st;
	uintptr_t victim;
	bool met = false;

	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		gen_page(base + pg * T_PAGE, pg, 1, K_TEXT);
	pthread_create(&t.thread, NULL, touch_main, &t);
	/*
	 * A fault thread may be tied up too (the toucher's fill waiting for
	 * room) and serve our read only after the eviction: try again, a
	 * bounded number of times, until the read meets one.
	 */
	for (int attempt = 0; attempt < 10 && !met; attempt++) {
		uint64_t waited_before;

		t_stats(rt, &st);
		waited_before = st.fill_waited;
		upg_test_evict_delay_us = 300000;
		while (!(victim = upg_test_evicting_addr))
			usleep(1000);
		upg_test_evict_delay_us = 0;
		/* The block is being compressed: this read faults and must wait. */
		first = (victim - (uintptr_t)base) / T_PAGE;
		for (size_t pg = first; pg < first + bs / T_PAGE; pg++)
			cr_assert(page_ok(base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
		t_stats_settled(rt, &st);
		met = st.fill_waited > waited_before;
	}
	t.stop = true;
	pthread_join(t.thread, NULL);
	cr_assert(met, "no read met the eviction in 10 tries");
	for (size_t pg = 0; pg < len / 2 / T_PAGE; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/* Push every block of [base, len) out to the zpool by touching another region. */
static void push_out(struct upg_runtime *rt, size_t budget)
{
	struct upg_region *other = t_region_create(rt, 2 * budget);
	uint8_t *o = upg_region_addr(other);

	for (size_t off = 0; off < 2 * budget; off += T_PAGE)
		o[off] = 1;
	upg_region_destroy(other);
}

T_BOTH_WAYS(pager, kernel_reads_compressed_memory_through_write2, 60)
{
	size_t budget = 4ul << 20;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = written_region(budget, budget, 3, K_TEXT, &rt, &r), back[T_PAGE];
	struct upg_stats before, after;
	int fds[2];

	push_out(rt, budget);
	t_stats_settled(rt, &before);
	cr_assert_gt(before.evictions, 0);
	cr_assert_eq(pipe(fds), 0);
	/* The kernel copies from the region: a kernel-mode fault on it. */
	cr_assert_eq(write(fds[1], base + 7 * T_PAGE, T_PAGE), (ssize_t)T_PAGE);
	cr_assert_eq(read(fds[0], back, T_PAGE), (ssize_t)T_PAGE);
	cr_assert(page_ok(back, 7, 3, K_TEXT));
	t_stats_settled(rt, &after);
	cr_assert_gt(after.swapins + after.reactivations, before.swapins + before.reactivations);
	close(fds[0]);
	close(fds[1]);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

T_BOTH_WAYS(pager, dontneed_of_evicted_memory_reads_zeros, 60)
{
	size_t bs = 64ul << 10, budget = 2ul << 20, len = 2ul << 20;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = written_region(budget, len, 5, K_RANDOM, &rt, &r);
	struct upg_stats st;

	push_out(rt, budget);
	t_stats_settled(rt, &st);
	cr_assert_gt(st.evictions, 0);
	/* Whole blocks 0-1, and part of block 4 (pages 66-67 of 64-79). */
	cr_assert_eq(madvise(base, 2 * bs, MADV_DONTNEED), 0);
	cr_assert_eq(madvise(base + 66 * T_PAGE, 2 * T_PAGE, MADV_DONTNEED), 0);
	for (size_t pg = 0; pg < len / T_PAGE; pg++) {
		bool dropped = pg < 32 || pg == 66 || pg == 67;

		if (dropped)
			cr_assert(t_page_is_zero(base + pg * T_PAGE), "page %zu not zero", pg);
		else
			cr_assert(page_ok(base + pg * T_PAGE, pg, 5, K_RANDOM), "page %zu", pg);
	}
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

T_BOTH_WAYS(pager, unmapped_and_destroyed_regions_give_their_store_back, 60)
{
	size_t len = 8ul << 20;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = written_region(2ul << 20, len, 9, K_TEXT, &rt, &r);
	struct upg_stats st;

	t_stats_settled(rt, &st);
	cr_assert_gt(st.zpool_orig_bytes + st.swap_pages, 0);
	cr_assert_eq(munmap(base + len / 2, len / 2), 0);
	for (size_t pg = 0; pg < len / 2 / T_PAGE; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 9, K_TEXT), "page %zu", pg);
	upg_region_destroy(r);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.zpool_orig_bytes, 0, "the zpool still holds %lu bytes",
		     (unsigned long)st.zpool_orig_bytes);
	cr_assert_eq(st.swap_pages, 0, "the swap store still holds %lu pages",
		     (unsigned long)st.swap_pages);
	cr_assert_eq(st.resident_bytes, 0);
	cr_assert_eq(st.inactive_bytes, 0);
	upg_runtime_destroy(rt);
}

Test(pager, budget_below_one_block_is_refused, .timeout = 30)
{
	struct upg_options o;
	struct upg_runtime *rt = NULL;

	t_options_default(&o);
	o.block_size = 64ul << 10;
	o.budget = 32ul << 10;
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);
	cr_assert_null(rt);
	o.budget = 1ul << 20;
	o.low_watermark = 2ul << 20;
	cr_assert_eq(upg_runtime_create(&o, &rt), -EINVAL);
}

/* Neither UFFDIO_MOVE nor write-protect faults: no way to move a page out. */
Test(pager, budget_without_move_or_wp_is_refused_with_eopnotsupp, .timeout = 30)
{
	struct upg_options o;
	struct upg_runtime *rt = NULL;

	t_options_default(&o);
	o.budget = 1ul << 20;
	o.features &= ~(UPG_FEAT_MOVE | UPG_FEAT_WP);
	t_log_capture();
	cr_assert_eq(upg_runtime_create(&o, &rt), -EOPNOTSUPP);
	cr_assert(t_log_contains("UFFDIO_MOVE"));
}

/* mremap moves a region's pages; its evicted blocks must follow them. */
T_BOTH_WAYS(pager, mremap_carries_evicted_blocks_to_the_new_address, 60)
{
	size_t budget = 2ul << 20, len = 8ul << 20;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = written_region(budget, len, 4, K_TEXT, &rt, &r), *moved;
	struct upg_stats st;

	t_stats_settled(rt, &st);
	cr_assert_gt(st.evictions, 0);
	/* A spot far away, so the kernel must move the mapping. */
	moved = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(moved, MAP_FAILED);
	moved = mremap(base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, moved + len / 2);
	cr_assert_neq(moved, MAP_FAILED, "mremap: %s", strerror(errno));
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		cr_assert(page_ok(moved + pg * T_PAGE, pg, 4, K_TEXT), "page %zu lost in the move", pg);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.remap_adopted, 1);
	/* It is still managed: pushed out and read back again. */
	push_out(rt, budget);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		cr_assert(page_ok(moved + pg * T_PAGE, pg, 4, K_TEXT), "page %zu after", pg);
	munmap(moved, len);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/* A block evicted whole, then cut in two by a munmap in its middle. */
T_BOTH_WAYS(pager, munmap_inside_an_evicted_block_keeps_both_sides, 60)
{
	size_t budget = 1ul << 20, len = 4ul << 20, bs = 64ul << 10;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = written_region(budget, len, 6, K_TEXT, &rt, &r);

	push_out(rt, budget);
	/* Pages 4-7 of block 0 go; 0-3 and 8-15 stay. */
	cr_assert_eq(munmap(base + 4 * T_PAGE, 4 * T_PAGE), 0);
	for (size_t pg = 0; pg < bs / T_PAGE; pg++)
		if (pg < 4 || pg >= 8)
			cr_assert(page_ok(base + pg * T_PAGE, pg, 6, K_TEXT), "page %zu", pg);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/*
 * fork(): the child gets a full copy (evicted blocks are brought back
 * before fork), and the parent keeps its data too.
 */
T_BOTH_WAYS(pager, fork_child_and_parent_both_see_evicted_data, 60)
{
	size_t budget = 2ul << 20, len = 8ul << 20;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = written_region(budget, len, 8, K_TEXT, &rt, &r);
	struct upg_stats st;
	int status;
	pid_t pid;

	t_stats_settled(rt, &st);
	cr_assert_gt(st.evictions, 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		for (size_t pg = 0; pg < len / T_PAGE; pg++)
			if (!page_ok(base + pg * T_PAGE, pg, 8, K_TEXT))
				_exit(10);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child saw wrong data (status %d)", status);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 8, K_TEXT), "parent page %zu", pg);
	t_stats_settled(rt, &st);
	cr_assert_gt(st.fork_brought_back, 0);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/* A part of a region, cut mid-block at both ends, moved elsewhere. */
T_BOTH_WAYS(pager, mremap_of_part_of_a_region_keeps_both_parts, 60)
{
	size_t budget = 2ul << 20, len = 8ul << 20, first = 21, nr = 300;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = written_region(budget, len, 7, K_RANDOM, &rt, &r), *moved;
	struct upg_stats st;

	push_out(rt, budget);
	moved = mmap(NULL, nr * T_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(moved, MAP_FAILED);
	moved = mremap(base + first * T_PAGE, nr * T_PAGE, nr * T_PAGE,
		       MREMAP_MAYMOVE | MREMAP_FIXED, moved);
	cr_assert_neq(moved, MAP_FAILED, "mremap: %s", strerror(errno));
	for (size_t pg = 0; pg < nr; pg++)
		cr_assert(page_ok(moved + pg * T_PAGE, first + pg, 7, K_RANDOM), "moved page %zu", pg);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		if (pg < first || pg >= first + nr)
			cr_assert(page_ok(base + pg * T_PAGE, pg, 7, K_RANDOM), "page %zu", pg);
	t_stats_settled(rt, &st);
	cr_assert_gt(st.remap_shared_blocks, 0);
	munmap(moved, nr * T_PAGE);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/*
 * A compressed page whose bytes no longer decode is never handed back:
 * the access gets SIGBUS (UFFDIO_POISON), the other pages still read
 * right.
 */
/* @features: what the runtime may use (POISON, or the signal fallback). */
static void undecodable_page_faults_with_sigbus(unsigned int features)
{
	size_t budget = 1ul << 20, len = 4ul << 20;
	struct upg_options o;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base;
	struct upg_stats st;

	t_options_default(&o);
	o.block_size = 4ul << 10;
	o.budget = budget;
	o.features = features;
	rt = t_runtime_create_opts(&o);
	r = t_region_create(rt, len);
	base = upg_region_addr(r);
	if ((features & UPG_FEAT_POISON) && !(upg_runtime_features(rt) & UPG_FEAT_POISON))
		cr_skip_test("no UFFDIO_POISON here");
	if (!(upg_runtime_features(rt) & (UPG_FEAT_POISON | UPG_FEAT_THREAD_ID)))
		cr_skip_test("neither UFFDIO_POISON nor the faulting thread's id here");
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		gen_page(base + pg * T_PAGE, pg, 2, K_TEXT);
	push_out(rt, budget);
	cr_assert_eq(upg_test_corrupt_block(r, 3), 0, "block 3 is not compressed");
	cr_assert(t_read_faults(base + 3 * T_PAGE + 100),
		  "read a page that cannot be decoded without SIGBUS");
	for (size_t pg = 4; pg < 64; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 2, K_TEXT), "page %zu", pg);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.swapin_failed, 1);
	cr_assert_eq(st.swapin_sigbus_sent, (upg_runtime_features(rt) & UPG_FEAT_POISON) ? 0 : 1);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

Test(pager, undecodable_page_gives_sigbus_never_wrong_data, .timeout = 60)
{
	undecodable_page_faults_with_sigbus(UPG_FEAT_ALL);
}

/* Review: upg_pin looped for ever on a block that does not decode. */
Test(pager, pin_of_an_undecodable_block_fails_with_eio, .timeout = 60)
{
	size_t budget = 1ul << 20, len = 4ul << 20;
	struct upg_runtime *rt = pager_runtime(4ul << 10, budget);
	struct upg_region *r = t_region_create(rt, len);
	uint8_t *base = upg_region_addr(r);

	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		gen_page(base + pg * T_PAGE, pg, 2, K_TEXT);
	push_out(rt, budget);
	cr_assert_eq(upg_test_corrupt_block(r, 5), 0, "block 5 is not compressed");
	cr_assert_eq(upg_pin(base + 4 * T_PAGE, 2 * T_PAGE), -EIO);
	cr_assert_eq(upg_unpin(base + 4 * T_PAGE, 2 * T_PAGE), 0);
	upg_runtime_destroy(rt);
}

/* Before 6.6 there is no UFFDIO_POISON: the faulting thread is signalled. */
Test(pager, undecodable_page_gives_sigbus_without_poison_too, .timeout = 60)
{
	undecodable_page_faults_with_sigbus(UPG_FEAT_ALL & ~UPG_FEAT_POISON);
}

/*
 * Readahead: a sequential read of compressed memory brings the stream's
 * next blocks in with each fault, so it takes far fewer faults than
 * blocks; a scattered read starts no stream.
 */
T_BOTH_WAYS(pager, sequential_stream_reads_ahead_and_a_scattered_one_does_not, 60)
{
	struct upg_options o;
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base;
	size_t nr = (2ul << 20) / T_PAGE;
	struct upg_stats a, b;

	/*
	 * Readahead only takes free room: with the evictor stopping at 40 %
	 * of the budget the 2 MiB read fits in what it left, so a slow
	 * evictor (a loaded machine) cannot cut the windows short, and the
	 * read does not start it again.
	 */
	t_options_default(&o);
	o.block_size = T_PAGE;
	o.budget = 4ul << 20;
	o.low_watermark = UPG_PERCENT(40);
	o.features = t_pager_features;
	rt = t_runtime_create_opts(&o);
	r = t_region_create(rt, 16ul << 20);
	base = upg_region_addr(r);
	for (size_t pg = 0; pg < (16ul << 20) / T_PAGE; pg++)
		gen_page(base + pg * T_PAGE, pg, 1, K_TEXT);
	/* The first 2 MiB went to the zpool long ago: read them in order. */
	t_stats_settled(rt, &a);
	for (size_t pg = 0; pg < nr; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
	t_stats_settled(rt, &b);
	cr_assert_geq(b.readahead_blocks - a.readahead_blocks, nr / 2);
	/* A fill refused for an unread event makes the thread fault again. */
	cr_assert_leq(b.faults - a.faults - (b.fill_retried - a.fill_retried), nr / 8,
		      "%llu faults (%llu of them refused fills) for %zu pages",
		      (unsigned long long)(b.faults - a.faults),
		      (unsigned long long)(b.fill_retried - a.fill_retried), nr);
	cr_assert_gt(b.readahead_hits, a.readahead_hits);
	/* Every 61st page of the next 2 MiB, backwards: no stream there. */
	a = b;
	for (size_t i = 0; i < nr / 61; i++) {
		size_t pg = 2 * nr - 1 - i * 61;

		cr_assert(page_ok(base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
	}
	t_stats_settled(rt, &b);
	cr_assert_eq(b.readahead_blocks, a.readahead_blocks);
	upg_runtime_destroy(rt);
}

/* A strided stream (every 4th page) reads ahead too, one stride apart. */
Test(pager, strided_stream_reads_ahead, .timeout = 60)
{
	struct upg_runtime *rt = pager_runtime(T_PAGE, 4ul << 20);
	struct upg_region *r = t_region_create(rt, 16ul << 20);
	uint8_t *base = upg_region_addr(r);
	size_t nr = (4ul << 20) / T_PAGE, touched = 0;
	struct upg_stats a, b;

	for (size_t pg = 0; pg < (16ul << 20) / T_PAGE; pg++)
		gen_page(base + pg * T_PAGE, pg, 3, K_TEXT);
	t_stats_settled(rt, &a);
	for (size_t pg = 0; pg < nr; pg += 4, touched++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 3, K_TEXT), "page %zu", pg);
	t_stats_settled(rt, &b);
	cr_assert_geq(b.readahead_blocks - a.readahead_blocks, touched / 2);
	cr_assert_leq(b.faults - a.faults, touched / 4, "%llu faults for %zu pages",
		      (unsigned long long)(b.faults - a.faults), touched);
	/*
	 * Read ahead one stride apart: the pages between were not brought
	 * back (that would be 4 pages a touch). The last window may reach
	 * past the last page touched, by up to a window's blocks.
	 */
	cr_assert_leq(b.swapin_pages - a.swapin_pages, touched + UPG_RA_MAX_BYTES / T_PAGE,
		      "%llu pages for %zu touched",
		      (unsigned long long)(b.swapin_pages - a.swapin_pages), touched);
	upg_runtime_destroy(rt);
}

/*
 * While any event of the userfaultfd is unread the kernel refuses every
 * COPY and MOVE into it (-EAGAIN), whatever the range. A swap-in or a
 * move back refused so must keep the block's data and let the thread
 * fault again; it used to free the handle (or the slot) and leave zeros.
 * Found in review: 6,600 of 8,192 pages read zeros.
 */
static volatile int stop_dontneed;

static void *dontneed_loop(void *arg)
{
	volatile uint8_t *p = arg;

	while (!stop_dontneed) {
		p[0] = 1;
		madvise((void *)p, T_PAGE, MADV_DONTNEED);
	}
	return NULL;
}

T_BOTH_WAYS(pager, swap_in_refused_by_an_unread_event_keeps_the_data, 120)
{
	/* Blocks of 16 pages: a refused fill leaves part of a block mapped. */
	struct upg_runtime *rt = pager_runtime(64ul << 10, 64ul << 20);
	struct upg_region *r = t_region_create(rt, 8ul << 20);
	struct upg_region *other = t_region_create(rt, 1ul << 20);
	uint8_t *base = upg_region_addr(r);
	size_t nr = (8ul << 20) / T_PAGE, bad = 0;
	struct upg_stats st;
	pthread_t t;

	for (size_t pg = 0; pg < nr; pg++)
		gen_page(base + pg * T_PAGE, pg, 4, K_TEXT);
	pthread_create(&t, NULL, dontneed_loop, upg_region_addr(other));
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(upg_advise(base, 8ul << 20, UPG_ADV_COLD), 0);
		for (size_t pg = 0; pg < nr; pg++)
			bad += !page_ok(base + pg * T_PAGE, pg, 4, K_TEXT);
	}
	stop_dontneed = 1;
	pthread_join(t, NULL);
	t_stats_settled(rt, &st);
	cr_assert_eq(bad, 0, "%zu pages wrong (%llu refused fills)", bad,
		     (unsigned long long)st.fill_retried);
	/*
	 * Some came back from the zpool: how many depends on how many
	 * copy-outs the events let through (none are retried), so on load.
	 */
	cr_assert_gt(st.swapins, 0);
	upg_runtime_destroy(rt);
}

/*
 * Hole runs (pager.c, claim_hole): with UFFDIO_MOVE the clock moves cold
 * blocks out in runs that span the blocks between them with no page
 * mapped. Every other block of region a is evicted by COLD, then region b
 * makes the pressure that sends the rest out: their runs must take the
 * holes, and the holes must come back as they were (compressed, their
 * data intact), as must the blocks that moved.
 */
Test(pager, the_clock_moves_runs_across_unmapped_blocks, .timeout = 60)
{
	size_t bs = T_PAGE, len = 2ul << 20, nr = len / bs;
	struct upg_runtime *rt = pager_runtime(bs, 4ul << 20);
	struct upg_region *ra = t_region_create(rt, len), *rb;
	uint8_t *a = upg_region_addr(ra), *b;
	struct upg_stats st;

	for (size_t pg = 0; pg < nr; pg++)
		gen_page(a + pg * T_PAGE, pg, 1, K_TEXT);
	for (size_t blk = 1; blk < nr; blk += 2)
		cr_assert_eq(upg_advise(a + blk * bs, bs, UPG_ADV_COLD), 0);
	rb = t_region_create(rt, 4 * len);
	b = upg_region_addr(rb);
	for (int pass = 0; pass < 2; pass++)
		for (size_t pg = 0; pg < 4 * nr; pg++)
			gen_page(b + pg * T_PAGE, pg, pass, K_TEXT);
	t_stats_settled(rt, &st);
	cr_assert_gt(st.move_run_holes, nr / 8, "%llu holes in %llu runs",
		     (unsigned long long)st.move_run_holes, (unsigned long long)st.move_runs);
	for (size_t pg = 0; pg < nr; pg++)
		cr_assert(page_ok(a + pg * T_PAGE, pg, 1, K_TEXT), "page %zu of a", pg);
	for (size_t pg = 0; pg < 4 * nr; pg++)
		cr_assert(page_ok(b + pg * T_PAGE, pg, 1, K_TEXT), "page %zu of b", pg);
	upg_region_destroy(rb);
	upg_region_destroy(ra);
	upg_runtime_destroy(rt);
}

/*
 * zpool compaction (pager.c, compact_zpool): a region compressed whole,
 * then three blocks in four brought back at random, leaves the zpool's
 * arenas mostly freed slots. The evictor drains them: its memory goes
 * down while what it holds stays, and every page, resident or still
 * compressed, reads back right. Both block sizes: a 64 KiB block is a
 * multi-page record, moved with its pages.
 */
static void compaction(size_t bs)
{
	size_t len = 64ul << 20, nr = len / bs, per = bs / T_PAGE;
	struct upg_runtime *rt = pager_runtime(bs, len);
	struct upg_region *r = t_region_create(rt, len);
	uint8_t *base = upg_region_addr(r);
	uint64_t seed = 12345;
	struct upg_stats a, b;

	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		gen_page(base + pg * T_PAGE, pg, 1, K_TEXT);
	cr_assert_eq(upg_advise(base, len, UPG_ADV_COLD), 0);
	/* Backwards: no stream, so no readahead and no clean copies. */
	for (size_t blk = nr; blk-- > 0;) {
		seed = t_mix(seed);
		if (seed % 4)
			cr_assert(page_ok(base + blk * bs, blk * per, 1, K_TEXT), "page %zu",
				  blk * per);
	}
	/* The evictor looks at least every 100 ms when it has nothing to do. */
	t_stats_settled(rt, &a);
	for (int i = 0; i < 300 && a.zpool_bytes >= a.zpool_stored_bytes * 3 / 2; i++) {
		usleep(10000);
		t_stats(rt, &a);
	}
	t_stats_settled(rt, &b);
	cr_assert_gt(b.zpool_compactions, 0, "no compaction");
	cr_assert_gt(b.zpool_relocated, 0);
	/* About a quarter of the region is still stored, in about a quarter of the memory. */
	cr_assert_lt(b.zpool_bytes, b.zpool_stored_bytes * 3 / 2, "%zu bytes for %llu stored",
		     b.zpool_bytes, (unsigned long long)b.zpool_stored_bytes);
	cr_assert_gt(b.zpool_orig_bytes, len / 8);
	for (size_t pg = 0; pg < len / T_PAGE; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

Test(pager, the_zpool_gives_back_freed_slots_4k_blocks, .timeout = 60)
{
	compaction(T_PAGE);
}

Test(pager, the_zpool_gives_back_freed_slots_64k_blocks, .timeout = 60)
{
	compaction(64ul << 10);
}

/*
 * Clean copies (pager.c): a block brought back by readahead or WILLNEED
 * keeps its zpool copy, and evicted again unwritten it costs no
 * compression. A write (by the application or the kernel) or a dropped
 * page must forget the copy first, or the next eviction would bring the
 * old data back. COLD forces the evictions: a 2 MiB region under an
 * 64 MiB budget (clean copies may take 1/32 of it: all fit).
 */
#define CLEAN_LEN	(2ul << 20)
#define CLEAN_BS	(64ul << 10)

static uint8_t *clean_region(unsigned int features, enum kind k, struct upg_runtime **rt,
			     struct upg_region **r)
{
	struct upg_options o;
	uint8_t *base;

	t_options_default(&o);
	o.block_size = CLEAN_BS;
	o.budget = 64ul << 20;
	o.features = features;
	*rt = t_runtime_create_opts(&o);
	*r = t_region_create(*rt, CLEAN_LEN);
	base = upg_region_addr(*r);
	for (size_t pg = 0; pg < CLEAN_LEN / T_PAGE; pg++)
		gen_page(base + pg * T_PAGE, pg, 1, k);
	cr_assert_eq(upg_advise(base, CLEAN_LEN, UPG_ADV_COLD), 0);
	return base;
}

/* Bring every block back (WILLNEED: clean) and check every page. */
static void read_all(uint8_t *base, uint32_t v, enum kind k)
{
	cr_assert_eq(upg_advise(base, CLEAN_LEN, UPG_ADV_WILLNEED), 0);
	for (size_t pg = 0; pg < CLEAN_LEN / T_PAGE; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, v, k), "page %zu", pg);
}

static void clean_round_trip(unsigned int features, bool kept)
{
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = clean_region(features, K_TEXT, &rt, &r);
	struct upg_stats a, b, c;

	t_stats_settled(rt, &a);
	read_all(base, 1, K_TEXT);
	t_stats_settled(rt, &b);
	cr_assert_eq(b.swapins - a.swapins, CLEAN_LEN / CLEAN_BS);
	cr_assert_eq(b.clean_kept - a.clean_kept, kept ? CLEAN_LEN / CLEAN_BS : 0);
	cr_assert_eq(b.clean_bytes > 0, kept);
	/*
	 * Charged to the budget at more than their bytes, so that memory
	 * does not grow (pager.c, clean_charge): at most twice.
	 */
	cr_assert_geq(b.resident_bytes, CLEAN_LEN + b.clean_bytes * (kept ? 1.25 : 1));
	cr_assert_leq(b.resident_bytes, CLEAN_LEN + 2 * b.clean_bytes);
	cr_assert_eq(upg_advise(base, CLEAN_LEN, UPG_ADV_COLD), 0);
	t_stats_settled(rt, &c);
	cr_assert_eq(c.evictions - b.evictions, CLEAN_LEN / CLEAN_BS);
	cr_assert_eq(c.clean_reused - b.clean_reused, kept ? CLEAN_LEN / CLEAN_BS : 0);
	cr_assert_eq(c.clean_bytes, 0);
	/* The same objects again: nothing was stored twice. */
	cr_assert_eq(c.zpool_stored_bytes, a.zpool_stored_bytes);
	read_all(base, 1, K_TEXT);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

Test(pager, an_unwritten_block_is_evicted_again_without_compression, .timeout = 60)
{
	clean_round_trip(UPG_FEAT_ALL, true);
}

/*
 * Faults keep a copy only for the blocks a stream reads ahead: read in
 * order, they leave in order, soon. A scattered fault's block may stay
 * long, and its copy would take room from the budget all that time.
 */
Test(pager, a_stream_keeps_clean_copies_and_scattered_faults_do_not, .timeout = 60)
{
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = clean_region(UPG_FEAT_ALL, K_TEXT, &rt, &r);
	size_t nr = CLEAN_LEN / T_PAGE, per = CLEAN_BS / T_PAGE;
	struct upg_stats a, b;

	/* Every third block, backwards: no stream. */
	t_stats_settled(rt, &a);
	for (size_t pg = nr - per; pg < nr; pg -= 3 * per)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
	t_stats_settled(rt, &b);
	cr_assert_gt(b.swapins, a.swapins);
	cr_assert_eq(b.clean_kept, a.clean_kept);
	/* In order: all but the blocks that start the stream come read ahead. */
	cr_assert_eq(upg_advise(base, CLEAN_LEN, UPG_ADV_COLD), 0);
	t_stats_settled(rt, &a);
	for (size_t pg = 0; pg < nr; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
	t_stats_settled(rt, &b);
	cr_assert_gt(b.clean_kept - a.clean_kept, CLEAN_LEN / CLEAN_BS / 2);
	cr_assert_eq(b.clean_kept - a.clean_kept, b.readahead_blocks - a.readahead_blocks);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/*
 * Bring every block of a clean_region() of @k back, by WILLNEED (read) or
 * by a stream writing version 2 (@write), check every page, and say that
 * no clean copy was kept; the stats before and after go to @a and @b.
 */
static void no_copy_kept(enum kind k, bool write, struct upg_stats *a, struct upg_stats *b)
{
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = clean_region(UPG_FEAT_ALL, k, &rt, &r);

	t_stats_settled(rt, a);
	if (write) {
		for (size_t pg = 0; pg < CLEAN_LEN / T_PAGE; pg++)
			gen_page(base + pg * T_PAGE, pg, 2, k);
	} else {
		cr_assert_eq(upg_advise(base, CLEAN_LEN, UPG_ADV_WILLNEED), 0);
	}
	t_stats_settled(rt, b);
	cr_assert_eq(b->clean_kept, a->clean_kept);
	cr_assert_eq(b->clean_bytes, 0);
	for (size_t pg = 0; pg < CLEAN_LEN / T_PAGE; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, write ? 2 : 1, k), "page %zu", pg);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/*
 * A block that compresses worse than half keeps no copy: charged so that
 * memory does not grow, it would cost more than the block itself.
 */
Test(pager, an_incompressible_block_keeps_no_clean_copy, .timeout = 60)
{
	struct upg_stats a, b;

	no_copy_kept(K_RANDOM, false, &a, &b);
	cr_assert_eq(b.swapins - a.swapins, CLEAN_LEN / CLEAN_BS);
}

/*
 * A stream that writes keeps no copies: every block it reads ahead would
 * be written too, each write a write-protect fault to drop the copy.
 */
Test(pager, a_writing_stream_keeps_no_clean_copies, .timeout = 60)
{
	struct upg_stats a, b;

	no_copy_kept(K_TEXT, true, &a, &b);
	cr_assert_gt(b.readahead_blocks, a.readahead_blocks);
	cr_assert_eq(b.clean_dropped, a.clean_dropped);
}

/* The fallback: without write-protect faults no copy is kept. */
Test(pager, without_write_protect_no_clean_copy_is_kept, .timeout = 60)
{
	clean_round_trip(UPG_FEAT_ALL & ~UPG_FEAT_WP, false);
}

/* Without REMOVE events a MADV_DONTNEED would go unseen: no copies either. */
Test(pager, without_remove_events_no_clean_copy_is_kept, .timeout = 60)
{
	clean_round_trip(UPG_FEAT_ALL & ~UPG_FEAT_EVENT_REMOVE, false);
}

T_BOTH_WAYS(pager, a_write_after_a_read_swap_in_forgets_the_copy, 60)
{
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = clean_region(t_pager_features, K_TEXT, &rt, &r), page[T_PAGE];
	size_t nr = CLEAN_LEN / T_PAGE;
	struct upg_stats st;
	int pfd[2];

	read_all(base, 1, K_TEXT);
	/* Every 4th page written by us, every 4th + 1 by the kernel (read(2)). */
	cr_assert_eq(pipe(pfd), 0);
	for (size_t pg = 0; pg < nr; pg += 4) {
		gen_page(base + pg * T_PAGE, pg, 2, K_TEXT);
		gen_page(page, pg + 1, 2, K_TEXT);
		cr_assert_eq(write(pfd[1], page, T_PAGE), (ssize_t)T_PAGE);
		cr_assert_eq(read(pfd[0], base + (pg + 1) * T_PAGE, T_PAGE), (ssize_t)T_PAGE);
	}
	close(pfd[0]);
	close(pfd[1]);
	t_stats_settled(rt, &st);
	if (t_pager_features & UPG_FEAT_MOVE)
		cr_assert_eq(st.clean_dropped, CLEAN_LEN / CLEAN_BS, "one per block");
	cr_assert_eq(upg_advise(base, CLEAN_LEN, UPG_ADV_COLD), 0);
	for (size_t pg = 0; pg < nr; pg++)
		cr_assert(page_ok(base + pg * T_PAGE, pg, pg % 4 < 2 ? 2 : 1, K_TEXT),
			  "page %zu", pg);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

T_BOTH_WAYS(pager, a_page_dropped_from_a_clean_block_reads_zeros, 60)
{
	struct upg_runtime *rt;
	struct upg_region *r;
	uint8_t *base = clean_region(t_pager_features, K_TEXT, &rt, &r);
	static const uint8_t zeros[T_PAGE];

	read_all(base, 1, K_TEXT);
	/* One page of each block, in the middle: the blocks stay RESIDENT. */
	for (size_t off = 0; off < CLEAN_LEN; off += CLEAN_BS)
		cr_assert_eq(madvise(base + off + 3 * T_PAGE, T_PAGE, MADV_DONTNEED), 0);
	cr_assert_eq(upg_advise(base, CLEAN_LEN, UPG_ADV_COLD), 0);
	for (size_t pg = 0; pg < CLEAN_LEN / T_PAGE; pg++) {
		if (pg % (CLEAN_BS / T_PAGE) == 3)
			cr_assert_eq(memcmp(base + pg * T_PAGE, zeros, T_PAGE), 0, "page %zu", pg);
		else
			cr_assert(page_ok(base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
	}
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}

/*
 * Copy-out (no UFFDIO_MOVE): what the application does to a block while
 * it is being copied out. The copier is held 200 ms at a phase (0: the
 * run write-protected, 1: copied, 2: dropped with MADV_DONTNEED) while
 * another region is read to make the evictor work.
 */
struct copyout_scene {
	struct upg_runtime *rt;
	struct upg_region *a, *b;	/* a: the victims; b: read for pressure */
	uint8_t *base;
	size_t len;
	pthread_t presser;
	volatile bool stop;
};

static void *press_main(void *arg)
{
	struct copyout_scene *s = arg;
	uint8_t *b = upg_region_addr(s->b);

	for (size_t pg = 0; !s->stop; pg = (pg + 1) % (s->len / T_PAGE))
		cr_assert(page_ok(b + pg * T_PAGE, pg, 1, K_TEXT), "pressure page %zu", pg);
	return NULL;
}

/* A victim: the first block of a run held at @phase, in region a. */
static uintptr_t copyout_victim(struct copyout_scene *s, unsigned int phase)
{
	s->len = 8ul << 20;
	t_copy_out_mode();
	s->rt = pager_runtime(T_PAGE, 2ul << 20);
	s->a = t_region_create(s->rt, s->len);
	s->b = t_region_create(s->rt, s->len);
	s->base = upg_region_addr(s->a);
	for (size_t pg = 0; pg < s->len / T_PAGE; pg++) {
		gen_page(s->base + pg * T_PAGE, pg, 1, K_TEXT);
		gen_page((uint8_t *)upg_region_addr(s->b) + pg * T_PAGE, pg, 1, K_TEXT);
	}
	/* Only region a's runs are held, from before the pressure starts. */
	upg_test_copyout_lo = (uintptr_t)s->base;
	upg_test_copyout_hi = (uintptr_t)s->base + s->len;
	upg_test_copyout_phase = phase;
	upg_test_copyout_delay_us = 200000;
	pthread_create(&s->presser, NULL, press_main, s);
	for (int attempt = 0; attempt < 50; attempt++) {
		uintptr_t v;

		upg_test_copyout_delay_us = 200000;
		for (int ms = 0; !(v = upg_test_copyout_addr); ms++) {
			cr_assert_lt(ms, 20000, "no copy-out of the victim region in 20 s");
			usleep(1000);
		}
		if (v + 2 * T_PAGE <= (uintptr_t)s->base + s->len)
			return v;
		/* A run at the region's last page: let it go, wait for the next. */
		upg_test_copyout_delay_us = 0;
		while (upg_test_copyout_addr == v)
			usleep(1000);
	}
	cr_assert_fail("no copy-out of two pages of the victim region in 50 tries");
	return 0;
}

/* Release the copier, stop the pressure, check region a but @skip. */
static void copyout_end(struct copyout_scene *s, uintptr_t skip)
{
	upg_test_copyout_delay_us = 0;
	s->stop = true;
	pthread_join(s->presser, NULL);
	for (size_t pg = 0; pg < s->len / T_PAGE; pg++)
		if ((uintptr_t)s->base + pg * T_PAGE != skip)
			cr_assert(page_ok(s->base + pg * T_PAGE, pg, 1, K_TEXT), "page %zu", pg);
}

static void copyout_free(struct copyout_scene *s)
{
	upg_region_destroy(s->a);
	upg_region_destroy(s->b);
	upg_runtime_destroy(s->rt);
}

struct access {
	uint8_t *p;
	size_t pg;
	bool write;
	volatile bool done;
	bool ok;
	pthread_t thread;
};

static void *access_main(void *arg)
{
	struct access *x = arg;

	if (x->write)
		gen_page(x->p, x->pg, 2, K_TEXT);
	else
		x->ok = page_ok(x->p, x->pg, 1, K_TEXT);
	x->done = true;
	return NULL;
}

/*
 * A write to the block once it is write-protected must wait for the
 * copy-out (else it would land in a page about to be dropped and be
 * lost), then land. A read goes through while the page is still mapped
 * (read-only), waits once it is dropped, and sees its data either way.
 */
static void access_during_copy_out(bool write, unsigned int phase)
{
	struct copyout_scene s = { 0 };
	uintptr_t v = copyout_victim(&s, phase);
	size_t pg = (v - (uintptr_t)s.base) / T_PAGE;
	struct access x = { .p = (uint8_t *)v, .pg = pg, .write = write };
	struct upg_stats st;

	pthread_create(&x.thread, NULL, access_main, &x);
	usleep(50000);
	if (write || phase == 2)
		cr_assert(!x.done, "the access went through a block being copied out");
	copyout_end(&s, v);
	pthread_join(x.thread, NULL);
	if (write)
		cr_assert(page_ok((uint8_t *)v, pg, 2, K_TEXT), "the write was lost");
	else
		cr_assert(x.ok, "the read saw wrong data");
	t_stats_settled(s.rt, &st);
	if (write || phase == 2)
		cr_assert_gt(st.copyout_parked, 0);
	copyout_free(&s);
}

/*
 * MADV_DONTNEED of one page of the run while it is copied out: that page
 * reads zeros after (at phase 1 only the count of REMOVE events tells:
 * the slot has its data), and the copier's own MADV_DONTNEED of the run
 * is not taken for the application's (the rest keeps its data).
 */
static void dontneed_during_copy_out(unsigned int phase)
{
	struct copyout_scene s = { 0 };
	uintptr_t v = copyout_victim(&s, phase);

	cr_assert_eq(madvise((void *)v, T_PAGE, MADV_DONTNEED), 0);
	copyout_end(&s, v);
	cr_assert(t_page_is_zero((void *)v), "a page dropped during the copy-out kept data");
	copyout_free(&s);
}

/* munmap of one page of the run meanwhile: the rest keeps its data. */
static void munmap_during_copy_out(unsigned int phase)
{
	struct copyout_scene s = { 0 };
	uintptr_t v = copyout_victim(&s, phase);
	struct upg_stats st;

	cr_assert_eq(munmap((void *)v, T_PAGE), 0);
	copyout_end(&s, v);
	t_stats_settled(s.rt, &st);
	cr_assert_leq(st.resident_bytes, st.budget_bytes);
	copyout_free(&s);
}

/*
 * mremap of one page of the run meanwhile: its data goes with it (in the
 * page itself before phase 2, from the slot after).
 */
static void mremap_during_copy_out(unsigned int phase)
{
	struct copyout_scene s = { 0 };
	uintptr_t v = copyout_victim(&s, phase);
	size_t pg = (v - (uintptr_t)s.base) / T_PAGE;
	uint8_t *to = mmap(NULL, 4 * T_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(to, MAP_FAILED);
	to = mremap((void *)v, T_PAGE, T_PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to + T_PAGE);
	cr_assert_neq(to, MAP_FAILED, "mremap: %s", strerror(errno));
	copyout_end(&s, v);
	cr_assert(page_ok(to, pg, 1, K_TEXT), "the moved page lost its data");
	/* Still ours, and writable (a write-protect went with it). */
	gen_page(to, pg, 3, K_TEXT);
	cr_assert(page_ok(to, pg, 3, K_TEXT));
	munmap(to, T_PAGE);
	copyout_free(&s);
}

#define AT_PHASE(what, fn, phase)						\
	Test(copyout, what##_at_phase_##phase, .timeout = 60) { fn(phase); }

static void write_during(unsigned int phase) { access_during_copy_out(true, phase); }
static void read_during(unsigned int phase) { access_during_copy_out(false, phase); }

AT_PHASE(write_waits_and_lands, write_during, 0)
AT_PHASE(write_waits_and_lands, write_during, 1)
AT_PHASE(write_waits_and_lands, write_during, 2)
AT_PHASE(read_sees_its_data, read_during, 0)
AT_PHASE(read_sees_its_data, read_during, 2)
AT_PHASE(dontneed_reads_zeros_there_only, dontneed_during_copy_out, 0)
AT_PHASE(dontneed_reads_zeros_there_only, dontneed_during_copy_out, 1)
AT_PHASE(dontneed_reads_zeros_there_only, dontneed_during_copy_out, 2)
AT_PHASE(munmap_keeps_the_rest, munmap_during_copy_out, 0)
AT_PHASE(munmap_keeps_the_rest, munmap_during_copy_out, 2)
AT_PHASE(mremap_carries_the_data, mremap_during_copy_out, 0)
AT_PHASE(mremap_carries_the_data, mremap_during_copy_out, 2)
