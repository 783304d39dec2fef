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

/* Watermark defaults, in % of the budget. */
#define UPG_LOW_WATERMARK_PCT	90
#define UPG_HIGH_WATERMARK_PCT	95

/*
 * A watermark in bytes: @v as set (bytes, or UPG_PERCENT of @budget), or
 * @dflt_pct of @budget when @v is 0.
 */
static inline size_t upg_level_bytes(size_t v, size_t budget, unsigned int dflt_pct)
{
	if (!v)
		return budget / 100 * dflt_pct;
	return upg_is_percent(v) ? budget / 100 * upg_percent_of(v) : v;
}

/* Check the fields that cannot be checked one by one. */
int upg_options_validate(const struct upg_options *opts);

/* Log every option and its value at info level. */
void upg_options_dump(const struct upg_options *opts);

#endif
