/*
 * The swap file's slot allocator: runs come from a cursor, so consecutive
 * ones are neighbours; freed slots (holes long enough, found past high's
 * free space by wrapping to the start) are reused before the file grows,
 * and growing starts at the free tail below high; -ENOSPC only when no run
 * fits, fragmentation included; runs across 64-bit words free and come
 * back whole; stats count runs exactly; bad arguments are -EINVAL; bad
 * frees abort. Two random walks check it against a byte per slot: one of
 * 100k runs in 2^24 slots, one that keeps running into nr_max.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "swap/slot.h"

TestSuite(swap_slot, .timeout = 10);

static struct upg_slots *t_slots(uint64_t nr_max)
{
	struct upg_slots *s = NULL;

	cr_assert_eq(upg_slots_create(nr_max, &s), 0);
	cr_assert_not_null(s);
	return s;
}

static uint64_t alloc_ok(struct upg_slots *s, unsigned int n)
{
	uint64_t first = UINT64_MAX;
	int ret = upg_slots_alloc(s, n, &first);

	cr_assert_eq(ret, 0, "alloc of %u: %d", n, ret);
	return first;
}

/* Slots 0 .. @nr - 1, one at a time, on an empty allocator. */
static void fill(struct upg_slots *s, uint64_t nr)
{
	for (uint64_t i = 0; i < nr; i++)
		cr_assert_eq(alloc_ok(s, 1), i);
}

static struct upg_slots_stats stats(const struct upg_slots *s)
{
	struct upg_slots_stats st;

	upg_slots_stats(s, &st);
	return st;
}

Test(swap_slot, consecutive_allocs_are_neighbours)
{
	struct upg_slots *s = t_slots(1000);

	cr_assert_eq(alloc_ok(s, 1), 0);
	cr_assert_eq(alloc_ok(s, 1), 1);
	cr_assert_eq(alloc_ok(s, 1), 2);
	cr_assert_eq(alloc_ok(s, 1), 3);
	cr_assert_eq(alloc_ok(s, 5), 4);
	cr_assert_eq(alloc_ok(s, 1), 9);
	cr_assert_eq(upg_slots_high(s), 10);
	cr_assert_eq(stats(s).used, 10);
	upg_slots_destroy(s);
}

Test(swap_slot, freed_slot_is_reused_before_file_grows)
{
	struct upg_slots *s = t_slots(1000);

	fill(s, 8);
	upg_slots_free(s, 3, 1);
	cr_assert_eq(alloc_ok(s, 1), 3);
	cr_assert_eq(upg_slots_high(s), 8);
	cr_assert_eq(alloc_ok(s, 1), 8, "nothing free below high: it grows");
	cr_assert_eq(upg_slots_high(s), 9);
	upg_slots_destroy(s);
}

Test(swap_slot, run_skips_a_shorter_hole_and_the_hole_stays_free)
{
	struct upg_slots *s = t_slots(1000);

	fill(s, 10);
	upg_slots_free(s, 2, 2);
	upg_slots_free(s, 5, 3);
	cr_assert_eq(alloc_ok(s, 3), 5);
	cr_assert_eq(upg_slots_high(s), 10);
	cr_assert_eq(stats(s).free_runs, 1);
	cr_assert_eq(stats(s).largest_free, 2);
	cr_assert_eq(alloc_ok(s, 2), 2);
	cr_assert_eq(stats(s).used, 10);
	upg_slots_destroy(s);
}

Test(swap_slot, alloc_below_high_takes_a_hole_but_never_raises_high)
{
	struct upg_slots *s = t_slots(1024);
	uint64_t first;

	alloc_ok(s, 16);
	upg_slots_free(s, 4, 4);
	cr_assert_eq(upg_slots_alloc_below_high(s, 8, &first), -ENOSPC);
	cr_assert_eq(upg_slots_high(s), 16);
	cr_assert_eq(upg_slots_used(s), 12);
	cr_assert_eq(upg_slots_alloc_below_high(s, 4, &first), 0);
	cr_assert_eq(first, 4);
	cr_assert_eq(upg_slots_used(s), 16);
	upg_slots_destroy(s);
}

