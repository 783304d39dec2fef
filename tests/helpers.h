/* Shared test helpers, prefixed t_. */
#ifndef UPG_TEST_HELPERS_H
#define UPG_TEST_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <upager/upager.h>

#define T_PAGE 4096ul

/*
 * A runtime with @block_size and only the @features allowed, defaults
 * otherwise (the environment is ignored). Skips the test when this machine
 * does not allow userfaultfd.
 */
struct upg_runtime *t_runtime_create(size_t block_size, unsigned int features);
struct upg_runtime *t_runtime_create_opts(const struct upg_options *o);

/*
 * Features the paging tests' runtimes may use; t_copy_out_mode() takes
 * UFFDIO_MOVE away, so blocks leave by write-protect, copy, MADV_DONTNEED.
 * T_BOTH_WAYS(suite, name, secs) { body } defines a test run in @suite,
 * again in suite copyout, and again in suite swapfile (t_swap_mode).
 */
extern unsigned int t_pager_features;
void t_copy_out_mode(void);
#define T_BOTH_WAYS(suite, name, secs)						\
	static void name(void);							\
	Test(suite, name, .timeout = secs) { name(); }				\
	Test(copyout, name, .timeout = secs, .init = t_copy_out_mode) { name(); } \
	Test(swapfile, name, .timeout = secs, .init = t_swap_mode,		\
	     .fini = t_swap_mode_end) { name(); }					\
	static void name(void)

/*
 * Runtimes with a budget get a swap store in a fresh directory under
 * /tmp, and a zpool share of an eighth of the budget (at least 64 KiB)
 * unless the test sets zpool_max: most evicted pages then go through
 * the file. The directory is removed at the end.
 */
void t_swap_mode(void);
void t_swap_mode_end(void);
extern char t_swap_dir[64];

/* Defaults without the environment's UPAGER_* variables. */
void t_options_default(struct upg_options *o);

struct upg_region *t_region_create(struct upg_runtime *rt, size_t len);

/* A deterministic byte for (page, offset, seed). */
static inline uint8_t t_pattern(size_t page, size_t off, unsigned int seed)
{
	uint64_t x = (page * 0x9E3779B97F4A7C15ull) ^ (off * 0xBF58476D1CE4E5B9ull) ^ seed;

	x ^= x >> 31;
	return (uint8_t)(x | 1);	/* never zero: a lost write shows */
}

/* A 64-bit mixer (murmur3's finaliser): seeds for generated pages. */
static inline uint64_t t_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Does reading @p raise SIGBUS? (The previous handler is put back.) */
bool t_read_faults(const volatile uint8_t *p);

/* Fill / check a whole page with t_pattern. */
void t_page_fill(void *page, size_t page_nr, unsigned int seed);
int t_page_check(const void *page, size_t page_nr, unsigned int seed);
int t_page_is_zero(const void *page);

void t_stats(struct upg_runtime *rt, struct upg_stats *st);
/*
 * Stats once the fault threads are quiet: they count after the fill has
 * already woken the faulting thread, so a read right after lags a little.
 */
void t_stats_settled(struct upg_runtime *rt, struct upg_stats *st);

/* Log lines captured by t_log_capture(); t_log_contains() searches them. */
void t_log_capture(void);
int t_log_contains(const char *needle);

#endif
