/*
 * The compressed page store: pages of each kind (text, incompressible,
 * zero, one repeated word) come back byte for byte and are counted as what
 * they are, multi-page objects too; the ratio on text stays with plain LZ4
 * per page; max_bytes refuses a store without changing anything; freeing
 * gives the memory back; a corrupted object reads as -EIO; and four threads
 * at once lose nothing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "swap/zpool.h"

#define PAGE		UPG_ZPOOL_PAGE

TestSuite(zpool, .timeout = 60);

enum page_kind { P_TEXT, P_RANDOM, P_ZERO, P_WORD, P_NR };

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

/*
 * Phrases rather than words: a 4 KiB page of random words gives LZ4 only
 * about 1.5x, while repeated phrases, picked with a skew towards the first
 * ones, give about 2.65x, near what LZ4 gets on real text pages.
 */
static const char *const phrases[] = {
	"the process", "of the memory", "and then", "was written to",
	"in the kernel", "a page fault", "is handled by", "that the thread",
	"for each region", "it is known", "as we said", "with a lock held",
	"could not be", "on the other hand", "from the store", "at the same time",
	"which is why", "but it was", "have been freed", "an empty arena",
	"they had left", "you will see", "were not found", "their own pages",
	"one of the", "all of them", "we can say", "when the river",
	"near the village", "in the morning", "after the evening",
	"over the mountain", "under the old bridge", "the history of",
	"some ancient library", "a quiet garden", "by the window",
	"wrote a letter", "in silence", "a long journey", "into the harbour",
	"more than ever", "whoever asked", "so it goes", "no one knew",
	"between the two", "through the night", "however small",
	"because of this", "a large number", "should be done",
	"another example", "without a doubt", "against the wall",
	"the following day",
};

#define NR_PHRASES	(sizeof(phrases) / sizeof(phrases[0]))

static void text_page(char *p, uint64_t seed)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
	size_t i = 0, col = 0;
	bool cap = true;

	while (i < PAGE) {
		uint64_t r = rnd(&s);
		size_t k = (size_t)(r % NR_PHRASES);
		const char *w = phrases[(r >> 32) % (k + 1)];

		for (size_t j = 0; w[j] && i < PAGE; j++, col++)
			p[i++] = (char)(j == 0 && cap ? w[j] - 'a' + 'A' : w[j]);
		cap = (r >> 16) % 8 == 0;
		if (i < PAGE && (r >> 16) % 8 < 2)
			p[i++] = cap ? '.' : ',';
		if (i < PAGE)
			p[i++] = col > 70 ? '\n' : ' ';
		col = col > 70 ? 0 : col + 1;
	}
}

static void make_page(char *p, enum page_kind kind, uint64_t seed)
{
	uint64_t s = seed * 0xBF58476D1CE4E5B9ull + 7, w = seed | 1ull << 63;

	switch (kind) {
	case P_TEXT:
		text_page(p, seed);
		break;
	case P_RANDOM:
		for (size_t i = 0; i < PAGE; i += sizeof(w)) {
			w = rnd(&s);
			memcpy(p + i, &w, sizeof(w));
		}
		break;
	case P_ZERO:
		memset(p, 0, PAGE);
		break;
	default:
		for (size_t i = 0; i < PAGE; i += sizeof(w))
			memcpy(p + i, &w, sizeof(w));
		break;
	}
}

static struct upg_zpool *zp_create(size_t max_bytes, size_t raw_threshold)
{
	struct upg_zpool_config cfg = { .max_bytes = max_bytes,
		.raw_threshold = raw_threshold };
	struct upg_zpool *zp = NULL;

	cr_assert_eq(upg_zpool_create(&cfg, &zp), 0);
	return zp;
}

static uint64_t store(struct upg_zpool *zp, const void *src, size_t nr_pages)
{
	uint64_t h = 0;
	int ret = upg_zpool_store(zp, src, nr_pages, &h);

	cr_assert_eq(ret, 0, "store of %zu pages: %s", nr_pages, strerror(-ret));
	cr_assert_neq(h, 0, "0 is never a handle");
	cr_assert_eq(h >> UPG_ZPOOL_HANDLE_BITS, 0, "handle %#llx is too wide",
		     (unsigned long long)h);
	return h;
}

