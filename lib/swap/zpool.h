/*
 * The in-RAM compressed page store (zpool), the first tier behind resident
 * memory. A handle names one stored object of 1 to 512 pages; it goes in
 * bits 12-63 of a block's state word (pagestate.h), so it fits in
 * UPG_ZPOOL_HANDLE_BITS and is never 0. Calls on different handles may run
 * on any threads at once; the caller must not free a handle while another
 * thread loads it.
 */
#ifndef UPG_SWAP_ZPOOL_H
#define UPG_SWAP_ZPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UPG_ZPOOL_PAGE		4096
#define UPG_ZPOOL_HANDLE_BITS	52
#define UPG_ZPOOL_MAX_PAGES	512	/* one 2 MiB block */

struct upg_zpool;

struct upg_zpool_config {
	/*
	 * Cap on the memory the pool holds (arena pages in use plus its
	 * index), like zram's mem_limit; 0 means no cap.
	 */
	size_t max_bytes;
	/*
	 * A page whose LZ4 output is longer is kept raw: decoding it would
	 * cost more than it saves. 0 means 3/4 of a page; at most 4095.
	 */
	size_t raw_threshold;
};

/* @cfg may be NULL (no cap, default threshold). 0, -EINVAL or -ENOMEM. */
int upg_zpool_create(const struct upg_zpool_config *cfg, struct upg_zpool **out);
void upg_zpool_destroy(struct upg_zpool *zp);	/* NULL is fine */

/*
 * Store @nr_pages (1 to UPG_ZPOOL_MAX_PAGES) consecutive pages from @src,
 * which must not be managed memory, as one object. Returns 0 and sets
 * *@handle, or a negative errno with nothing stored:
 *   -ENOSPC  it would pass max_bytes
 *   -ENOMEM  no memory for a new arena
 *   -EINVAL  @nr_pages out of range
 */
int upg_zpool_store(struct upg_zpool *zp, const void *src, size_t nr_pages,
		    uint64_t *handle);
/*
 * As upg_zpool_store(), but a page that does not compress (it would be
 * kept raw) refuses the whole object with -E2BIG, nothing stored: the
 * caller has a better place for it (the tier: its swap store). Storing
 * it raw and freeing it again costs the arena's page a fault and a
 * MADV_DONTNEED (a TLB shoot-down) each time.
 */
int upg_zpool_store_compressed(struct upg_zpool *zp, const void *src, size_t nr_pages,
			       uint64_t *handle);

/*
 * Decode an object into @dst; @nr_pages must be what was stored. The
 * object stays stored. Returns 0, -EIO if the stored bytes do not decode
 * to exactly the pages (@dst is then garbage, never quietly wrong), or
 * -EINVAL if @nr_pages does not match.
 */
int upg_zpool_load(struct upg_zpool *zp, uint64_t handle, void *dst,
		   size_t nr_pages);

void upg_zpool_free(struct upg_zpool *zp, uint64_t handle);

/* Bytes of slots the object holds, rounding included (0 for zero pages). */
size_t upg_zpool_object_bytes(struct upg_zpool *zp, uint64_t handle);

/*
 * Compaction. Memory the pool holds beyond its slots in use (freed slots
 * in arenas still in use) is upg_zpool_waste_bytes(). To give it back:
 * upg_zpool_drain_begin() takes the emptiest arenas of each size class
 * out of use (no new object goes there), as many as the class's other
 * arenas have free slots for, and returns about the bytes that emptying
 * them would free; for each stored object upg_zpool_draining() says is in one,
 * its owner (only it knows where its handle lives) makes a copy with
 * upg_zpool_relocate() (0, -ENOSPC or -ENOMEM: nothing copied), puts the
 * new handle where the old one was and frees the old one; an arena whose
 * last slot goes is released. upg_zpool_drain_end() puts the arenas not
 * emptied back in use. One drain at a time; nobody may free the object
 * being relocated meanwhile.
 */
size_t upg_zpool_waste_bytes(struct upg_zpool *zp);
size_t upg_zpool_drain_begin(struct upg_zpool *zp);
bool upg_zpool_draining(struct upg_zpool *zp, uint64_t handle);
int upg_zpool_relocate(struct upg_zpool *zp, uint64_t handle, uint64_t *out);
void upg_zpool_drain_end(struct upg_zpool *zp);

/* Pages the object holds (what upg_zpool_store() was given). */
size_t upg_zpool_object_pages(uint64_t handle);

/*
 * Gauges of what is stored now, except store_fail_nospc (a counter) and
 * mem_peak. Read without a lock: fields may be skewed by stores in flight.
 */
struct upg_zpool_stats {
	uint64_t pages_stored;
	uint64_t orig_bytes;		/* pages_stored * 4096 */
	uint64_t stored_bytes;		/* page payload after compression */
	uint64_t mem_used;		/* arena pages in use + index */
	uint64_t mem_peak;
	uint64_t same_pages;		/* all one 8-byte word, zero included */
	uint64_t raw_pages;		/* incompressible, kept raw */
	uint64_t store_fail_nospc;	/* stores refused at max_bytes */
	double fragmentation;		/* 1 - payload / slot bytes in use */
};

void upg_zpool_stats(struct upg_zpool *zp, struct upg_zpool_stats *st);

/*
 * Tests only: where the bytes of a 1-page object are and how many (*@len),
 * so a test can corrupt them. NULL for a zero page, which has none.
 */
void *upg_zpool_test_object_ptr(struct upg_zpool *zp, uint64_t handle,
				size_t *len);

#endif
