/*
 * Page content for populating a region: what the engines compress. The
 * same (seed, page) always gives the same bytes, so a run can verify pages
 * after the timed phase and every engine compresses the same data.
 */
#ifndef UPG_BENCH_CONTENT_H
#define UPG_BENCH_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"

#define BENCH_PAGE	4096u

/* Write page @page_nr's content for @c into @dst (BENCH_PAGE bytes). */
void bench_content_fill(enum bench_content c, uint64_t seed, uint64_t page_nr,
			void *dst);

/* 64-bit checksum of a page; writes in the timed phase change it. */
uint64_t bench_page_sum(const void *page);

#endif