static void assert_loads(struct upg_zpool *zp, uint64_t h, const void *want,
			 size_t nr_pages)
{
	char *got = malloc(nr_pages * PAGE);

	cr_assert(got);
	memset(got, 0x5a, nr_pages * PAGE);
	cr_assert_eq(upg_zpool_load(zp, h, got, nr_pages), 0);
	for (size_t i = 0; i < nr_pages; i++)
		cr_assert_eq(memcmp(got + i * PAGE, (const char *)want + i * PAGE, PAGE), 0,
			     "page %zu of %zu differs after load", i, nr_pages);
	free(got);
}

/* ---- pages of each kind --------------------------------------------- */

/* Stores @n pages of @kind, checks them and their stats, frees them. */
static void round_trip_kind(enum page_kind kind, size_t n, uint64_t want_same,
			    uint64_t want_raw)
{
	struct upg_zpool *zp = zp_create(0, 0);
	char *pages = malloc(n * PAGE);
	uint64_t *h = calloc(n, sizeof(*h));
	struct upg_zpool_stats st;

	cr_assert(pages && h);
	for (size_t i = 0; i < n; i++) {
		make_page(pages + i * PAGE, kind, i + 1);
		h[i] = store(zp, pages + i * PAGE, 1);
	}
	for (size_t i = 0; i < n; i++)
		assert_loads(zp, h[i], pages + i * PAGE, 1);
	upg_zpool_stats(zp, &st);
	cr_assert_eq(st.pages_stored, n);
	cr_assert_eq(st.orig_bytes, n * PAGE);
	cr_assert_eq(st.same_pages, want_same);
	cr_assert_eq(st.raw_pages, want_raw);
	for (size_t i = 0; i < n; i++)
		upg_zpool_free(zp, h[i]);
	upg_zpool_stats(zp, &st);
	cr_assert_eq(st.pages_stored, 0);
	cr_assert_eq(st.stored_bytes, 0);
	free(h);
	free(pages);
	upg_zpool_destroy(zp);
}

Test(zpool, text_pages_come_back_byte_exact_as_lz4)
{
	round_trip_kind(P_TEXT, 256, 0, 0);
}

Test(zpool, random_pages_come_back_and_are_counted_raw)
{
	round_trip_kind(P_RANDOM, 256, 0, 256);
}

Test(zpool, zero_pages_come_back_and_are_counted_same)
{
	round_trip_kind(P_ZERO, 256, 256, 0);
}

Test(zpool, repeated_word_pages_come_back_and_are_counted_same)
{
	round_trip_kind(P_WORD, 256, 256, 0);
}

Test(zpool, same_filled_pages_take_one_word_or_nothing)
{
	struct upg_zpool *zp = zp_create(0, 0);
	struct upg_zpool_stats st;
	char page[PAGE];
	uint64_t zero, word;

	make_page(page, P_ZERO, 1);
	zero = store(zp, page, 1);
	make_page(page, P_WORD, 2);
	word = store(zp, page, 1);
	cr_assert_eq(upg_zpool_object_bytes(zp, zero), 0);
	cr_assert_eq(upg_zpool_object_bytes(zp, word), sizeof(uint64_t));
	upg_zpool_stats(zp, &st);
	cr_assert_eq(st.stored_bytes, sizeof(uint64_t));
	upg_zpool_destroy(zp);
}

Test(zpool, page_over_raw_threshold_is_kept_raw)
{
	struct upg_zpool *zp = zp_create(0, 1024);
	struct upg_zpool_stats st;
	char page[PAGE], out[PAGE];
	uint64_t h;

	/* Our text takes about 1550 bytes of LZ4. */
	make_page(page, P_TEXT, 3);
	cr_assert_gt(LZ4_compress_default(page, out, PAGE, PAGE), 1024);
	h = store(zp, page, 1);
	assert_loads(zp, h, page, 1);
	cr_assert_eq(upg_zpool_object_bytes(zp, h), PAGE);
	upg_zpool_stats(zp, &st);
	cr_assert_eq(st.raw_pages, 1);
	upg_zpool_destroy(zp);
}