Test(swap_slot, search_starts_at_the_cursor_not_at_zero)
{
	struct upg_slots *s = t_slots(1000);

	fill(s, 20);
	upg_slots_free(s, 10, 2);
	cr_assert_eq(alloc_ok(s, 2), 10);	/* the cursor is at 12 now */
	upg_slots_free(s, 3, 1);
	upg_slots_free(s, 15, 1);
	cr_assert_eq(alloc_ok(s, 1), 15);
	cr_assert_eq(alloc_ok(s, 1), 3);
	cr_assert_eq(upg_slots_high(s), 20);
	upg_slots_destroy(s);
}

Test(swap_slot, search_wraps_to_the_start_when_nothing_fits_before_high)
{
	struct upg_slots *s = t_slots(1000);

	fill(s, 20);
	upg_slots_free(s, 10, 2);
	cr_assert_eq(alloc_ok(s, 2), 10);	/* the cursor is at 12 now */
	upg_slots_free(s, 0, 4);
	upg_slots_free(s, 16, 2);
	cr_assert_eq(alloc_ok(s, 3), 0, "[16, 18) is short: wrap, not grow");
	cr_assert_eq(upg_slots_high(s), 20);
	cr_assert_eq(alloc_ok(s, 2), 16);
	cr_assert_eq(upg_slots_high(s), 20);
	upg_slots_destroy(s);
}

Test(swap_slot, run_across_the_cursor_is_found_before_growing)
{
	struct upg_slots *s = t_slots(1000);

	fill(s, 20);
	upg_slots_free(s, 10, 1);
	cr_assert_eq(alloc_ok(s, 1), 10);	/* the cursor is at 11 now */
	upg_slots_free(s, 8, 5);
	cr_assert_eq(alloc_ok(s, 4), 8);
	cr_assert_eq(upg_slots_high(s), 20);
	upg_slots_destroy(s);
}

Test(swap_slot, growing_starts_at_the_free_tail_below_high)
{
	struct upg_slots *s = t_slots(1000);

	fill(s, 10);
	upg_slots_free(s, 8, 2);
	cr_assert_eq(alloc_ok(s, 4), 8);
	cr_assert_eq(upg_slots_high(s), 12);
	cr_assert_eq(stats(s).free_runs, 0);
	upg_slots_destroy(s);
}

Test(swap_slot, alloc_is_enospc_when_full_until_a_slot_is_freed)
{
	struct upg_slots *s = t_slots(100);	/* the last word half used */
	uint64_t first;

	cr_assert_eq(alloc_ok(s, 99), 0);
	cr_assert_eq(alloc_ok(s, 1), 99);
	cr_assert_eq(upg_slots_alloc(s, 1, &first), -ENOSPC);
	cr_assert_eq(upg_slots_high(s), 100);
	upg_slots_free(s, 50, 1);
	cr_assert_eq(alloc_ok(s, 1), 50);
	cr_assert_eq(upg_slots_alloc(s, 1, &first), -ENOSPC);
	cr_assert_eq(stats(s).used, 100);
	upg_slots_destroy(s);
}

Test(swap_slot, run_longer_than_nr_max_is_enospc_and_changes_nothing)
{
	struct upg_slots *s = t_slots(10);
	uint64_t first;

	cr_assert_eq(upg_slots_alloc(s, 11, &first), -ENOSPC);
	cr_assert_eq(upg_slots_high(s), 0);
	cr_assert_eq(stats(s).used, 0);
	cr_assert_eq(alloc_ok(s, 10), 0);
	upg_slots_destroy(s);
}

Test(swap_slot, run_longer_than_any_free_run_is_enospc_with_slots_free)
{
	struct upg_slots *s = t_slots(128);
	struct upg_slots_stats st;
	uint64_t first;

	fill(s, 128);
	for (uint64_t i = 0; i < 128; i += 2)
		upg_slots_free(s, i, 1);
	cr_assert_eq(upg_slots_alloc(s, 2, &first), -ENOSPC);
	st = stats(s);
	cr_assert_eq(st.used, 64);
	cr_assert_eq(st.free_runs, 64);
	cr_assert_eq(st.largest_free, 1);
	cr_assert_float_eq(st.fragmentation, 63.0 / 64.0, 1e-12);
	cr_assert_eq(alloc_ok(s, 1), 0, "single slots still fit");
	/* 1 and the free 2 make a run of two: the failed search is stale. */
	upg_slots_free(s, 1, 1);
	cr_assert_eq(alloc_ok(s, 2), 1);
	upg_slots_destroy(s);
}

