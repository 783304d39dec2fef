/*
 * upager: a user-space paging runtime built on userfaultfd.
 *
 * This is the only header an application includes. Objects are opaque;
 * functions that can fail return 0 (or a count) on success and a negative
 * errno on failure, and never set errno.
 *
 * API v0: a runtime owns one userfaultfd and its fault threads; regions are
 * anonymous mappings whose first-touch faults the runtime services itself.
 */
#ifndef UPAGER_UPAGER_H
#define UPAGER_UPAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UPG_API __attribute__((visibility("default")))

#define UPG_VERSION_MAJOR	0
#define UPG_VERSION_MINOR	1

/*
 * Optional kernel features. The runtime decides at start-up which it can
 * use (from UFFDIO_API's answer); clearing a bit in upg_options.features
 * forces the fallback path even where the kernel has the feature.
 */
enum upg_feature {
	UPG_FEAT_DEVNODE	= 1u << 0,	/* /dev/userfaultfd; else the syscall */
	UPG_FEAT_ZEROPAGE	= 1u << 1,	/* UFFDIO_ZEROPAGE; else COPY of zeros */
	UPG_FEAT_EVENT_REMOVE	= 1u << 2,	/* MADV_DONTNEED is reported */
	UPG_FEAT_THREAD_ID	= 1u << 3,	/* faults name the faulting thread */
	UPG_FEAT_SIGBUS		= 1u << 4,	/* needed by fault_mode=sigbus */
	UPG_FEAT_MOVE		= 1u << 5,	/* UFFDIO_MOVE (6.8+) */
	UPG_FEAT_WP_ASYNC	= 1u << 6,	/* async write-protect (6.7+) */
	UPG_FEAT_POISON		= 1u << 7,	/* UFFDIO_POISON (6.6+) */
	UPG_FEAT_PAGEMAP_SCAN	= 1u << 8,	/* PAGEMAP_SCAN ioctl (6.7+) */
	UPG_FEAT_WP		= 1u << 9,	/* write-protect faults (5.7+) */
	/*
	 * The swap store's file: O_TMPFILE (else a name created and unlinked
	 * at once) and O_DIRECT (else buffered, fdatasync after each batch).
	 * Whether its filesystem takes them shows when it opens (logged).
	 */
	UPG_FEAT_TMPFILE	= 1u << 10,
	UPG_FEAT_DIRECT		= 1u << 11,
};
#define UPG_FEAT_ALL	((1u << 12) - 1)

/* Name of one UPG_FEAT_* bit ("zeropage"), or NULL for an unknown bit. */
UPG_API const char *upg_feature_name(unsigned int feature);

enum upg_fault_mode {
	/*
	 * Reader threads poll the userfaultfd and resolve faults. Works for
	 * every access, including kernel-mode ones (read(2) into a region).
	 */
	UPG_FAULT_POLL = 0,
	/*
	 * The faulting thread resolves its own fault in a SIGBUS handler:
	 * no cross-thread wake-up, so faster, but a kernel-mode access to a
	 * missing page fails with EFAULT instead of faulting. Opt-in only,
	 * for programs that never hand untouched managed memory to a system
	 * call. The process's SIGBUS handler is taken while such a runtime
	 * exists; SIGBUS for other addresses goes to the previous handler.
	 */
	UPG_FAULT_SIGBUS = 1,
};

/* What to do when the budget cannot be kept (see struct upg_oom_info). */
enum upg_oom_policy {
	/*
	 * Wait for room (an upg_unpin(), a munmap, MADV_DONTNEED or region
	 * destroyed) up to oom_wait_ms, counted from when the fill began to
	 * wait with nothing freed, then end the process as UPG_OOM_KILL does.
	 */
	UPG_OOM_WAIT = 0,
	/* End the process (SIGKILL) with a message naming the figures. */
	UPG_OOM_KILL = 1,
	/* Ask the application: upg_options.oom_callback. */
	UPG_OOM_CALLBACK = 2,
};

/* Whether a region that could not fit budget + store is created at all. */
enum upg_overcommit {
	/*
	 * Refuse only the obvious: more than budget + 4 x the store's room
	 * (the store is the zpool: zpool_max, else budget_total, else RAM).
	 */
	UPG_OVERCOMMIT_HEURISTIC = 0,
	UPG_OVERCOMMIT_ALWAYS = 1,	/* never refuse */
	/* Refuse what could not fit if no page compressed at all. */
	UPG_OVERCOMMIT_NEVER = 2,
};