Test(zpool, mixed_pages_come_back_with_exact_counts)
{
	/* 7 of each kind, interleaved: 7 random raw, 14 same. */
	struct upg_zpool *zp = zp_create(0, 0);
	char pages[4 * 7][PAGE];
	uint64_t h[4 * 7];
	struct upg_zpool_stats st;
	uint64_t lz4 = 0;
	char out[PAGE];

	for (size_t i = 0; i < 4 * 7; i++) {
		make_page(pages[i], (enum page_kind)(i % P_NR), i + 100);
		if (i % P_NR == P_TEXT)
			lz4 += (uint64_t)LZ4_compress_default(pages[i], out, PAGE, PAGE);
		h[i] = store(zp, pages[i], 1);
	}
	for (size_t i = 0; i < 4 * 7; i++)
		assert_loads(zp, h[i], pages[i], 1);
	upg_zpool_stats(zp, &st);
	cr_assert_eq(st.pages_stored, 28);
	cr_assert_eq(st.same_pages, 14);
	cr_assert_eq(st.raw_pages, 7);
	cr_assert_eq(st.stored_bytes, lz4 + 7 * PAGE + 7 * sizeof(uint64_t));
	cr_assert_eq(st.store_fail_nospc, 0);
	upg_zpool_destroy(zp);
}

/* ---- multi-page objects ----------------------------------------------- */

static void multi_page_round_trip(size_t nr_pages)
{
	struct upg_zpool *zp = zp_create(0, 0);
	char *pages = malloc(nr_pages * PAGE);
	struct upg_zpool_stats st;
	size_t bytes = 0;
	uint64_t h, one;

	cr_assert(pages);
	for (size_t i = 0; i < nr_pages; i++)
		make_page(pages + i * PAGE, (enum page_kind)(i * 7 % P_NR), i);
	for (size_t i = 0; i < nr_pages; i++) {
		one = store(zp, pages + i * PAGE, 1);
		bytes += upg_zpool_object_bytes(zp, one);
		upg_zpool_free(zp, one);
	}
	h = store(zp, pages, nr_pages);
	assert_loads(zp, h, pages, nr_pages);
	upg_zpool_stats(zp, &st);
	cr_assert_eq(st.pages_stored, nr_pages);
	cr_assert_eq(st.same_pages, nr_pages / 2);
	cr_assert_eq(st.raw_pages, nr_pages / 4);
	/* The pages plus a record of one handle a page, rounded to a class. */
	cr_assert_geq(upg_zpool_object_bytes(zp, h), bytes + nr_pages * 8);
	cr_assert_lt(upg_zpool_object_bytes(zp, h), bytes + nr_pages * 8 + 64);
	cr_assert_eq(upg_zpool_load(zp, h, pages, nr_pages - 1), -EINVAL);
	upg_zpool_free(zp, h);
	upg_zpool_stats(zp, &st);
	cr_assert_eq(st.pages_stored, 0);
	free(pages);
	upg_zpool_destroy(zp);
}

Test(zpool, object_of_16_mixed_pages_comes_back)
{
	multi_page_round_trip(16);
}

Test(zpool, object_of_512_mixed_pages_comes_back)
{
	multi_page_round_trip(512);
}

Test(zpool, bad_arguments_are_einval)
{
	struct upg_zpool_config cfg = { .raw_threshold = PAGE };
	struct upg_zpool *zp = NULL;
	static char pages[UPG_ZPOOL_MAX_PAGES + 1][PAGE];
	uint64_t h;

	cr_assert_eq(upg_zpool_create(&cfg, &zp), -EINVAL);
	cr_assert_eq(upg_zpool_create(NULL, &zp), 0);
	cr_assert_eq(upg_zpool_store(zp, pages, 0, &h), -EINVAL);
	cr_assert_eq(upg_zpool_store(zp, pages, UPG_ZPOOL_MAX_PAGES + 1, &h), -EINVAL);
	h = store(zp, pages, 1);
	cr_assert_eq(upg_zpool_load(zp, h, pages, 2), -EINVAL);
	upg_zpool_destroy(zp);
	upg_zpool_destroy(NULL);
}

