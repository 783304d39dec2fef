/*
 * Readahead streams (readahead.h). A stream is a slot holding the block
 * where its last window ended. A fault at exactly that block continues
 * the stream: what the window brought in was used, so the window doubles
 * (up to UPG_RA_MAX_BYTES). Any other fault first looks for a stream
 * that has not started yet and faulted a few blocks before it, the
 * blocks between left alone (evicted or never touched): the two make a
 * strided stream (its next fault due one stride on); one whose skipped
 * blocks turn out in use becomes sequential. Else it takes
 * the next slot round-robin as a new stream, guessed sequential, with no
 * window yet. A stream that stops leaves its last window unconfirmed:
 * counted as misses when its slot is taken.
 */
#include <string.h>

#include "core.h"
#include "pagestate.h"
#include "readahead.h"
#include "testing.h"

static size_t ld(const size_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static unsigned int ldu(const unsigned int *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void st(size_t *v, size_t x)
{
	__atomic_store_n(v, x, __ATOMIC_RELAXED);
}

static bool ld_wrote(const struct upg_ra_stream *s)
{
	return __atomic_load_n(&s->wrote, __ATOMIC_RELAXED);
}

/*
 * Were the blocks between @last and @b left alone, as a strided stream
 * leaves them? A block in memory there (in use, or being filled) says the
 * two faults are a sequential stream whose neighbour came in some other
 * way: paired as a stride of 2, its windows would bring in every other
 * block, the blocks between would fault one by one and pair again, and
 * the stream would never get back its one read a window (seen: sequential
 * reads from the swap store at a fifth of their speed, run after run).
 */
static bool gap_untouched(const struct upg_region *r, size_t last, size_t b)
{
	for (size_t k = last + 1; k < b; k++) {
		enum upg_ps st = upg_ps_state(__atomic_load_n(&r->state[k], __ATOMIC_RELAXED));

		if (st != UPG_PS_ABSENT && st != UPG_PS_INACTIVE && st != UPG_PS_COMPRESSED)
			return false;
	}
	return true;
}

/* A stream not started yet whose last fault was a stride before @b. */
static bool pair_strided(struct upg_region *r, size_t b, bool write)
{
	for (unsigned int i = 0; i < UPG_RA_STREAMS; i++) {
		struct upg_ra_stream *s = &r->ra.s[i];
		size_t last = ld(&s->last);

		if (ldu(&s->window) || ld(&s->stride) != 1 || !ld(&s->next) ||
		    last >= b || b - last < 2 || b - last > UPG_RA_MAX_STRIDE ||
		    !gap_untouched(r, last, b))
			continue;
		st(&s->stride, b - last);
		__atomic_store_n(&s->wrote, ld_wrote(s) || write, __ATOMIC_RELAXED);
		st(&s->last, b);
		st(&s->next, b + (b - last));
		return true;
	}
	return false;
}

unsigned int upg_ra_window(struct upg_region *r, struct upg_counters *c, size_t b,
			   bool write, size_t *stride, bool *read_only)
{
	unsigned int max = UPG_RA_MAX_BYTES >> r->block_shift;
	struct upg_ra_stream *s;
	unsigned int i, w;

	*read_only = false;
	if (!max)
		return 0;	/* blocks of 512 KiB and more: no readahead */
	for (i = 0; i < UPG_RA_STREAMS; i++) {
		s = &r->ra.s[i];
		if (ld(&s->next) != b || !b)
			continue;
		w = ldu(&s->window);
		upg_stat_add(c, UPG_STAT_readahead_hits, w);
		*stride = ld(&s->stride) ? ld(&s->stride) : 1;
		/* The blocks its windows skipped are in use: it is sequential. */
		if (*stride > 1 && !gap_untouched(r, b - *stride, b)) {
			*stride = 1;
			st(&s->stride, 1);
		}
		if (write && !ld_wrote(s))
			__atomic_store_n(&s->wrote, true, __ATOMIC_RELAXED);
		*read_only = !ld_wrote(s);
		w = w ? 2 * w : 1;
		return w < max ? w : max;
	}
	if (pair_strided(r, b, write))
		return 0;
	/* A new stream: if its next fault is at b + 1, it continues it. */
	i = __atomic_fetch_add(&r->ra.victim, 1, __ATOMIC_RELAXED) % UPG_RA_STREAMS;
	s = &r->ra.s[i];
	upg_stat_add(c, UPG_STAT_readahead_misses, ldu(&s->window));
	__atomic_store_n(&s->window, 0, __ATOMIC_RELAXED);
	st(&s->stride, 1);
	__atomic_store_n(&s->wrote, write, __ATOMIC_RELAXED);
	st(&s->last, b);
	st(&s->next, b + 1);
	return 0;
}

void upg_ra_done(struct upg_region *r, struct upg_counters *c, size_t b, unsigned int n,
		 size_t stride)
{
	/* The stream that matched b, if any, moves its end past the window. */
	for (unsigned int i = 0; i < UPG_RA_STREAMS; i++) {
		struct upg_ra_stream *s = &r->ra.s[i];

		if (ld(&s->next) != b)
			continue;
		__atomic_store_n(&s->window, n, __ATOMIC_RELAXED);
		st(&s->last, b + n * stride);
		st(&s->next, b + (n + 1) * stride);
		break;
	}
	upg_stat_add(c, UPG_STAT_readahead_blocks, n);
}

void upg_test_ra_forget(struct upg_region *r)
{
	memset(&r->ra, 0, sizeof(r->ra));
}