/* The figures an out-of-memory decision is made on. */
struct upg_oom_info {
	size_t budget;		/* the resident limit now, bytes */
	size_t resident;	/* bytes resident */
	size_t pinned;		/* of those, pinned (upg_pin) */
	size_t zpool;		/* bytes the zpool holds */
	size_t zpool_max;	/* its cap (0: none) */
	uint64_t waited_ms;	/* how long the fill has waited for room */
	const char *why;	/* "zpool full", "everything pinned", ... */
};

/* What an oom_callback answers. */
enum upg_oom_action {
	UPG_OOM_RETRY = 0,	/* it made room (unpinned, freed): try again */
	UPG_OOM_DIE = 1,	/* end the process, as UPG_OOM_KILL */
};

/*
 * Called by the thread that waits for room (the evictor for faults of the
 * fault threads, the faulting thread in sigbus mode, the caller of
 * upg_pin or WILLNEED), once a fill has waited 1 s for room with nothing
 * freed. It must not touch managed memory (that would fault into a thread
 * that is waiting); it may upg_unpin(), munmap, MADV_DONTNEED or destroy
 * regions. Called again while no room comes, at most once a second.
 */
typedef enum upg_oom_action upg_oom_fn(const struct upg_oom_info *info, void *arg);

/*
 * Every knob of the runtime. upg_options_init() sets the defaults and then
 * applies UPAGER_<NAME> environment variables; the caller may edit fields
 * afterwards (code beats the environment). upg_runtime_create() copies it.
 */
/*
 * A level given as a share of the budget rather than in bytes (watermarks):
 * UPG_PERCENT(90) is 90 % of it; "90%" in UPAGER_* variables.
 */
#define UPG_PERCENT(p)	((size_t)-1 - 100 + (size_t)(p))

#define UPG_SWAP_PATH_MAX	4096

struct upg_options {
	size_t block_size;	/* bytes filled per fault: 4 KiB..2 MiB, power of 2 */
	/*
	 * Paging. budget limits resident bytes of all regions together (what
	 * a memory cgroup limits); cold blocks are compressed into the zpool
	 * to stay under it. 0: no limit, nothing is evicted. zpool_max caps
	 * the zpool's memory (as zram's mem_limit); budget_total caps
	 * resident + zpool together, which is what most users set. A budget
	 * below one block is refused.
	 */
	size_t budget;
	size_t budget_total;
	size_t zpool_max;
	/*
	 * A swap store behind the zpool: a directory (or a new path in one)
	 * for a file that has no name and goes with the process, or a block
	 * device that is neither mounted nor in use. "" : none. The file
	 * grows up to swap_size (needed for a file; 0 = a device's size).
	 * With it the zpool keeps its share (zpool_max, else a quarter of
	 * the budget) and its oldest pages are written to the store; pages
	 * that do not compress go there at once.
	 */
	char swap[UPG_SWAP_PATH_MAX];
	size_t swap_size;
	/*
	 * The background evictor starts above high_watermark and stops at
	 * low_watermark (bytes or UPG_PERCENT of the budget; 0 = 99 % and
	 * 97 %, each at least 1 MiB, or an eighth of a smaller budget, below
	 * the next). Fills wait only when the budget itself is reached.
	 */
	size_t low_watermark, high_watermark;
	/*
	 * When the budget cannot be kept (the zpool full, everything pinned,
	 * nothing evictable) for a second with a fill waiting: oom decides.
	 * oom_callback (code only, no variable) is needed by UPG_OOM_CALLBACK.
	 */
	enum upg_oom_policy oom;
	unsigned int oom_wait_ms;	/* UPG_OOM_WAIT's time limit; 0 = 10 s */
	upg_oom_fn *oom_callback;
	void *oom_callback_arg;
	enum upg_overcommit overcommit;
	unsigned int fault_threads;	/* uffd readers; 0 = one per CPU (two with swap) */
	bool pin_threads;	/* pin reader i to CPU i (measured faster here) */
	enum upg_fault_mode fault_mode;
	unsigned int features;	/* UPG_FEAT_* allowed; clear bits to force fallbacks */
	bool verbose;		/* log every option and the features in use */
};