/* ---- ratio and memory ----------------------------------------------- */

#define NR_TEXT		8192

Test(zpool, ratio_on_text_is_within_5_percent_of_plain_lz4)
{
	struct upg_zpool *zp = zp_create(0, 0);
	char page[PAGE], out[PAGE];
	struct upg_zpool_stats st;
	uint64_t lz4 = 0;
	double want, by_payload, by_mem;

	for (size_t i = 0; i < NR_TEXT; i++) {
		make_page(page, P_TEXT, i);
		lz4 += (uint64_t)LZ4_compress_default(page, out, PAGE, PAGE);
		store(zp, page, 1);
	}
	upg_zpool_stats(zp, &st);
	want = (double)NR_TEXT * PAGE / (double)lz4;
	by_payload = (double)st.orig_bytes / (double)st.stored_bytes;
	by_mem = (double)st.orig_bytes / (double)st.mem_used;
	cr_log_info("lz4 %.3f, zpool %.3f by payload, %.3f by memory (%llu bytes), "
		    "fragmentation %.4f", want, by_payload, by_mem,
		    (unsigned long long)st.mem_used, st.fragmentation);
	cr_assert(want > 2.4 && want < 3.1, "the text should look like text: %.2f", want);
	cr_assert_geq(by_payload, want * 0.95, "%.3f against lz4's %.3f", by_payload, want);
	cr_assert_geq(by_mem, want * 0.95, "%.3f against lz4's %.3f", by_mem, want);
	cr_assert(st.fragmentation > 0 && st.fragmentation < 0.05, "%f", st.fragmentation);
	cr_assert_eq(st.raw_pages + st.same_pages, 0);
	upg_zpool_destroy(zp);
}

Test(zpool, mem_used_goes_back_down_after_freeing_everything)
{
	struct upg_zpool *zp = zp_create(0, 0);
	uint64_t *h = calloc(4096, sizeof(*h));
	struct upg_zpool_stats full, empty;
	char page[PAGE];
	unsigned char vec;
	uintptr_t last;
	size_t len;

	cr_assert(h);
	for (size_t i = 0; i < 4096; i++) {
		make_page(page, (enum page_kind)(i % 2 ? P_TEXT : P_RANDOM), i);
		h[i] = store(zp, page, 1);
	}
	upg_zpool_stats(zp, &full);
	cr_assert_gt(full.mem_used, 4096 / 2 * PAGE);
	last = (uintptr_t)upg_zpool_test_object_ptr(zp, h[4095], &len) & ~(PAGE - 1ul);
	/* Every other one first: holes only, arenas stay. */
	for (size_t i = 0; i < 4096; i += 2)
		upg_zpool_free(zp, h[i]);
	for (size_t i = 1; i < 4096; i += 2)
		upg_zpool_free(zp, h[i]);
	upg_zpool_stats(zp, &empty);
	cr_assert_eq(empty.pages_stored, 0);
	cr_assert_eq(empty.mem_peak, full.mem_used);
	/* What is left is the arena table: a page or two. */
	cr_assert_leq(empty.mem_used, 2 * PAGE, "%llu bytes still used",
		      (unsigned long long)empty.mem_used);
	cr_assert_eq(empty.fragmentation, 0);
	/* And the pages are gone, not just uncounted (ENOMEM: unmapped). */
	if (mincore((void *)last, PAGE, &vec) == 0)
		cr_assert_eq(vec & 1, 0, "an arena page is still resident");
	else
		cr_assert_eq(errno, ENOMEM);
	/* The empty arenas serve again. */
	h[0] = store(zp, page, 1);
	assert_loads(zp, h[0], page, 1);
	free(h);
	upg_zpool_destroy(zp);
}

/*
 * Compaction: objects freed at random leave the arenas partly empty but
 * held. Draining moves what is left into fewer arenas: the waste goes,
 * every object (pages and multi-page records) loads the same from its
 * new handle, and the pool serves new stores after drain_end. With 3 in
 * 4 freed the arenas are mostly empty; with 1 in 4, mostly full, and the
 * emptiest must move into the free slots of the others (raw pages: one
 * size class, so many arenas in it).
 */
