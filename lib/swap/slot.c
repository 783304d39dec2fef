/*
 * The swap file's slot allocator (the policy is in slot.h): one bit per
 * slot, set while the slot is handed out, searched a 64-bit word at a time.
 *
 * A search for a run of n looks at starts from the cursor up to high, then
 * from 0 up to the cursor, always within high; only when that finds
 * nothing does the file grow. It then grows by as little as it can: the
 * run starts where the free slots just below high begin, so n - (that
 * tail) new slots are added rather than n.
 *
 * A search that finds nothing has walked all of [0, high), and would walk
 * it again for each later request just as long while nothing is freed:
 * in a fragmented file every eviction would pay a full scan. So `nofit`
 * remembers the shortest run known not to fit below high, and a free that
 * joins runs into one that long forgets it. Checking that costs a free at
 * most 2 * nofit bits, and nofit is never more than a request that failed.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "slot.h"

#define WORD_BITS	64u
#define NOFIT_UNKNOWN	UINT64_MAX

struct upg_slots {
	/*
	 * nr_max bits, mmapped with MAP_NORESERVE: only the pages under
	 * high are ever touched, so a large nr_max costs address space, not
	 * memory. Bits at or above high are always clear.
	 */
	uint64_t *map;
	size_t map_len;
	uint64_t nr_max;
	uint64_t used;
	uint64_t high;
	uint64_t cursor;	/* <= high */
	/*
	 * Every free run below high is shorter than this (NOFIT_UNKNOWN:
	 * no bound known). Set by a search that fails, forgotten by a free
	 * that makes a run this long; taking slots or raising high makes
	 * no run longer, so neither touches it.
	 */
	uint64_t nofit;
};

/*
 * The first bit in [@pos, @end) that is set (@set) or clear, or @end.
 * Only the first word needs a shift; after it, whole words.
 */
static uint64_t next_bit(const uint64_t *map, uint64_t pos, uint64_t end,
			 bool set)
{
	uint64_t flip = set ? 0 : ~0ull;

	while (pos < end) {
		uint64_t w = (map[pos / WORD_BITS] ^ flip) >> (pos % WORD_BITS);

		if (w) {
			pos += (uint64_t)__builtin_ctzll(w);
			return pos < end ? pos : end;
		}
		pos = (pos | (WORD_BITS - 1)) + 1;
	}
	return end;
}

/* One past the last set bit in [@lo, @end), or @lo if none is. */
static uint64_t prev_set_end(const uint64_t *map, uint64_t lo, uint64_t end)
{
	while (end > lo) {
		uint64_t i = (end - 1) / WORD_BITS;
		unsigned int keep = (unsigned int)((end - 1) % WORD_BITS) + 1;
		uint64_t w = map[i];

		if (keep < WORD_BITS)
			w &= (1ull << keep) - 1;
		if (w) {
			end = i * WORD_BITS + WORD_BITS -
			      (uint64_t)__builtin_clzll(w);
			return end > lo ? end : lo;
		}
		end = i * WORD_BITS;
	}
	return lo;
}

/*
 * Set (@set) or clear [@first, @first + @n), a word at a time; each bit
 * must be in the other state first.
 */
static void mark(uint64_t *map, uint64_t first, uint64_t n, bool set)
{
	uint64_t end = first + n;

	(void)set;	/* only asserted: the xor below sets or clears */
	while (first < end) {
		unsigned int lo = (unsigned int)(first % WORD_BITS);
		uint64_t len = WORD_BITS - lo;
		uint64_t mask, *w = &map[first / WORD_BITS];

		if (len > end - first)
			len = end - first;
		mask = (len == WORD_BITS ? ~0ull : (1ull << len) - 1) << lo;
		assert((*w & mask) == (set ? 0 : mask));
		*w ^= mask;
		first += len;
	}
}

/*
 * The first run of @n clear bits that starts in [@from, @start_end) and
 * ends by @end. Each step reads on from just past a set bit, so the
 * cost is O((end - from) / 64 + free runs crossed).
 */
static bool find_run(const uint64_t *map, uint64_t from, uint64_t start_end,
		     uint64_t end, uint64_t n, uint64_t *first)
{
	uint64_t pos = from, set;

	for (;;) {
		pos = next_bit(map, pos, start_end, false);
		if (pos == start_end || n > end - pos)
			return false;
		set = next_bit(map, pos, pos + n, true);
		if (set == pos + n) {
			*first = pos;
			return true;
		}
		pos = set + 1;
	}
}

