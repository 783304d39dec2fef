/*
 * The tiered store behind resident memory: the zpool (LZ4 in RAM) first,
 * then, when a swap store is configured, a file or block device written
 * through io.c. The pager sees one store: it stores an object of 1 to 512
 * pages, gets a handle for the block's state word, and loads or frees it;
 * where the object lives meanwhile is the tier's business.
 *
 * Without a swap store the tier is the zpool itself: handles are zpool
 * handles and every call goes straight through (the pager's own zpool
 * compaction still walks them). With one, a handle names an entry of the
 * tier's table, which says where the object is now:
 *
 *   ZPOOL --writeback--> BATCH --write done--> FILE
 *   (store) ---------------^  (incompressible, or the zpool full)
 *
 * The zpool keeps under its share: past it, a writer thread takes its
 * oldest entries (store order, as zswap's LRU), decompresses them into a
 * write batch, and writes the batch to neighbouring slots of the store in
 * as few writes as the slots allow. Pages that do not compress go to a
 * batch at once. A file entry stays where it is when loaded, so a clean
 * copy that is evicted again costs no write. Each page on the store has a
 * checksum (XXH3, libxxhash); a mismatch or a failed read loads as -EIO,
 * never as wrong data.
 *
 * If a write fails (an I/O error, the store full), its pages stay in the
 * batch's memory, which counts as the tier's (no loss), the store is
 * marked degraded and takes no more writes; stores then go to the zpool
 * only, and when it is full the pager's OOM policy decides.
 */
#ifndef UPG_SWAP_TIER_H
#define UPG_SWAP_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zpool.h"

struct upg_tier;

struct upg_tier_config {
	struct upg_zpool_config zpool;
	/* The swap store (io.h: a directory, a new path, a device); NULL: none. */
	const char *swap_path;
	uint64_t swap_size;		/* its most bytes (0: a device's size) */
	/*
	 * The zpool's share: past it, its oldest entries are written back.
	 * 0: zpool.max_bytes (which then stays a hard cap too).
	 */
	size_t zpool_share;
	unsigned int readers;		/* threads loading at once (io.h) */
	bool no_tmpfile, no_direct;	/* tests: io.h's fallbacks */
};

/* 0, or a negative errno (a swap store that cannot be opened: logged). */
int upg_tier_create(const struct upg_tier_config *cfg, struct upg_tier **out);
/* No load may be in flight. NULL is fine. */
void upg_tier_destroy(struct upg_tier *t);

/* Is a swap store behind the zpool (handles are then the tier's own)? */
bool upg_tier_has_store(const struct upg_tier *t);
/* The zpool, for the pager's compaction when there is no swap store. */
struct upg_zpool *upg_tier_zpool(struct upg_tier *t);

/*
 * As upg_zpool_store(), and the same errors: -ENOSPC when neither the
 * zpool nor the store has room (or the store is degraded).
 */
int upg_tier_store(struct upg_tier *t, const void *src, size_t nr_pages, uint64_t *handle);
/*
 * As upg_zpool_load(): 0, -EIO (undecodable, a checksum mismatch, a read
 * error: @dst is then garbage, never handed on), -EINVAL. May wait for
 * a read from the store. The caller must not free @handle meanwhile.
 */
int upg_tier_load(struct upg_tier *t, uint64_t handle, void *dst, size_t nr_pages);
/*
 * Load @n objects at once (a stream's readahead): object k, @handles[k]
 * of @nr_pages[k] pages, into @dsts[k]; its result in @rets[k]. A handle
 * 0 is skipped. Objects on the store whose slots and destinations both
 * follow each other are read in one I/O. @n is at most
 * UPG_TIER_LOAD_MANY_MAX.
 */
#define UPG_TIER_LOAD_MANY_MAX	129	/* a faulting block and 128 read ahead */
void upg_tier_load_many(struct upg_tier *t, unsigned int n, const uint64_t *handles,
			const size_t *nr_pages, uint8_t *const *dsts, int *rets);
void upg_tier_free(struct upg_tier *t, uint64_t handle);

size_t upg_tier_object_pages(struct upg_tier *t, uint64_t handle);
/*
 * The zpool bytes the object took when stored (0 for one stored straight
 * to the store): what a clean copy is charged, the same for as long as
 * the handle lives, wherever the object goes meanwhile.
 */
size_t upg_tier_object_bytes(struct upg_tier *t, uint64_t handle);

/*
 * With a swap store, compact the zpool (zpool.h, Compaction) between
 * upg_zpool_drain_begin() and _end() on upg_tier_zpool(): relocate the
 * objects in the arenas being drained. Returns how many moved. The
 * tier's handles do not change. Without a store the handles are the
 * zpool's own, held by the caller, which moves them itself (returns 0).
 */
size_t upg_tier_relocate_draining(struct upg_tier *t);

/* Bytes the swap store can hold (0 without one). */
size_t upg_tier_store_capacity(const struct upg_tier *t);

/* Memory the tier holds: the zpool, its entry table, its write batches. */
size_t upg_tier_mem_used(struct upg_tier *t);

struct upg_tier_stats {
	struct upg_zpool_stats zpool;
	uint64_t mem_used;		/* as upg_tier_mem_used() */
	uint64_t swap_pages;		/* pages the store holds: written, or in a batch */
	uint64_t swap_bytes;		/* the store's size now (grown so far) */
	uint64_t swap_writes;		/* write I/Os (runs of slots) */
	uint64_t swap_written_pages;
	uint64_t swap_reads;		/* read I/Os */
	uint64_t swap_read_pages;
	uint64_t writeback_pages;	/* taken from the zpool to the store */
	uint64_t direct_pages;		/* stored straight to the store */
	uint64_t checksum_errors;
	uint64_t read_errors;
	uint64_t write_errors;
	uint64_t swap_fragmentation_pct; /* slot_fragmentation * 100 */
	bool degraded;			/* a write failed: no more writes */
};

void upg_tier_stats(struct upg_tier *t, struct upg_tier_stats *st);

/* Tests: overwrite one byte of the first page of @handle on the store. */
int upg_tier_test_corrupt(struct upg_tier *t, uint64_t handle);
/* Tests: is @handle's object on the store (written, not in a batch)? */
bool upg_tier_test_on_store(struct upg_tier *t, uint64_t handle);
/* Tests: the next @count reads (@write false) or writes fail with @err. */
void upg_tier_test_fail(struct upg_tier *t, bool write, int err, unsigned int count);
/* Tests: the store's descriptor (-1 without one), to look at the file. */
int upg_tier_test_fd(struct upg_tier *t);
/* Tests: wait until no batch is waiting to be written. */
void upg_tier_test_flush(struct upg_tier *t);

#endif