static void drain(unsigned int freed_in_4, bool raw_only)
{
	struct upg_zpool *zp = zp_create(0, 0);
	size_t n = 4096, rec_pages = 4;
	char *pages = malloc(n * rec_pages * PAGE);
	uint64_t *h = calloc(n, sizeof(*h)), seed = 7, moved = 0;
	struct upg_zpool_stats before, after;
	size_t waste, freeable;

	cr_assert(pages && h);
	for (size_t i = 0; i < n; i++) {
		size_t np = i % 8 ? 1 : rec_pages;

		for (size_t k = 0; k < np; k++)
			make_page(pages + (i * rec_pages + k) * PAGE,
				  (enum page_kind)(i % 3 && !raw_only ? P_TEXT : P_RANDOM), i * 8 + k);
		h[i] = store(zp, pages + i * rec_pages * PAGE, np);
	}
	for (size_t i = 0; i < n; i++)
		if (rnd(&seed) % 4 < freed_in_4) {
			upg_zpool_free(zp, h[i]);
			h[i] = 0;
		}
	upg_zpool_stats(zp, &before);
	waste = upg_zpool_waste_bytes(zp);
	cr_assert_gt(waste, before.mem_used * freed_in_4 / 8, "waste %zu of %llu", waste,
		     (unsigned long long)before.mem_used);
	freeable = upg_zpool_drain_begin(zp);
	cr_assert_gt(freeable, waste / 2);
	for (size_t i = 0; i < n; i++) {
		uint64_t nh;

		if (!h[i] || !upg_zpool_draining(zp, h[i]))
			continue;
		cr_assert_eq(upg_zpool_relocate(zp, h[i], &nh), 0);
		cr_assert_neq(nh, h[i]);
		cr_assert(!upg_zpool_draining(zp, nh));
		upg_zpool_free(zp, h[i]);
		h[i] = nh;
		moved++;
	}
	upg_zpool_drain_end(zp);
	cr_assert_gt(moved, 0);
	upg_zpool_stats(zp, &after);
	cr_assert_eq(after.pages_stored, before.pages_stored);
	cr_assert_eq(after.stored_bytes, before.stored_bytes);
	cr_assert_lt(after.mem_used, before.mem_used - waste / 2, "%llu -> %llu",
		     (unsigned long long)before.mem_used, (unsigned long long)after.mem_used);
	cr_assert_lt(upg_zpool_waste_bytes(zp), waste / 4);
	for (size_t i = 0; i < n; i++)
		if (h[i])
			assert_loads(zp, h[i], pages + i * rec_pages * PAGE, i % 8 ? 1 : rec_pages);
	/* In use again: stores land, loads match. */
	h[0] = store(zp, pages, 1);
	assert_loads(zp, h[0], pages, 1);
	free(h);
	free(pages);
	upg_zpool_destroy(zp);
}

Test(zpool, draining_gives_back_the_memory_of_freed_slots)
{
	drain(3, false);
}

Test(zpool, draining_gives_back_waste_spread_over_fuller_arenas)
{
	drain(1, true);	/* raw pages: many arenas of one class */
}

/* ---- max_bytes ------------------------------------------------------ */

static void assert_stats_same(const struct upg_zpool_stats *a,
			      const struct upg_zpool_stats *b)
{
	cr_assert_eq(a->pages_stored, b->pages_stored);
	cr_assert_eq(a->orig_bytes, b->orig_bytes);
	cr_assert_eq(a->stored_bytes, b->stored_bytes);
	cr_assert_eq(a->mem_used, b->mem_used);
	cr_assert_eq(a->same_pages, b->same_pages);
	cr_assert_eq(a->raw_pages, b->raw_pages);
	cr_assert_eq(a->fragmentation, b->fragmentation);
}

#define CAP		(1ul << 20)

/* Fills a pool capped at CAP with random pages; returns how many fit. */
static size_t fill_to_cap(struct upg_zpool *zp, uint64_t *h, size_t max)
{
	char page[PAGE];
	size_t n;
	int ret = 0;

	for (n = 0; n < max; n++) {
		make_page(page, P_RANDOM, n);
		ret = upg_zpool_store(zp, page, 1, &h[n]);
		if (ret)
			break;
	}
	cr_assert_eq(ret, -ENOSPC, "store %zu: %s", n, strerror(-ret));
	return n;
}

