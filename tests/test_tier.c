/*
 * The tiered store: without a swap store it is the zpool; with one, pages
 * that do not compress go to the store at once, the zpool's oldest go
 * there past its share, and every page comes back byte for byte, from
 * wherever it is. A page whose bytes change on the store, or whose read
 * fails, loads as -EIO; a write that fails keeps its pages in memory and
 * marks the store degraded; a store with no room says -ENOSPC; a load
 * writes nothing; freed slots are used again before the file grows; and
 * four threads storing, loading and freeing at once lose nothing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "swap/tier.h"

#define PAGE	4096ul

TestSuite(tier, .timeout = 60);

static char dir[64];

static void dir_make(void)
{
	strcpy(dir, "/tmp/upager-tier-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void dir_remove(void)
{
	if (dir[0])
		nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

/* Compressible (about 3x under LZ4) or not, a function of @seed. */
static void page_make(uint8_t *p, uint64_t seed, bool random)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;

	if (random) {
		for (size_t i = 0; i < PAGE; i += 8) {
			uint64_t v = rnd(&s);

			memcpy(p + i, &v, 8);
		}
		return;
	}
	for (size_t i = 0; i < PAGE;) {
		static const char *const words[] = { "page ", "fault ", "swap ", "store ",
						     "tier ", "slot ", "write ", "read " };
		const char *w = words[rnd(&s) % 8];
		size_t n = strlen(w);

		memcpy(p + i, w, i + n > PAGE ? PAGE - i : n);
		i += n;
	}
	memcpy(p, &seed, sizeof(seed));	/* each page different */
}

static uint8_t *aligned(size_t len)
{
	void *p;

	cr_assert_eq(posix_memalign(&p, PAGE, len), 0);
	return p;
}

static struct upg_tier *tier_make(size_t zpool_max, uint64_t swap_size, bool direct)
{
	struct upg_tier_config c = {
		.zpool = { .max_bytes = zpool_max },
		.swap_path = dir, .swap_size = swap_size, .no_direct = !direct,
	};
	struct upg_tier *t;

	cr_assert_eq(upg_tier_create(&c, &t), 0);
	cr_assert(upg_tier_has_store(t));
	return t;
}

static void check_all(struct upg_tier *t, const uint64_t *h, size_t n, bool random)
{
	uint8_t *want = aligned(PAGE), *got = aligned(PAGE);

	for (size_t i = 0; i < n; i++) {
		page_make(want, i, random);
		cr_assert_eq(upg_tier_load(t, h[i], got, 1), 0, "page %zu", i);
		cr_assert_eq(memcmp(want, got, PAGE), 0, "page %zu differs", i);
	}
	free(want);
	free(got);
}

static void store_all(struct upg_tier *t, uint64_t *h, size_t n, bool random)
{
	uint8_t *p = aligned(PAGE);

	for (size_t i = 0; i < n; i++) {
		page_make(p, i, random);
		cr_assert_eq(upg_tier_store(t, p, 1, &h[i]), 0, "page %zu", i);
	}
	free(p);
}

Test(tier, without_a_store_it_is_the_zpool)
{
	struct upg_tier_config c = { 0 };
	struct upg_tier *t;
	uint64_t h[16];

	cr_assert_eq(upg_tier_create(&c, &t), 0);
	cr_assert_not(upg_tier_has_store(t));
	store_all(t, h, 16, false);
	check_all(t, h, 16, false);
	cr_assert_eq(upg_tier_object_pages(t, h[3]), upg_zpool_object_pages(h[3]));
	upg_tier_destroy(t);
}

Test(tier, incompressible_pages_go_straight_to_the_store, .init = dir_make, .fini = dir_remove)
{
	struct upg_tier *t = tier_make(64 << 20, 64 << 20, true);
	struct upg_tier_stats st;
	uint64_t h[600];

	store_all(t, h, 600, true);
	check_all(t, h, 600, true);	/* some still in their batch */
	upg_tier_test_flush(t);
	for (size_t i = 0; i < 600; i++)
		cr_assert(upg_tier_test_on_store(t, h[i]), "page %zu", i);
	check_all(t, h, 600, true);
	upg_tier_stats(t, &st);
	cr_assert_eq(st.direct_pages, 600);
	cr_assert_eq(st.swap_pages, 600);
	cr_assert_eq(st.zpool.pages_stored, 0);
	/* Written in runs: 600 pages in 1 MiB batches, not 600 writes. */
	cr_assert_leq(st.swap_writes, 8, "%lu writes", (unsigned long)st.swap_writes);
	cr_assert_eq(upg_tier_object_bytes(t, h[0]), 0);
	upg_tier_destroy(t);
}

