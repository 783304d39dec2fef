/*
 * swap_io: the swap store's own I/O, to hold against fio on the same
 * filesystem (bench/run-swap-io runs both and prints the ratios).
 *
 * Swap-out: @size of incompressible pages stored through the tier (each
 * goes straight to a write batch, as an evicted random page does) until
 * the last batch is on the store; MB/s from the first store to then.
 * Swap-in: @threads threads load random pages of it for @seconds, each
 * load a synchronous read of one slot (a fault's), so @threads is the
 * queue depth; IOPS and the p50/p99 of a load. Prints one line of
 * key=value pairs.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "swap/tier.h"

#define PAGE	4096ul

static struct upg_tier *tier;
static uint64_t *handles;
static size_t nr_pages;
static double seconds = 5;
static volatile int stop;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

struct reader {
	pthread_t thread;
	uint64_t loads, errors;
	double *lat;		/* seconds, one per load up to cap */
	size_t cap;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t s = (uintptr_t)r | 1;
	void *buf;

	if (posix_memalign(&buf, PAGE, PAGE))
		return NULL;
	while (!stop) {
		uint64_t h = handles[rnd(&s) % nr_pages];
		double t0 = now();

		if (upg_tier_load(tier, h, buf, 1))
			r->errors++;
		if (r->loads < r->cap)
			r->lat[r->loads] = now() - t0;
		r->loads++;
	}
	free(buf);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int arg_ul(const char *arg, const char *key, unsigned long *v)
{
	size_t n = strlen(key);

	if (strncmp(arg, key, n))
		return 0;
	*v = strtoul(arg + n, NULL, 10);
	return 1;
}

int main(int argc, char **argv)
{
	struct upg_tier_config c = { .zpool = { .max_bytes = 1 << 20 } };
	unsigned long size_mib = 1024, threads = 1, secs = 5;
	struct upg_tier_stats st;
	struct reader *rd;
	uint8_t *page;
	double t0, t1, *all;
	uint64_t loads = 0, errors = 0, s = 42;
	size_t nlat = 0;
	int ret;

	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--dir=", 6))
			c.swap_path = argv[i] + 6;
		else if (!strcmp(argv[i], "--buffered"))
			c.no_direct = true;
		else if (!arg_ul(argv[i], "--size-mib=", &size_mib) &&
			 !arg_ul(argv[i], "--threads=", &threads) &&
			 !arg_ul(argv[i], "--seconds=", &secs)) {
			fprintf(stderr, "usage: swap_io --dir=DIR [--size-mib=N] [--threads=N] "
				"[--seconds=N] [--buffered]\n");
			return 2;
		}
	}
	if (!c.swap_path || !threads) {
		fprintf(stderr, "swap_io: --dir=DIR is needed (and threads >= 1)\n");
		return 2;
	}
	seconds = (double)secs;
	nr_pages = size_mib << 20 >> 12;
	c.swap_size = (uint64_t)size_mib << 20;
	ret = upg_tier_create(&c, &tier);
	if (ret) {
		fprintf(stderr, "swap_io: store in %s: %s\n", c.swap_path, strerror(-ret));
		return 1;
	}
	handles = calloc(nr_pages, sizeof(*handles));
	if (posix_memalign((void **)&page, PAGE, PAGE) || !handles)
		return 1;
	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t v = rnd(&s);

		memcpy(page + i, &v, 8);
	}

	t0 = now();
	for (size_t i = 0; i < nr_pages; i++) {
		memcpy(page, &i, sizeof(i));	/* every page its own */
		ret = upg_tier_store(tier, page, 1, &handles[i]);
		if (ret) {
			fprintf(stderr, "swap_io: store %zu: %s\n", i, strerror(-ret));
			return 1;
		}
	}
	upg_tier_test_flush(tier);
	t1 = now();
	upg_tier_stats(tier, &st);

	rd = calloc(threads, sizeof(*rd));
	for (unsigned long i = 0; i < threads; i++) {
		rd[i].cap = 1u << 22;
		rd[i].lat = malloc(rd[i].cap * sizeof(double));
		pthread_create(&rd[i].thread, NULL, reader_main, &rd[i]);
	}
	{
		struct timespec d = { (time_t)seconds, 0 };

		nanosleep(&d, NULL);
	}
	stop = 1;
	all = malloc(threads * (1u << 22) * sizeof(double));
	for (unsigned long i = 0; i < threads; i++) {
		pthread_join(rd[i].thread, NULL);
		loads += rd[i].loads;
		errors += rd[i].errors;
		for (size_t k = 0; k < rd[i].loads && k < rd[i].cap; k++)
			all[nlat++] = rd[i].lat[k];
	}
	qsort(all, nlat, sizeof(double), cmp_double);
	printf("size_mib=%lu direct=%d swapout_s=%.3f swapout_MBps=%.1f writes=%llu "
	       "pages_per_write=%.1f qd=%lu swapin_iops=%.0f swapin_p50_us=%.1f "
	       "swapin_p99_us=%.1f load_errors=%llu\n",
	       size_mib, !c.no_direct, t1 - t0, size_mib / (t1 - t0),
	       (unsigned long long)st.swap_writes,
	       st.swap_writes ? (double)st.swap_written_pages / st.swap_writes : 0.0, threads,
	       loads / seconds, nlat ? all[nlat / 2] * 1e6 : 0.0,
	       nlat ? all[nlat * 99 / 100] * 1e6 : 0.0, (unsigned long long)errors);
	upg_tier_destroy(tier);
	return errors ? 1 : 0;
}
