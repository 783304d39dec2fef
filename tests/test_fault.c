/*
 * First-touch faults: zeros on read, writes that stick, many threads on the
 * same pages, kernel-mode access to untouched memory. Each behaviour runs
 * with a fill block of 4 KiB, 64 KiB and 2 MiB.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define FOR_EACH_BLOCK(name)						\
	Test(fault, name##_4k, .timeout = 60) { name(4ul << 10); }	\
	Test(fault, name##_64k, .timeout = 60) { name(64ul << 10); }	\
	Test(fault, name##_2m, .timeout = 60) { name(2ul << 20); }

/* Not a multiple of any block: the last block is short. */
#define REGION_LEN	((6ul << 20) + 3 * T_PAGE)

static void reads_zeros_everywhere(size_t bs)
{
	struct upg_runtime *rt = t_runtime_create(bs, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, REGION_LEN);
	char *p = upg_region_addr(r);
	struct upg_stats st;

	cr_assert_eq((uintptr_t)p % bs, 0, "region start aligned to the block");
	for (size_t off = 0; off < REGION_LEN; off += T_PAGE)
		cr_assert(t_page_is_zero(p + off), "page %zu not zero", off / T_PAGE);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.faults_read, st.faults);
	cr_assert_eq(st.fill_pages, REGION_LEN / T_PAGE, "every page filled once: %lu (raced %lu single %lu fails %lu)", (unsigned long)st.fill_pages, (unsigned long)st.fill_raced, (unsigned long)st.fill_single, (unsigned long)st.fill_failed);
	/* Every block came in once: by its own fault, or ahead of a stream's. */
	cr_assert_eq(st.faults + st.readahead_blocks, (REGION_LEN + bs - 1) / bs);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}
FOR_EACH_BLOCK(reads_zeros_everywhere)

static void writes_stick(size_t bs)
{
	struct upg_runtime *rt = t_runtime_create(bs, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, REGION_LEN);
	char *p = upg_region_addr(r);
	struct upg_stats st;

	/* Backwards, so faults land at the end of each block first. */
	for (size_t pg = REGION_LEN / T_PAGE; pg-- > 0;)
		t_page_fill(p + pg * T_PAGE, pg, 7);
	for (size_t pg = 0; pg < REGION_LEN / T_PAGE; pg++)
		cr_assert(t_page_check(p + pg * T_PAGE, pg, 7), "page %zu lost", pg);
	t_stats_settled(rt, &st);
	cr_assert_eq(st.fill_pages, REGION_LEN / T_PAGE);
	cr_assert_eq(st.fill_zeropage, 0);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}
FOR_EACH_BLOCK(writes_stick)

static void write_after_read_sticks(size_t bs)
{
	struct upg_runtime *rt = t_runtime_create(bs, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, REGION_LEN);
	volatile char *p = upg_region_addr(r);

	cr_assert_eq(p[5 * T_PAGE], 0);		/* zero page mapped */
	p[5 * T_PAGE + 1] = 42;			/* kernel copy-on-write */
	cr_assert_eq(p[5 * T_PAGE + 1], 42);
	cr_assert_eq(p[5 * T_PAGE], 0);
	cr_assert_eq(p[6 * T_PAGE + 1], 0, "the neighbour shares no zero page data");
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}
FOR_EACH_BLOCK(write_after_read_sticks)

/*
 * Threads write their own byte of every page, all at once and in different
 * orders, so several fault on one page or block together. A lost write or
 * a second fill of a page (which would wipe earlier writes) shows as a
 * missing byte; the fill count must be exactly one per page.
 */
#define NR_THREADS	6
#define SHARED_PAGES	96

struct writer {
	char *base;
	unsigned int id;
	pthread_barrier_t *go;
};

static void *write_own_byte(void *arg)
{
	struct writer *w = arg;
	unsigned int seed = w->id * 7919u;

	pthread_barrier_wait(w->go);
	for (size_t i = 0; i < SHARED_PAGES; i++) {
		/* Half the threads go forward, half in a scrambled order. */
		size_t pg = w->id % 2 ? i : (i * 37 + seed) % SHARED_PAGES;

		w->base[pg * T_PAGE + w->id * 64] = (char)(w->id + 1);
	}
	return NULL;
}