Test(tier, past_its_share_the_zpools_oldest_go_to_the_store, .init = dir_make,
     .fini = dir_remove)
{
	/*
	 * The share is large against the zpool's arenas (256 KiB a size
	 * class in use), which only go back once empty.
	 */
	struct upg_tier *t = tier_make(8 << 20, 256 << 20, true);
	struct upg_tier_stats st;
	enum { N = 16000 };
	uint64_t *h = calloc(N, sizeof(*h));

	store_all(t, h, N, false);
	upg_tier_test_flush(t);
	upg_tier_stats(t, &st);
	cr_assert_gt(st.writeback_pages, N / 4);
	cr_assert_leq(st.zpool.mem_used, 8 << 20);
	cr_assert_eq(st.swap_pages + st.zpool.pages_stored, N);
	/* Oldest first: the first page went, the last did not. */
	cr_assert(upg_tier_test_on_store(t, h[0]));
	cr_assert_not(upg_tier_test_on_store(t, h[N - 1]));
	/* A page written back keeps the bytes it was charged at store. */
	cr_assert_gt(upg_tier_object_bytes(t, h[0]), 0);
	check_all(t, h, N, false);
	free(h);
	upg_tier_destroy(t);
}

/*
 * Compaction with a store: the tier moves the objects of the arenas
 * being drained itself (its handles, which the pager holds, stay), and
 * every page still loads.
 */
Test(tier, compaction_moves_zpool_objects_and_keeps_the_handles, .init = dir_make,
     .fini = dir_remove)
{
	struct upg_tier *t = tier_make(64 << 20, 256 << 20, true);
	struct upg_zpool *zp = upg_tier_zpool(t);
	struct upg_tier_stats a, b;
	enum { N = 8192 };
	uint64_t *h = calloc(N, sizeof(*h));
	uint8_t *want = aligned(PAGE), *got = aligned(PAGE);
	size_t moved;

	store_all(t, h, N, false);
	for (size_t i = 0; i < N; i++)
		if (i % 4)
			upg_tier_free(t, h[i]);
	upg_tier_stats(t, &a);
	cr_assert_eq(a.swap_pages, 0, "all in the zpool");
	cr_assert_gt(upg_zpool_waste_bytes(zp), a.zpool.mem_used / 2);
	cr_assert_gt(upg_zpool_drain_begin(zp), 0);
	moved = upg_tier_relocate_draining(t);
	upg_zpool_drain_end(zp);
	upg_tier_stats(t, &b);
	cr_assert_gt(moved, 0);
	cr_assert_lt(b.zpool.mem_used, a.zpool.mem_used * 2 / 3, "%zu bytes, were %zu",
		     (size_t)b.zpool.mem_used, (size_t)a.zpool.mem_used);
	for (size_t i = 0; i < N; i += 4) {
		page_make(want, i, false);
		cr_assert_eq(upg_tier_load(t, h[i], got, 1), 0, "page %zu", i);
		cr_assert_eq(memcmp(want, got, PAGE), 0, "page %zu differs", i);
	}
	free(want);
	free(got);
	free(h);
	upg_tier_destroy(t);
}

Test(tier, buffered_store_round_trips_too, .init = dir_make, .fini = dir_remove)
{
	struct upg_tier *t = tier_make(128 << 10, 64 << 20, false);
	uint64_t h[1000];

	store_all(t, h, 500, true);
	store_all(t, h + 500, 500, false);
	upg_tier_test_flush(t);
	check_all(t, h + 500, 500, false);
	for (size_t i = 0; i < 500; i++)
		cr_assert(upg_tier_test_on_store(t, h[i]));
	upg_tier_destroy(t);
}

Test(tier, a_page_changed_on_the_store_loads_as_eio, .init = dir_make, .fini = dir_remove)
{
	struct upg_tier *t = tier_make(64 << 20, 64 << 20, true);
	uint8_t *got = aligned(PAGE);
	struct upg_tier_stats st;
	uint64_t h[8];

	store_all(t, h, 8, true);
	upg_tier_test_flush(t);
	cr_assert_eq(upg_tier_test_corrupt(t, h[5]), 0);
	cr_assert_eq(upg_tier_load(t, h[5], got, 1), -EIO);
	upg_tier_stats(t, &st);
	cr_assert_eq(st.checksum_errors, 1);
	/* Its neighbours on the store are intact. */
	cr_assert_eq(upg_tier_load(t, h[4], got, 1), 0);
	cr_assert_eq(upg_tier_load(t, h[6], got, 1), 0);
	free(got);
	upg_tier_destroy(t);
}