Test(zpool, store_past_max_bytes_is_enospc_and_changes_nothing)
{
	struct upg_zpool *zp = zp_create(CAP, 0);
	struct upg_zpool_stats before, after;
	uint64_t h[512], keep = 0xdead;
	char page[PAGE];
	size_t n = fill_to_cap(zp, h, 512);

	/* One page of the cap goes to the arena table. */
	cr_assert_geq(n, CAP / PAGE - 2);
	upg_zpool_stats(zp, &before);
	cr_assert_leq(before.mem_used, CAP);
	make_page(page, P_RANDOM, 9999);
	cr_assert_eq(upg_zpool_store(zp, page, 1, &keep), -ENOSPC);
	cr_assert_eq(keep, 0xdead, "the handle is left alone");
	upg_zpool_stats(zp, &after);
	assert_stats_same(&before, &after);
	cr_assert_eq(after.mem_peak, before.mem_peak);
	cr_assert_eq(after.store_fail_nospc, before.store_fail_nospc + 1);
	for (size_t i = 0; i < n; i++) {
		make_page(page, P_RANDOM, i);
		assert_loads(zp, h[i], page, 1);
	}
	upg_zpool_destroy(zp);
}

Test(zpool, store_succeeds_again_after_frees_at_max_bytes)
{
	struct upg_zpool *zp = zp_create(CAP, 0);
	char page[PAGE];
	uint64_t h[512];
	size_t n = fill_to_cap(zp, h, 512);

	upg_zpool_free(zp, h[n / 2]);
	make_page(page, P_RANDOM, 12345);
	h[n / 2] = store(zp, page, 1);
	assert_loads(zp, h[n / 2], page, 1);
	upg_zpool_destroy(zp);
}

Test(zpool, multi_page_store_past_max_bytes_takes_back_its_pages)
{
	struct upg_zpool *zp = zp_create(CAP / 4, 0);
	struct upg_zpool_stats before, after;
	char (*pages)[PAGE] = malloc(100 * PAGE);
	uint64_t big;

	cr_assert(pages);
	/* The arena table's first page, which stays once counted. */
	make_page(pages[0], P_TEXT, 1);
	store(zp, pages[0], 1);
	upg_zpool_stats(zp, &before);
	/* Room for about 60 raw pages: this fails part way. */
	for (size_t i = 0; i < 100; i++)
		make_page(pages[i], P_RANDOM, 1000 + i);
	cr_assert_eq(upg_zpool_store(zp, pages, 100, &big), -ENOSPC);
	upg_zpool_stats(zp, &after);
	assert_stats_same(&before, &after);
	cr_assert_gt(after.mem_peak, before.mem_peak, "it did fail part way");
	/* And the room is still there for what fits. */
	big = store(zp, pages, 16);
	assert_loads(zp, big, pages, 16);
	free(pages);
	upg_zpool_destroy(zp);
}

/* ---- corruption ----------------------------------------------------- */

static void assert_corruption_is_eio(void (*corrupt)(char *p, size_t len))
{
	struct upg_zpool *zp = zp_create(0, 0);
	char page[PAGE], got[PAGE];
	size_t len;
	uint64_t h;
	char *p;

	make_page(page, P_TEXT, 42);
	h = store(zp, page, 1);
	p = upg_zpool_test_object_ptr(zp, h, &len);
	cr_assert(p && len > 0 && len < PAGE);
	corrupt(p, len);
	cr_assert_eq(upg_zpool_load(zp, h, got, 1), -EIO);
	upg_zpool_free(zp, h);
	upg_zpool_destroy(zp);
}

/* Huge literal lengths: the stream runs past its end. */
static void fill_ff(char *p, size_t len)
{
	memset(p, 0xff, len);
}

/* Matches at offset 0, which LZ4 never writes. */
static void fill_zero(char *p, size_t len)
{
	memset(p, 0, len);
}