int upg_slots_create(uint64_t nr_max, struct upg_slots **out)
{
	struct upg_slots *s;
	uint64_t nr_words;

	if (!nr_max)
		return -EINVAL;
	nr_words = nr_max / WORD_BITS + (nr_max % WORD_BITS != 0);
	if (nr_words > SIZE_MAX / sizeof(uint64_t))
		return -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->map_len = (size_t)nr_words * sizeof(uint64_t);
	s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s->map == MAP_FAILED) {
		free(s);
		return -ENOMEM;
	}
	s->nr_max = nr_max;
	s->nofit = NOFIT_UNKNOWN;
	*out = s;
	return 0;
}

void upg_slots_destroy(struct upg_slots *s)
{
	if (!s)
		return;
	munmap(s->map, s->map_len);
	free(s);
}

/* Below high: from the cursor to high, then from 0 to the cursor. */
static bool find_below_high(struct upg_slots *s, uint64_t n, uint64_t *first)
{
	if (n > s->high - s->used || n >= s->nofit)
		return false;
	if (find_run(s->map, s->cursor, s->high, s->high, n, first) ||
	    find_run(s->map, 0, s->cursor, s->high, n, first))
		return true;
	s->nofit = n;
	return false;
}

static int alloc(struct upg_slots *s, unsigned int n, bool may_raise, uint64_t *first)
{
	uint64_t at;

	if (!n)
		return -EINVAL;
	if (!find_below_high(s, n, &at)) {
		if (!may_raise)
			return -ENOSPC;
		/* The free tail below high, if any, becomes the run's start. */
		at = prev_set_end(s->map, 0, s->high);
		if (n > s->nr_max - at)
			return -ENOSPC;
		assert(at + n > s->high);	/* else the search found it */
		s->high = at + n;
	}
	mark(s->map, at, n, true);
	s->used += n;
	s->cursor = at + n;
	assert(s->used <= s->high && s->high <= s->nr_max);
	*first = at;
	return 0;
}

int upg_slots_alloc(struct upg_slots *s, unsigned int n, uint64_t *first)
{
	return alloc(s, n, true, first);
}

int upg_slots_alloc_below_high(struct upg_slots *s, unsigned int n, uint64_t *first)
{
	return alloc(s, n, false, first);
}

uint64_t upg_slots_used(const struct upg_slots *s)
{
	return s->used;
}

/*
 * Would [@first, @first + @n), once clear, join the free runs on each side
 * into one of nofit or more? Looks at most nofit - @n slots each way.
 */
static bool joins_long_run(const struct upg_slots *s, uint64_t first,
			   uint64_t n)
{
	uint64_t end = first + n, need, lo, hi, left, right;

	if (n >= s->nofit)
		return true;
	need = s->nofit - n;
	lo = first > need ? first - need : 0;
	hi = s->high - end > need ? end + need : s->high;
	left = first - prev_set_end(s->map, lo, first);
	right = next_bit(s->map, end, hi, true) - end;
	return left + right >= need;
}

void upg_slots_free(struct upg_slots *s, uint64_t first, unsigned int n)
{
	assert(n >= 1 && first < s->high && n <= s->high - first);
	assert(s->used >= n);
	mark(s->map, first, n, false);
	s->used -= n;
	if (s->nofit != NOFIT_UNKNOWN && joins_long_run(s, first, n))
		s->nofit = NOFIT_UNKNOWN;
}

uint64_t upg_slots_high(const struct upg_slots *s)
{
	return s->high;
}

void upg_slots_stats(const struct upg_slots *s, struct upg_slots_stats *st)
{
	uint64_t pos = 0, start, free_total = 0;

	*st = (struct upg_slots_stats){ .nr_max = s->nr_max, .used = s->used,
		.high = s->high };
	while ((start = next_bit(s->map, pos, s->high, false)) < s->high) {
		pos = next_bit(s->map, start, s->high, true);
		st->free_runs++;
		free_total += pos - start;
		if (pos - start > st->largest_free)
			st->largest_free = pos - start;
	}
	/* Every used slot is below high. */
	assert(free_total == s->high - s->used);
	if (free_total)
		st->fragmentation = 1.0 - (double)st->largest_free /
					  (double)free_total;
}