Test(swap_slot, run_freed_after_a_failed_search_is_found)
{
	struct upg_slots *s = t_slots(1000);

	fill(s, 10);
	upg_slots_free(s, 3, 1);
	upg_slots_free(s, 6, 1);
	cr_assert_eq(alloc_ok(s, 2), 10, "two single holes: it grows");
	cr_assert_eq(upg_slots_high(s), 12);
	upg_slots_free(s, 4, 1);
	cr_assert_eq(alloc_ok(s, 2), 3, "3 and 4 make a run of two now");
	cr_assert_eq(upg_slots_high(s), 12);
	/* After another failed search for 2, a shorter run is still found. */
	upg_slots_free(s, 8, 1);
	cr_assert_eq(alloc_ok(s, 2), 12);
	cr_assert_eq(alloc_ok(s, 1), 6);
	cr_assert_eq(alloc_ok(s, 1), 8);
	cr_assert_eq(upg_slots_high(s), 14);
	upg_slots_destroy(s);
}

Test(swap_slot, run_across_a_word_boundary_is_freed_and_reused)
{
	struct upg_slots *s = t_slots(1000);

	cr_assert_eq(alloc_ok(s, 60), 0);
	cr_assert_eq(alloc_ok(s, 8), 60);	/* bits 60..63 and 64..67 */
	cr_assert_eq(alloc_ok(s, 60), 68);
	upg_slots_free(s, 60, 8);
	cr_assert_eq(stats(s).free_runs, 1);
	cr_assert_eq(stats(s).largest_free, 8);
	cr_assert_eq(alloc_ok(s, 8), 60);
	cr_assert_eq(upg_slots_high(s), 128);
	/* Three words at once, the middle one whole. */
	upg_slots_free(s, 0, 128);
	cr_assert_eq(stats(s).used, 0);
	cr_assert_eq(alloc_ok(s, 128), 0);
	cr_assert_eq(upg_slots_high(s), 128);
	upg_slots_destroy(s);
}

Test(swap_slot, stats_count_runs_largest_and_fragmentation_exactly)
{
	struct upg_slots *s = t_slots(1000);
	struct upg_slots_stats st;

	fill(s, 200);
	upg_slots_free(s, 0, 3);	/* at the start */
	upg_slots_free(s, 10, 1);
	upg_slots_free(s, 62, 8);	/* across bit 64 */
	upg_slots_free(s, 126, 5);	/* across bit 128 */
	upg_slots_free(s, 195, 5);	/* up to high */
	st = stats(s);
	cr_assert_eq(st.nr_max, 1000);
	cr_assert_eq(st.used, 178);
	cr_assert_eq(st.high, 200);
	cr_assert_eq(st.free_runs, 5);
	cr_assert_eq(st.largest_free, 8);
	cr_assert_float_eq(st.fragmentation, 1.0 - 8.0 / 22.0, 1e-12);
	upg_slots_destroy(s);
}

Test(swap_slot, stats_of_no_free_space_or_one_run_show_no_fragmentation)
{
	struct upg_slots *s = t_slots(64);
	struct upg_slots_stats st = stats(s);

	cr_assert_eq(st.nr_max, 64);
	cr_assert_eq(st.used, 0);
	cr_assert_eq(st.high, 0);
	cr_assert_eq(st.free_runs, 0);
	cr_assert_eq(st.largest_free, 0);
	cr_assert_float_eq(st.fragmentation, 0.0, 1e-12);
	fill(s, 40);
	st = stats(s);
	cr_assert_eq(st.free_runs, 0);
	cr_assert_float_eq(st.fragmentation, 0.0, 1e-12);
	upg_slots_free(s, 0, 40);
	st = stats(s);
	cr_assert_eq(st.high, 40, "high never comes down");
	cr_assert_eq(st.free_runs, 1);
	cr_assert_eq(st.largest_free, 40);
	cr_assert_float_eq(st.fragmentation, 0.0, 1e-12);
	upg_slots_destroy(s);
}