/*
 * Defaults, then UPAGER_* variables. Returns 0, or -EINVAL when a variable
 * holds a bad value: that variable is named in a warning and its field
 * keeps the default; the other variables still apply.
 */
UPG_API int upg_options_init(struct upg_options *opts);

/*
 * Set one option by its UPAGER_ name without the prefix ("BLOCK_SIZE",
 * case-insensitive) from a string, as the environment would. Returns 0,
 * -ENOENT for an unknown name, -EINVAL for a bad value (opts unchanged).
 */
UPG_API int upg_options_set(struct upg_options *opts, const char *name,
			    const char *value);

/*
 * Parse a size as UPAGER_* variables take it: "4096", "64K", "64KB",
 * "64KiB", "2M", "1G", "1T" (always binary). 0, or -EINVAL for anything
 * else, including overflow. Tools use it so every size reads the same.
 */
UPG_API int upg_parse_size(const char *s, uint64_t *out);

/* A boolean as UPAGER_* variables take it: 1/0, on/off, yes/no, true/false. */
UPG_API int upg_parse_bool(const char *s, bool *out);

struct upg_runtime;
struct upg_region;

/*
 * Create a runtime: open a userfaultfd, agree the API and start the fault
 * threads. @opts may be NULL: defaults plus UPAGER_* variables. Returns 0
 * and sets *@out, or a negative errno:
 *   -ENOSYS      the kernel has no userfaultfd
 *   -EPERM       userfaultfd is not allowed for this process (the log says
 *                how to allow it)
 *   -EINVAL      a bad option
 *   -EOPNOTSUPP  a required kernel feature is missing (the log names it)
 *   -EBUSY       fault_mode=sigbus while another sigbus runtime exists
 */
UPG_API int upg_runtime_create(const struct upg_options *opts,
			       struct upg_runtime **out);

/*
 * Destroy the runtime and every region still alive in it. Threads blocked
 * in a fault on a region are woken; touching a region afterwards is a use
 * after free, as with munmap. NULL is fine.
 */
UPG_API void upg_runtime_destroy(struct upg_runtime *rt);

/* UPG_FEAT_* bits this runtime uses: kernel support & options.features. */
UPG_API unsigned int upg_runtime_features(const struct upg_runtime *rt);

/*
 * Map @len bytes (rounded up to a page) of anonymous memory whose faults
 * the runtime services; the start is aligned to the fill block. Returns 0
 * and sets *@out, or -EINVAL (len 0), -ENOMEM (no memory, or refused by
 * the overcommit policy: logged), or the register error.
 */
UPG_API int upg_region_create(struct upg_runtime *rt, size_t len,
			      struct upg_region **out);

/* Unmap the region and drop its state. NULL is fine. */
UPG_API void upg_region_destroy(struct upg_region *region);

UPG_API void *upg_region_addr(const struct upg_region *region);

/* upg_advise() advice; several may be or'ed together. */
enum upg_advice {
	/* Bring evicted blocks back now: later accesses do not fault. */
	UPG_ADV_WILLNEED = 1u << 0,
	/* Evict now: compress the range into the zpool, release its memory. */
	UPG_ADV_COLD = 1u << 1,
	/* The contents may go: the range reads zeros (MADV_DONTNEED). */
	UPG_ADV_DONTNEED = 1u << 2,
	/*
	 * Keep it: resident blocks are marked referenced and staged ones
	 * moved back, so the clock takes them last.
	 */
	UPG_ADV_HOT = 1u << 3,
};

/*
 * Advise upager about [addr, addr + len) of managed memory (page-aligned
 * @addr; the range must lie in regions of one runtime). Returns 0, or
 *   -EINVAL  bad alignment, no advice, unknown bits, COLD with WILLNEED
 *            or HOT
 *   -ENOMEM  part of the range is not managed memory (nothing is done)
 * Advice other than DONTNEED is a no-op without a budget. COLD skips
 * pinned blocks and blocks cut by munmap/mprotect.
 */
UPG_API int upg_advise(void *addr, size_t len, unsigned int advice);

/*
 * Pin [addr, addr + len): bring it in (filling never-touched and dropped
 * pages) and never evict it until upg_unpin() (DMA and O_DIRECT buffers).
 * Pins do not nest, as mlock(2): one unpin ends them. A MADV_DONTNEED of
 * pinned memory ends the pin of what it drops. Pinned memory counts
 * against the budget. Returns 0, -EINVAL as upg_advise(), or
 *   -ENOMEM  part of the range is not managed memory, or all pins would
 *            pass the budget (nothing done; pins up to it leave faults
 *            that need room to the OOM policy)
 *   -EIO     a block of it cannot be brought back (it does not decode):
 *            the blocks before it stay pinned
 */
