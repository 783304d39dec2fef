/*
 * Option parsing shared by the library and its tools: the one table of
 * UPAGER_* knobs feeds the environment parser, upg_options_set() and the
 * verbose dump.
 */
#ifndef UPG_OPTIONS_H
#define UPG_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <upager/upager.h>


static inline bool upg_is_percent(size_t v)
{
	return v >= UPG_PERCENT(0);
}

static inline unsigned int upg_percent_of(size_t v)
{
	return (unsigned int)(v - UPG_PERCENT(0));
}

/*
 * Watermark defaults, in % of the budget, each a gap below the next (the
 * budget, then high; see upg_level_bytes): the budget is used nearly
 * whole, as a memory cgroup's limit is (90 % and 95 % left 7 % of it
 * unused on average: uniform and zipf at 50 % of 2 GiB ran 0.76-0.82x
 * kernel-zram against 0.91x at these), and a small one still leaves the
 * evictor a few steps of room before fills wait.
 */
#define UPG_LOW_WATERMARK_PCT	97
#define UPG_HIGH_WATERMARK_PCT	99
#define UPG_WATERMARK_GAP	(1ul << 20)

#define UPG_FAULT_THREADS_MAX	256	/* uffd readers, set or by default */

/*
 * A watermark in bytes: @v as set (bytes, or UPG_PERCENT of @budget), or
 * @dflt_pct of @budget when @v is 0, at most @below less a gap
 * (UPG_WATERMARK_GAP, or an eighth of a smaller budget; @below is at
 * most @budget).
 */
static inline size_t upg_level_bytes(size_t v, size_t budget, unsigned int dflt_pct,
				     size_t below)
{
	size_t dflt = budget / 100 * dflt_pct;
	size_t gap = budget / 8 < UPG_WATERMARK_GAP ? budget / 8 : UPG_WATERMARK_GAP;

	if (v)
		return upg_is_percent(v) ? budget / 100 * upg_percent_of(v) : v;
	below = below > gap ? below - gap : 0;
	return dflt < below ? dflt : below;
}

/* Both watermarks of @o for @budget, in bytes. */
static inline void upg_watermarks(const struct upg_options *o, size_t budget,
				  size_t *low, size_t *high)
{
	*high = upg_level_bytes(o->high_watermark, budget, UPG_HIGH_WATERMARK_PCT, budget);
	*low = upg_level_bytes(o->low_watermark, budget, UPG_LOW_WATERMARK_PCT, *high);
}

/* Check the fields that cannot be checked one by one. */
int upg_options_validate(const struct upg_options *opts);

/* Log every option and its value at info level. */
void upg_options_dump(const struct upg_options *opts);

#endif