static void threads_on_same_pages_lose_nothing(size_t bs)
{
	struct upg_runtime *rt = t_runtime_create(bs, UPG_FEAT_ALL);

	for (int round = 0; round < 20; round++) {
		struct upg_region *r = t_region_create(rt, SHARED_PAGES * T_PAGE);
		struct writer w[NR_THREADS];
		pthread_t th[NR_THREADS];
		pthread_barrier_t go;
		struct upg_stats before, after;
		char *p = upg_region_addr(r);

		t_stats_settled(rt, &before);
		pthread_barrier_init(&go, NULL, NR_THREADS);
		for (unsigned int t = 0; t < NR_THREADS; t++) {
			w[t] = (struct writer){ p, t, &go };
			pthread_create(&th[t], NULL, write_own_byte, &w[t]);
		}
		for (unsigned int t = 0; t < NR_THREADS; t++)
			pthread_join(th[t], NULL);
		pthread_barrier_destroy(&go);
		for (size_t pg = 0; pg < SHARED_PAGES; pg++)
			for (unsigned int t = 0; t < NR_THREADS; t++)
				cr_assert_eq(p[pg * T_PAGE + t * 64], (char)(t + 1),
					     "round %d page %zu thread %u lost", round, pg, t);
		t_stats_settled(rt, &after);
		cr_assert_eq(after.fill_pages - before.fill_pages, SHARED_PAGES,
			     "round %d: each page filled exactly once: %lu", round, (unsigned long)(after.fill_pages - before.fill_pages));
		upg_region_destroy(r);
	}
	upg_runtime_destroy(rt);
}
FOR_EACH_BLOCK(threads_on_same_pages_lose_nothing)

/* read(2) into never-touched managed memory faults in kernel mode. */
static void read_syscall_into_untouched_memory(size_t bs)
{
	struct upg_runtime *rt = t_runtime_create(bs, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, REGION_LEN);
	char *p = upg_region_addr(r);
	size_t len = 3 * T_PAGE + 100, at = bs - 17;	/* spans blocks */
	char *src = malloc(len);
	FILE *f = tmpfile();

	for (size_t i = 0; i < len; i++)
		src[i] = (char)(i * 13 + 1);
	cr_assert_eq(fwrite(src, 1, len, f), len);
	fflush(f);
	cr_assert_eq(pread(fileno(f), p + at, len, 0), (ssize_t)len);
	cr_assert_eq(memcmp(p + at, src, len), 0);
	cr_assert_eq(p[at - 1], 0);
	cr_assert_eq(p[at + len], 0);
	fclose(f);
	free(src);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}
FOR_EACH_BLOCK(read_syscall_into_untouched_memory)

/* write(2) from never-touched managed memory: the kernel reads zeros. */
static void write_syscall_from_untouched_memory(size_t bs)
{
	struct upg_runtime *rt = t_runtime_create(bs, UPG_FEAT_ALL);
	struct upg_region *r = t_region_create(rt, REGION_LEN);
	char *p = upg_region_addr(r), back[2 * T_PAGE];
	FILE *f = tmpfile();

	cr_assert_eq(pwrite(fileno(f), p + T_PAGE, sizeof(back), 0), (ssize_t)sizeof(back));
	memset(back, 0x55, sizeof(back));
	cr_assert_eq(pread(fileno(f), back, sizeof(back), 0), (ssize_t)sizeof(back));
	cr_assert(t_page_is_zero(back) && t_page_is_zero(back + T_PAGE));
	fclose(f);
	upg_region_destroy(r);
	upg_runtime_destroy(rt);
}
FOR_EACH_BLOCK(write_syscall_from_untouched_memory)

Test(fault, regions_are_told_apart, .timeout = 30)
{
	struct upg_runtime *rt = t_runtime_create(64 << 10, UPG_FEAT_ALL);
	struct upg_region *r[5];

	for (int i = 0; i < 5; i++)
		r[i] = t_region_create(rt, (size_t)(i + 1) * 256 * 1024);
	for (int i = 4; i >= 0; i--)
		memset(upg_region_addr(r[i]), 'a' + i, (size_t)(i + 1) * 256 * 1024);
	for (int i = 0; i < 5; i++) {
		char *p = upg_region_addr(r[i]);

		cr_assert_eq(p[0], 'a' + i);
		cr_assert_eq(p[(size_t)(i + 1) * 256 * 1024 - 1], 'a' + i);
	}
	upg_region_destroy(r[2]);
	cr_assert_eq(*(char *)upg_region_addr(r[3]), 'd');
	upg_runtime_destroy(rt);	/* destroys the other four */
}