Test(tier, a_failed_read_loads_as_eio, .init = dir_make, .fini = dir_remove)
{
	struct upg_tier *t = tier_make(64 << 20, 64 << 20, true);
	uint8_t *got = aligned(PAGE);
	struct upg_tier_stats st;
	uint64_t h[4];

	store_all(t, h, 4, true);
	upg_tier_test_flush(t);
	upg_tier_test_fail(t, false, -EIO, 1);
	cr_assert_eq(upg_tier_load(t, h[1], got, 1), -EIO);
	upg_tier_stats(t, &st);
	cr_assert_eq(st.read_errors, 1);
	check_all(t, h, 4, true);	/* the next reads work */
	free(got);
	upg_tier_destroy(t);
}

Test(tier, a_failed_write_keeps_the_pages_and_degrades_the_store, .init = dir_make,
     .fini = dir_remove)
{
	struct upg_tier *t = tier_make(8 << 20, 64 << 20, true);
	struct upg_tier_stats st;
	uint64_t h[300], more[64];
	uint8_t *p = aligned(PAGE);

	upg_tier_test_fail(t, true, -ENOSPC, 1000);
	store_all(t, h, 300, true);
	upg_tier_test_flush(t);
	upg_tier_stats(t, &st);
	cr_assert(st.degraded);
	cr_assert_geq(st.write_errors, 1);
	cr_assert_eq(st.swap_pages, 300);	/* held in memory */
	/* Nothing lost: the pages are still in the batches' memory, counted. */
	check_all(t, h, 300, true);
	cr_assert_geq(st.mem_used, 300 * PAGE);
	/* Later stores go to the zpool (raw), while it has room. */
	for (size_t i = 0; i < 64; i++) {
		page_make(p, 1000 + i, true);
		cr_assert_eq(upg_tier_store(t, p, 1, &more[i]), 0);
	}
	upg_tier_stats(t, &st);
	cr_assert_eq(st.zpool.raw_pages, 64);
	/* Freeing what the failed batches hold gives their memory back. */
	for (size_t i = 0; i < 300; i++)
		upg_tier_free(t, h[i]);
	upg_tier_stats(t, &st);
	cr_assert_lt(st.mem_used, 300 * PAGE);
	cr_assert_eq(st.swap_pages, 0);
	free(p);
	upg_tier_destroy(t);
}

Test(tier, no_room_in_either_tier_is_enospc, .init = dir_make, .fini = dir_remove)
{
	/* 256 slots on the store, 64 KiB of zpool. */
	struct upg_tier *t = tier_make(64 << 10, 1 << 20, true);
	uint64_t h[400];
	uint8_t *p = aligned(PAGE);
	size_t n;
	int ret = 0;

	for (n = 0; n < 400; n++) {
		page_make(p, n, true);
		ret = upg_tier_store(t, p, 1, &h[n]);
		if (ret)
			break;
	}
	cr_assert_eq(ret, -ENOSPC);
	cr_assert_geq(n, 256, "only %zu stored", n);
	check_all(t, h, n, true);
	free(p);
	upg_tier_destroy(t);
}

Test(tier, a_load_writes_nothing_and_keeps_its_slot, .init = dir_make, .fini = dir_remove)
{
	struct upg_tier *t = tier_make(64 << 20, 64 << 20, true);
	struct upg_tier_stats a, b;
	uint64_t h[64];

	store_all(t, h, 64, true);
	upg_tier_test_flush(t);
	upg_tier_stats(t, &a);
	check_all(t, h, 64, true);
	check_all(t, h, 64, true);
	upg_tier_test_flush(t);
	upg_tier_stats(t, &b);
	cr_assert_eq(b.swap_written_pages, a.swap_written_pages);
	cr_assert_eq(b.swap_read_pages, a.swap_read_pages + 128);
	cr_assert(upg_tier_test_on_store(t, h[10]));
	upg_tier_destroy(t);
}

Test(tier, freed_slots_are_used_again_before_the_file_grows, .init = dir_make,
     .fini = dir_remove)
{
	struct upg_tier *t = tier_make(64 << 20, 1 << 30, true);
	struct upg_tier_stats a, b;
	uint64_t h[1024];

	store_all(t, h, 1024, true);
	upg_tier_test_flush(t);
	upg_tier_stats(t, &a);
	for (size_t i = 0; i < 1024; i++)
		upg_tier_free(t, h[i]);
	upg_tier_stats(t, &b);
	cr_assert_eq(b.swap_pages, 0);
	store_all(t, h, 1024, true);
	upg_tier_test_flush(t);
	upg_tier_stats(t, &b);
	cr_assert_eq(b.swap_bytes, a.swap_bytes);
	cr_assert_eq(b.swap_pages, 1024);
	check_all(t, h, 1024, true);
	upg_tier_destroy(t);
}