UPG_API int upg_pin(void *addr, size_t len);
UPG_API int upg_unpin(void *addr, size_t len);

/*
 * Bytes of the region still mapped: the created length less what the
 * application has munmap()ed or mremap()ed away since.
 */
UPG_API size_t upg_region_len(const struct upg_region *region);

/*
 * Counters only grow. Fault service time is measured by the thread that
 * resolves the fault, from reading the fault to the fill's return (it does
 * not include the kernel's wake-up of the faulting thread); percentiles are
 * read from a log-linear histogram, within 1/16 of the value.
 */
#define UPG_STATS_FIELDS(X)						\
	X(faults)		/* missing-page faults received */	\
	X(faults_read)		/* of those, read accesses */		\
	X(faults_unknown)	/* outside every region: zero-filled */	\
	X(faults_in_hole)	/* in an unmapped part of a region */	\
	X(fills)		/* blocks filled */			\
	X(fill_pages)		/* 4 KiB pages filled */		\
	X(fill_zeropage)	/* fills done with UFFDIO_ZEROPAGE */	\
	X(fill_copy)		/* fills done with UFFDIO_COPY */	\
	X(fill_single)		/* single pages refilled in a resident block */ \
	X(fill_raced)		/* page was already there: harmless */	\
	X(fill_retried)		/* kernel said EAGAIN: woken to refault */ \
	X(fill_waited)		/* waited for another thread's fill */	\
	X(fill_failed)		/* fill failed: the fault was woken */	\
	X(events_remove)	/* MADV_DONTNEED/REMOVE events */	\
	X(events_unmap)		/* munmap events */			\
	X(events_remap)		/* mremap events */			\
	X(remap_adopted)	/* mremaps followed: the new range managed */ \
	X(remap_shared_blocks)	/* blocks cut by an mremap, data copied */ \
	X(reader_wakeups)	/* poll() returns in reader threads */	\
	X(reader_empty)		/* woke, but another reader took it */	\
	X(stalls)		/* fills that waited for the evictor */	\
	X(stall_ns)		/* ... and the time they waited */	\
	X(reclaims_direct)	/* of those, compressed a block themselves */ \
	X(deactivations)	/* blocks moved out by the clock hand */ \
	X(deactivate_failed)	/* could not be moved (shared, pinned) */ \
	X(reactivations)	/* INACTIVE blocks touched: moved back */ \
	X(evictions)		/* blocks compressed into the zpool */	\
	X(evict_pages)		/* ... in pages */			\
	X(evict_failed)		/* the zpool refused (full) */		\
	X(evict_stuck)		/* evictor rounds that found nothing */	\
	X(swapins)		/* COMPRESSED blocks brought back */	\
	X(swapin_pages)		/* ... in pages */			\
	X(swapin_failed)	/* failed to decompress: poisoned */	\
	X(swapin_sigbus_sent)	/* ... and, without POISON, SIGBUS sent */ \
	X(fork_brought_back)	/* evicted blocks brought back for fork() */ \
	X(prefetch_blocks)	/* blocks brought back by WILLNEED or pin */ \
	X(readahead_blocks)	/* blocks a stream's fault brought in ahead */ \
	X(readahead_hits)	/* ... that the stream went on past */	\
	X(readahead_misses)	/* ... whose stream stopped before it */ \
	X(advise_cold_blocks)	/* blocks evicted by UPG_ADV_COLD */	\
	X(pin_skipped)		/* pinned blocks the clock passed over */ \
	X(oom_events)		/* fills that found the budget could not be kept */ \
	X(oom_callbacks)	/* ... and asked oom_callback */	\
	X(overcommit_refused)	/* regions refused by the overcommit policy */ \
	X(copyouts)		/* runs copied out without UFFDIO_MOVE */ \
	X(copyout_parked)	/* faults parked on a block being copied out */ \
	X(clean_kept)		/* swap-ins that kept the compressed copy */ \
	X(clean_reused)		/* evictions that reused it: no compression */ \
	X(clean_dropped)	/* copies dropped: written, page dropped, pin */ \
	X(move_runs)		/* runs of blocks moved out in one UFFDIO_MOVE */ \
	X(move_run_holes)	/* unmapped blocks those runs spanned */ \
	X(zpool_compactions)	/* passes that drained the zpool's emptiest arenas */ \
	X(zpool_relocated)	/* ... and the objects they moved */ \
	X(reactivate_moved)	/* reactivations moved back: a hole in the slot */ \
	X(drop_batches)		/* staging slots emptied by one process_madvise */