/* Half a stream: the page cannot be whole. */
static void zero_second_half(char *p, size_t len)
{
	memset(p + len / 2, 0, len - len / 2);
}

/*
 * A valid LZ4 block of literals only, exactly @len bytes: it decodes, but
 * to fewer bytes than a page.
 */
static void literals_only(char *p, size_t len)
{
	size_t n = len - 2, ext;

	for (;; n--) {
		ext = n < 15 ? 0 : (n - 15) / 255 + 1;
		if (1 + ext + n == len)
			break;
	}
	cr_assert_lt(n, PAGE);
	*p++ = (char)(n < 15 ? n << 4 : 0xf0);
	for (size_t left = n - 15; n >= 15 && ext--; left -= 255)
		*p++ = (char)(left < 255 ? left : 255);
	memset(p, 'x', n);
}

Test(zpool, object_that_decodes_short_of_a_page_loads_as_eio)
{
	char block[PAGE], out[PAGE];

	/* The corruption really is a valid block, just a short one. */
	literals_only(block, 1500);
	cr_assert_eq(LZ4_decompress_safe(block, out, 1500, PAGE), 1493);
	assert_corruption_is_eio(literals_only);
}

Test(zpool, object_filled_with_ff_loads_as_eio)
{
	assert_corruption_is_eio(fill_ff);
}

Test(zpool, object_filled_with_zeros_loads_as_eio)
{
	assert_corruption_is_eio(fill_zero);
}

Test(zpool, object_with_its_second_half_zeroed_loads_as_eio)
{
	assert_corruption_is_eio(zero_second_half);
}

Test(zpool, record_with_a_bad_page_handle_loads_as_eio)
{
	struct upg_zpool *zp = zp_create(0, 0);
	char pages[4][PAGE];
	uint64_t h, *rec, saved;
	size_t len;

	for (size_t i = 0; i < 4; i++)
		make_page(pages[i], P_TEXT, i);
	h = store(zp, pages, 4);
	rec = upg_zpool_test_object_ptr(zp, h, &len);
	cr_assert_eq(len, 4 * sizeof(uint64_t));
	saved = rec[2];
	rec[2] = ~0ull >> (64 - UPG_ZPOOL_HANDLE_BITS);
	cr_assert_eq(upg_zpool_load(zp, h, pages, 4), -EIO);
	rec[2] = saved;
	upg_zpool_free(zp, h);
	upg_zpool_destroy(zp);
}

/* ---- threads -------------------------------------------------------- */

#define NR_THREADS	4
#define NR_CYCLES	60
#define NR_OBJECTS	24

struct worker {
	pthread_t tid;
	struct upg_zpool *zp;
	unsigned int id;
	size_t bad;		/* stores or loads that failed or differed */
};

/* Object @i of a cycle: every fourth has 16 pages, the rest one. */
static size_t object_pages(size_t i)
{
	return i % 4 == 3 ? 16 : 1;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	char *want = malloc(16 * PAGE), *got = malloc(16 * PAGE);
	uint64_t h[NR_OBJECTS];

	if (!want || !got)
		abort();
	for (uint64_t c = 0; c < NR_CYCLES; c++) {
		for (size_t i = 0; i < NR_OBJECTS; i++) {
			uint64_t seed = (w->id * NR_CYCLES + c) * NR_OBJECTS + i;

			for (size_t p = 0; p < object_pages(i); p++)
				make_page(want + p * PAGE, (enum page_kind)((seed + p) % P_NR),
					  seed * 16 + p);
			if (upg_zpool_store(w->zp, want, object_pages(i), &h[i]))
				w->bad++;
		}
		for (size_t i = 0; i < NR_OBJECTS; i++) {
			uint64_t seed = (w->id * NR_CYCLES + c) * NR_OBJECTS + i;

			for (size_t p = 0; p < object_pages(i); p++)
				make_page(want + p * PAGE, (enum page_kind)((seed + p) % P_NR),
					  seed * 16 + p);
			if (upg_zpool_load(w->zp, h[i], got, object_pages(i)) ||
			    memcmp(got, want, object_pages(i) * PAGE))
				w->bad++;
			upg_zpool_free(w->zp, h[i]);
		}
	}
	free(got);
	free(want);
	return NULL;
}