/*
 * Store 2048 pages, free all but one in @keep_every, store 512 more:
 * the stats after the first store go to @a, after the last to @b.
 */
static void store_after_holes(size_t keep_every, struct upg_tier_stats *a,
			      struct upg_tier_stats *b)
{
	struct upg_tier *t = tier_make(64 << 20, 1 << 30, true);
	uint64_t h[2048], more[512];

	store_all(t, h, 2048, true);
	upg_tier_test_flush(t);
	for (size_t i = 0; i < 2048; i++)
		if (i % keep_every)
			upg_tier_free(t, h[i]);
	upg_tier_stats(t, a);
	store_all(t, more, 512, true);
	upg_tier_test_flush(t);
	upg_tier_stats(t, b);
	check_all(t, more, 512, true);
	upg_tier_destroy(t);
}

/* A batch takes a run of slots: one write, not one per hole left by frees. */
Test(tier, a_batch_after_scattered_frees_is_one_write, .init = dir_make, .fini = dir_remove)
{
	struct upg_tier_stats a, b;

	store_after_holes(2, &a, &b);
	cr_assert_eq(b.swap_written_pages - a.swap_written_pages, 512);
	cr_assert_leq(b.swap_writes - a.swap_writes, 2, "%llu writes",
		      (unsigned long long)(b.swap_writes - a.swap_writes));
}

/* ...but not by growing a store that is mostly holes: those are used. */
Test(tier, a_store_mostly_holes_fills_them_before_it_grows, .init = dir_make,
     .fini = dir_remove)
{
	struct upg_tier_stats a, b;

	store_after_holes(4, &a, &b);
	cr_assert_eq(b.swap_bytes, a.swap_bytes);
}

Test(tier, a_store_that_cannot_open_is_an_error, .init = dir_make, .fini = dir_remove)
{
	struct upg_tier_config c = { .swap_path = "/nonexistent-upager/dir/x",
				     .swap_size = 1 << 20, .zpool_share = 1 << 20 };
	struct upg_tier *t = NULL;

	cr_assert_eq(upg_tier_create(&c, &t), -ENOENT);
	cr_assert_null(t);
}

/* Four threads store, load and free pages of both kinds at once. */
struct worker {
	struct upg_tier *t;
	unsigned int id;
	size_t ops;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	enum { N = 512 };
	uint64_t h[N] = { 0 }, seed[N], s = w->id + 7;
	uint8_t *p = aligned(PAGE), *q = aligned(PAGE);

	for (size_t op = 0; op < w->ops; op++) {
		size_t i = rnd(&s) % N;

		if (h[i] && rnd(&s) % 4) {
			page_make(p, seed[i], seed[i] & 1);
			cr_assert_eq(upg_tier_load(w->t, h[i], q, 1), 0);
			cr_assert_eq(memcmp(p, q, PAGE), 0, "thread %u slot %zu", w->id, i);
			continue;
		}
		if (h[i])
			upg_tier_free(w->t, h[i]);
		seed[i] = (uint64_t)w->id << 40 | op;
		page_make(p, seed[i], seed[i] & 1);
		cr_assert_eq(upg_tier_store(w->t, p, 1, &h[i]), 0);
	}
	for (size_t i = 0; i < N; i++)
		if (h[i])
			upg_tier_free(w->t, h[i]);
	free(p);
	free(q);
	return NULL;
}

Test(tier, four_threads_at_once_lose_nothing, .init = dir_make, .fini = dir_remove,
     .timeout = 120)
{
	struct upg_tier *t = tier_make(256 << 10, 256 << 20, true);
	struct worker w[4];
	pthread_t th[4];
	struct upg_tier_stats st;

	for (unsigned int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .t = t, .id = i, .ops = 100000 };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (unsigned int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	upg_tier_test_flush(t);
	upg_tier_stats(t, &st);
	cr_assert_gt(st.writeback_pages, 0);
	cr_assert_gt(st.direct_pages, 0);
	cr_assert_gt(st.swap_read_pages, 0);
	cr_assert_eq(st.swap_pages, 0);
	cr_assert_eq(st.zpool.pages_stored, 0);
	upg_tier_destroy(t);
}
