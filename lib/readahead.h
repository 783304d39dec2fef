/*
 * Readahead: a fault that continues a sequential or strided stream brings
 * the stream's next blocks in with it, so its next accesses do not fault.
 * Streams are found per region from the faults alone (a mapped page's
 * accesses are invisible): a fault where a stream's window ended
 * continues it and doubles the window; anything else starts a new stream
 * with none.
 */
#ifndef UPG_READAHEAD_H
#define UPG_READAHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct upg_region;
struct upg_counters;

/* Streams tracked per region: one per thread walking its own part. */
#define UPG_RA_STREAMS		4
/*
 * The largest window. Measured (upager-bench seq read, 1 GiB, 25 %
 * budget, 2 jobs, 3 runs each): from the swap store, 512 KiB gave
 * 257-282 k ops/s and op p99 147-156 us against 207-238 k and 360-426 us
 * at 256 KiB (under 1 % of ops wait for a window); from the zpool (text)
 * the same ops/s, p99 90-115 us against 360-377. 128 KiB lost both.
 */
#define UPG_RA_MAX_BYTES	(512u << 10)

/* The widest stride looked for, in blocks. */
#define UPG_RA_MAX_STRIDE	64

struct upg_ra_stream {
	size_t next;		/* the block where the window ends */
	size_t last;		/* the last block the stream faulted on or read ahead */
	size_t stride;		/* blocks between its accesses: 1 sequential */
	unsigned int window;	/* blocks brought in with the last fault */
	/*
	 * One of its faults was a write: its blocks are written too, so they
	 * keep no clean copy (pager.c): each would cost a write-protect fault.
	 */
	bool wrote;
};

struct upg_ra {
	struct upg_ra_stream s[UPG_RA_STREAMS];
	unsigned int victim;	/* the slot a new stream takes */
};

/*
 * A fault at block @b of @r (a write if @write): how many blocks after it
 * to bring in, every *@stride blocks (b + stride, b + 2 stride, ...), and
 * in *@read_only whether none of the stream's faults wrote. The caller
 * brings in what it can and reports that with upg_ra_done(). Racy by
 * design (relaxed, unlocked): a wrong guess costs a fault or a block
 * brought in for nothing, never data.
 */
unsigned int upg_ra_window(struct upg_region *r, struct upg_counters *c, size_t b,
			   bool write, size_t *stride, bool *read_only);
/* @n blocks after @b were brought in (n may be below the window asked). */
void upg_ra_done(struct upg_region *r, struct upg_counters *c, size_t b, unsigned int n,
		 size_t stride);

#endif