Test(swap_slot, alloc_of_zero_slots_is_einval)
{
	struct upg_slots *s = t_slots(10);
	uint64_t first;

	cr_assert_eq(upg_slots_alloc(s, 0, &first), -EINVAL);
	cr_assert_eq(upg_slots_high(s), 0);
	upg_slots_destroy(s);
}

Test(swap_slot, create_with_nr_max_zero_is_einval)
{
	struct upg_slots *s = NULL;

	cr_assert_eq(upg_slots_create(0, &s), -EINVAL);
	cr_assert_null(s);
	upg_slots_destroy(NULL);
}

/* A build without assert() has nothing to abort: these show as skipped. */
#ifdef NDEBUG
#define WITHOUT_ASSERTS	true
#else
#define WITHOUT_ASSERTS	false
#endif

Test(swap_slot, freeing_a_free_slot_aborts, .signal = SIGABRT,
     .disabled = WITHOUT_ASSERTS)
{
	struct upg_slots *s = t_slots(10);

	fill(s, 4);
	upg_slots_free(s, 2, 1);
	upg_slots_free(s, 2, 1);
}

Test(swap_slot, freeing_at_or_past_high_aborts, .signal = SIGABRT,
     .disabled = WITHOUT_ASSERTS)
{
	struct upg_slots *s = t_slots(10);

	fill(s, 4);
	upg_slots_free(s, 3, 2);
}

/*
 * The reference: a byte per slot, and the runs held now. Checks the
 * allocator's answers against it: no slot handed out twice, high only
 * moves when no free run of n lies below it (and then the run starts at
 * the free tail), -ENOSPC only when no run of n lies below nr_max, and
 * (every CHECK_EVERY steps) used and stats.
 */
struct run {
	uint64_t first;
	unsigned int n;
};

struct model {
	struct upg_slots *s;
	uint8_t *ref;
	uint64_t nr_max, used, high, rng;
	struct run *live;
	size_t nr_live, max_live;
	unsigned long nr_alloc, nr_grow, nr_nospc;
};

#define CHECK_EVERY	4096

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

/*
 * Is there a run of @n free bytes in [0, @end)? Each try looks at its last
 * byte first and back from there, and restarts past the used byte it
 * finds: the model checks every growth, so a byte-at-a-time walk from 0
 * would make the test slow (its allocator is not what is being tested).
 */
static bool ref_has_run(const uint8_t *ref, uint64_t end, uint64_t n)
{
	uint64_t start = 0, i;

	while (n <= end - start) {
		for (i = start + n; i > start && !ref[i - 1]; i--)
			;
		if (i == start)
			return true;
		start = i;
	}
	return false;
}

static void model_init(struct model *m, uint64_t nr_max, size_t max_live,
		       uint64_t seed)
{
	*m = (struct model){ .nr_max = nr_max, .max_live = max_live,
		.rng = seed };
	m->s = t_slots(nr_max);
	m->ref = calloc(nr_max, 1);
	m->live = calloc(max_live, sizeof(*m->live));
	cr_assert(m->ref && m->live);
}

static void model_check(struct model *m)
{
	struct upg_slots_stats st = stats(m->s);
	uint64_t runs = 0, largest = 0, nr_free = 0, len = 0;
	double frag;

	for (uint64_t i = 0; i <= m->high; i++) {
		if (i < m->high && !m->ref[i]) {
			len++;
			continue;
		}
		runs += len != 0;
		nr_free += len;
		largest = len > largest ? len : largest;
		len = 0;
	}
	cr_assert_eq(st.used, m->used);
	cr_assert_eq(st.high, m->high);
	cr_assert_eq(st.free_runs, runs);
	cr_assert_eq(st.largest_free, largest);
	frag = nr_free ? 1.0 - (double)largest / (double)nr_free : 0.0;
	cr_assert_float_eq(st.fragmentation, frag, 1e-12);
}

/* What growth by @n must look like: the run starts at the free tail. */
static void model_check_growth(struct model *m, uint64_t first,
			       unsigned int n)
{
	uint64_t tail = m->high;

	while (tail && !m->ref[tail - 1])
		tail--;
	cr_assert(!ref_has_run(m->ref, m->high, n),
		  "grew for a run of %u that fits below high %" PRIu64,
		  n, m->high);
	cr_assert_eq(first, tail);
	cr_assert_eq(upg_slots_high(m->s), first + n);
}