#define UPG_LAT_BUCKETS	512

struct upg_stats {
	size_t size;		/* caller sets sizeof(struct upg_stats) */
#define UPG_STAT_FIELD(name) uint64_t name;
	UPG_STATS_FIELDS(UPG_STAT_FIELD)
#undef UPG_STAT_FIELD
	uint64_t fault_ns_p50;	/* fault service time percentiles, ns */
	uint64_t fault_ns_p99;
	uint64_t fault_ns_p999;
	uint64_t fault_ns_max;
	size_t regions;		/* live regions */
	size_t mapped_bytes;	/* bytes mapped in live regions */
	size_t meta_bytes;	/* state tables: bytes of metadata */
	uint64_t fault_ns_hist[UPG_LAT_BUCKETS];	/* see upg_lat_bucket_ns */
	/* Paging gauges (0 without a budget). */
	size_t budget_bytes;	/* the resident limit */
	size_t resident_bytes;	/* counted a block at a time */
	size_t inactive_bytes;	/* of those, INACTIVE (staged, data intact) */
	size_t pinned_bytes;	/* of those, pinned */
	size_t zpool_bytes;	/* memory the zpool holds */
	uint64_t zpool_orig_bytes;	/* bytes of the pages it stores */
	uint64_t zpool_stored_bytes;	/* ... after compression */
	uint64_t zpool_same_pages;	/* stored as one repeated word */
	uint64_t zpool_raw_pages;	/* incompressible, stored raw */
	size_t clean_bytes;		/* zpool bytes of clean copies of blocks in memory */
	/* The swap store (0 without one). */
	size_t tier_bytes;		/* memory of zpool + store's tables and write batches */
	uint64_t swap_pages;		/* pages the store holds: written, or in a write batch */
	uint64_t swap_bytes;		/* the store's size so far */
	uint64_t swap_writes;		/* write I/Os (each a run of slots) */
	uint64_t swap_written_pages;
	uint64_t swap_reads;		/* read I/Os */
	uint64_t swap_read_pages;
	uint64_t swap_writeback_pages;	/* moved from the zpool to the store */
	uint64_t swap_direct_pages;	/* stored straight to it (incompressible, zpool full) */
	uint64_t swap_checksum_errors;	/* pages read back wrong: SIGBUS, never handed on */
	uint64_t swap_read_errors;	/* reads that failed: the same */
	uint64_t swap_write_errors;	/* batches that failed: kept in memory */
	uint64_t swap_fragmentation_pct; /* free slots not in the largest free run */
	bool swap_degraded;		/* a write failed: the store takes no more */
};

/*
 * Copy at most st->size bytes of the runtime's statistics into @st, so a
 * caller built against an older, shorter struct keeps working. Returns 0,
 * or -EINVAL when st->size is smaller than the size field itself.
 */
UPG_API int upg_stats_get(struct upg_runtime *rt, struct upg_stats *st);

/* The histogram bucket of a latency in ns (for callers' own histograms). */
UPG_API unsigned int upg_lat_bucket(uint64_t ns);

/* Lowest latency, in ns, that falls into histogram bucket @i. */
UPG_API uint64_t upg_lat_bucket_ns(unsigned int i);

/*
 * The @q quantile (0..1) of a histogram of UPG_LAT_BUCKETS counts, in ns
 * (the upper edge of the bucket it falls in); 0 for an empty histogram.
 */
UPG_API uint64_t upg_lat_quantile(const uint64_t *hist, double q);

/*
 * Log sink. By default errors and warnings go to stderr, "upager: " first.
 * @fn NULL restores that. @level: 0 error, 1 warning, 2 info, 3 debug.
 */
typedef void upg_log_fn(int level, const char *msg, void *arg);
UPG_API void upg_set_log_fn(upg_log_fn *fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* UPAGER_UPAGER_H */