/*
 * Pages of one repeated word all take 8-byte slots and need no encoding,
 * so four threads race on one class's lock and free lists as hard as they
 * can; a slot handed out twice shows as a wrong word.
 */
static void *word_worker_run(void *arg)
{
	struct worker *w = arg;
	char want[PAGE], got[PAGE];
	uint64_t h[256];

	for (uint64_t c = 0; c < 200; c++) {
		for (size_t i = 0; i < 256; i++) {
			make_page(want, P_WORD, (w->id * 200 + c) * 256 + i);
			if (upg_zpool_store(w->zp, want, 1, &h[i]))
				w->bad++;
		}
		/* Every other one first, so slots go back out of order. */
		for (size_t pass = 0; pass < 2; pass++) {
			for (size_t i = (c + pass) % 2; i < 256; i += 2) {
				make_page(want, P_WORD, (w->id * 200 + c) * 256 + i);
				if (upg_zpool_load(w->zp, h[i], got, 1) ||
				    memcmp(got, want, PAGE))
					w->bad++;
				upg_zpool_free(w->zp, h[i]);
			}
		}
	}
	return NULL;
}

static void run_workers(void *(*fn)(void *))
{
	struct upg_zpool *zp = zp_create(0, 0);
	struct worker w[NR_THREADS];
	struct upg_zpool_stats st;

	for (unsigned int i = 0; i < NR_THREADS; i++) {
		w[i] = (struct worker){ .zp = zp, .id = i };
		cr_assert_eq(pthread_create(&w[i].tid, NULL, fn, &w[i]), 0);
	}
	for (unsigned int i = 0; i < NR_THREADS; i++) {
		pthread_join(w[i].tid, NULL);
		cr_expect_eq(w[i].bad, 0, "thread %u: %zu objects lost or wrong",
			     i, w[i].bad);
	}
	upg_zpool_stats(zp, &st);
	cr_assert_eq(st.pages_stored, 0);
	cr_assert_eq(st.stored_bytes, 0);
	cr_assert_leq(st.mem_used, PAGE, "only the arena table is left");
	cr_assert_gt(st.mem_peak, PAGE);
	upg_zpool_destroy(zp);
}

Test(zpool, four_threads_store_load_and_free_without_losing_a_byte, .timeout = 120)
{
	run_workers(worker_run);
}

Test(zpool, four_threads_on_one_size_class_never_share_a_slot, .timeout = 120)
{
	run_workers(word_worker_run);
}

/*
 * Issue 5: store_compressed refuses what would be kept raw, whole and
 * changing nothing, so the tier sends it to the swap store instead.
 */
Test(zpool, store_compressed_refuses_an_object_with_a_page_that_does_not_compress)
{
	struct upg_zpool *zp;
	struct upg_zpool_stats before, after;
	char *pages = malloc(4 * PAGE);
	uint64_t h;

	cr_assert_eq(upg_zpool_create(NULL, &zp), 0);
	make_page(pages, P_RANDOM, 1);
	upg_zpool_stats(zp, &before);
	cr_assert_eq(upg_zpool_store_compressed(zp, pages, 1, &h), -E2BIG);
	for (int i = 0; i < 4; i++)
		make_page(pages + i * PAGE, i == 2 ? P_RANDOM : P_TEXT, (uint64_t)i + 7);
	cr_assert_eq(upg_zpool_store_compressed(zp, pages, 4, &h), -E2BIG);
	upg_zpool_stats(zp, &after);
	cr_assert_eq(after.pages_stored, before.pages_stored);
	cr_assert_eq(after.stored_bytes, before.stored_bytes);
	cr_assert_eq(after.raw_pages, 0);
	/* Text, zero and one-word pages it stores as upg_zpool_store does. */
	make_page(pages + 2 * PAGE, P_ZERO, 3);
	make_page(pages + 3 * PAGE, P_WORD, 4);
	cr_assert_eq(upg_zpool_store_compressed(zp, pages, 4, &h), 0);
	assert_loads(zp, h, pages, 4);
	upg_zpool_free(zp, h);
	upg_zpool_destroy(zp);
	free(pages);
}