static void model_alloc(struct model *m, unsigned int n)
{
	uint64_t first = UINT64_MAX;
	int ret = upg_slots_alloc(m->s, n, &first);

	if (ret == -ENOSPC) {
		cr_assert(!ref_has_run(m->ref, m->nr_max, n),
			  "-ENOSPC for a run of %u that fits", n);
		cr_assert_eq(upg_slots_high(m->s), m->high);
		m->nr_nospc++;
		return;
	}
	cr_assert_eq(ret, 0, "alloc of %u: %d", n, ret);
	cr_assert_leq(first + n, m->nr_max);
	for (uint64_t i = first; i < first + n; i++)
		cr_assert_eq(m->ref[i], 0, "slot %" PRIu64 " handed twice", i);
	if (first + n > m->high) {
		model_check_growth(m, first, n);
		m->high = first + n;
		m->nr_grow++;
	} else {
		cr_assert_eq(upg_slots_high(m->s), m->high);
	}
	memset(m->ref + first, 1, n);
	m->used += n;
	m->live[m->nr_live++] = (struct run){ first, n };
	m->nr_alloc++;
}

static void model_free_one(struct model *m)
{
	size_t k = (size_t)(rnd(&m->rng) % m->nr_live);
	struct run r = m->live[k];

	m->live[k] = m->live[--m->nr_live];
	upg_slots_free(m->s, r.first, r.n);
	memset(m->ref + r.first, 0, r.n);
	m->used -= r.n;
}

static void model_fini(struct model *m)
{
	while (m->nr_live)
		model_free_one(m);
	model_check(m);
	cr_assert_eq(stats(m->s).free_runs, m->high ? 1 : 0);
	upg_slots_destroy(m->s);
	free(m->live);
	free(m->ref);
}

/* Mostly short runs; one in eight up to 300 slots, across several words. */
static unsigned int random_len(uint64_t *rng)
{
	uint64_t r = rnd(rng);

	return 1 + (unsigned int)(r % 8 == 0 ? (r >> 8) % 300 : (r >> 8) % 16);
}

Test(swap_slot, random_runs_in_2_pow_24_slots_match_a_byte_per_slot,
     .timeout = 60)
{
	struct model m;
	bool filling = true;

	model_init(&m, 1u << 24, 50000, 0x51075107ull);
	/*
	 * Fill to 40000 runs held (about a million slots), empty down to
	 * 5000 and refill: the file grows, is left full of holes and the
	 * holes are taken again before it grows further.
	 */
	for (unsigned long step = 1; m.nr_alloc < 100000; step++) {
		if (filling ? m.nr_live >= 40000 : m.nr_live <= 5000)
			filling = !filling;
		if (m.nr_live && rnd(&m.rng) % 100 < (filling ? 10u : 90u))
			model_free_one(&m);
		else
			model_alloc(&m, random_len(&m.rng));
		if (step % CHECK_EVERY == 0)
			model_check(&m);
	}
	cr_assert_eq(m.nr_nospc, 0);
	cr_assert_gt(m.high, 1000000, "high only got to %" PRIu64, m.high);
	cr_assert_gt(m.nr_grow, 1000, "grew only %lu times", m.nr_grow);
	model_fini(&m);
}

Test(swap_slot, random_runs_near_nr_max_are_enospc_only_when_none_fits,
     .timeout = 30)
{
	struct model m;

	model_init(&m, 5000, 5000, 0xC0FFEEull);
	for (unsigned long step = 1; m.nr_alloc < 20000; step++) {
		if (m.nr_live && rnd(&m.rng) % 100 < 45)
			model_free_one(&m);
		else
			model_alloc(&m, 1 + (unsigned int)(rnd(&m.rng) % 40));
		if (step % 256 == 0)
			model_check(&m);
	}
	cr_assert_gt(m.nr_nospc, 100, "only %lu -ENOSPC", m.nr_nospc);
	cr_assert_gt(m.high, 5000 - 40, "high only got to %" PRIu64, m.high);
	model_fini(&m);
}
