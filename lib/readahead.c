/*
 * Readahead streams (readahead.h). A stream is a slot holding the block
 * where its last window ended. A fault at exactly that block continues
 * the stream: what the window brought in was used, so the window doubles
 * (up to UPG_RA_MAX_BYTES). A fault anywhere else takes the next slot
 * round-robin as a new stream with no window yet; its next fault, at the
 * following block, starts one. A stream that stops leaves its last window
 * unconfirmed: counted as misses when its slot is taken.
 */
#include "core.h"
#include "readahead.h"

static size_t ld(const size_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static unsigned int ldu(const unsigned int *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

unsigned int upg_ra_window(struct upg_region *r, struct upg_counters *c, size_t b)
{
	unsigned int max = UPG_RA_MAX_BYTES >> r->block_shift;
	struct upg_ra_stream *s;
	unsigned int i, w;

	if (!max)
		return 0;	/* blocks of 512 KiB and more: no readahead */
	for (i = 0; i < UPG_RA_STREAMS; i++) {
		s = &r->ra.s[i];
		if (ld(&s->next) != b || !b)
			continue;
		w = ldu(&s->window);
		upg_stat_add(c, UPG_STAT_readahead_hits, w);
		w = w ? 2 * w : 1;
		return w < max ? w : max;
	}
	/* A new stream: its next fault, at b + 1, continues it. */
	i = __atomic_fetch_add(&r->ra.victim, 1, __ATOMIC_RELAXED) % UPG_RA_STREAMS;
	s = &r->ra.s[i];
	upg_stat_add(c, UPG_STAT_readahead_misses, ldu(&s->window));
	__atomic_store_n(&s->window, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->next, b + 1, __ATOMIC_RELAXED);
	return 0;
}

void upg_ra_done(struct upg_region *r, struct upg_counters *c, size_t b, unsigned int n)
{
	/* The stream that matched b, if any, moves its end past the window. */
	for (unsigned int i = 0; i < UPG_RA_STREAMS; i++) {
		struct upg_ra_stream *s = &r->ra.s[i];

		if (ld(&s->next) != b)
			continue;
		__atomic_store_n(&s->window, n, __ATOMIC_RELAXED);
		__atomic_store_n(&s->next, b + 1 + n, __ATOMIC_RELAXED);
		break;
	}
	upg_stat_add(c, UPG_STAT_readahead_blocks, n);
}
