/*
 * swapin_latency: a swap-in fault against the two steps it cannot avoid,
 * in the same run. The goal: "swap-in fault p50 <= 1.3x (measured uffd
 * round trip + LZ4 decompress)". Per repetition, a clock_gettime
 * (CLOCK_MONOTONIC) pair around each single step, less its own cost:
 *  uffd    fresh runtime, no budget, 4 KiB blocks: one byte written to
 *          every page in random order. A write: a read fault is filled
 *          with ZEROPAGE, a swap-in with COPY, as a write fault is.
 *  lz4     LZ4_decompress_safe of one 4 KiB page of text, for each page
 *          the swap-in pass touches, each compressed once beforehand.
 *  swapin  fresh runtime, budget 25 % of the region by default: text
 *          written to every page in order, so the oldest go to the zpool;
 *          then one byte read from each page of the first min(budget/2,
 *          size/4) bytes in random order. The bytes are checked (a wrong
 *          one exits 1); upg_stats_get() says whether they were swap-ins.
 * Figures are medians over repetitions of each one's p50/p99. A user of
 * the public API, plus liblz4 for its own decompress timing.
 */
#include <errno.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <upager/upager.h>

#define PAGE		4096ul
#define SEED		0x5eedf00dull
#define EXIT_SKIP	77	/* meson's "skipped": no userfaultfd here */
#define GOAL		1.3	/* the bound on swapin / (uffd + lz4) */
#define MIN_SWAPIN_SHARE 0.9	/* below it the swap-in figure means little */
#define CHECK_STRIDE	13	/* pages between fully compared pages */
#define MAX_REPS	100

enum { UFFD, LZ4, SWAPIN, NR_PARTS };
static const char *const part_name[] = {
	"uffd round trip", "lz4 decompress", "swap-in fault",
};

struct bench {
	size_t len, budget;
	unsigned int reps;
	struct upg_options opts;	/* defaults and UPAGER_*; ours override */
	/* Scratch outside the measured regions, prefaulted. */
	uint32_t *order_all;	/* every page, shuffled: the uffd pass */
	uint32_t *order_sw;	/* the first nr_sw pages, shuffled */
	size_t nr_all, nr_sw;
	uint32_t *lat;		/* ns of each timed step of one pass */
	uint8_t *got;		/* the byte each swap-in touch read */
	char *lz4;		/* nr_sw compressed pages, LZ4_COMPRESSBOUND apart */
	int *lz4_len;
	/* Each repetition's figures (us); medians are taken at the end. */
	double p50[NR_PARTS][MAX_REPS], p99[NR_PARTS][MAX_REPS];
	double share[MAX_REPS];	/* of the swap-in touches, swap-ins */
	double lz4_ratio, zpool_ratio;
};

static uint64_t clock_ns;	/* a back-to-back clock pair, taken off each step */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t step_ns(uint64_t t0, uint64_t t1)
{
	uint64_t dt = t1 - t0 > clock_ns ? t1 - t0 - clock_ns : 0;

	return dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
}

/* splitmix64: a fixed seed gives the same text and order in every run. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Words and short phrases: LZ4 finds no match shorter than 4 bytes, so
 * single random words compress only ~1.6x; 44 entries with phrases give
 * ~2.7x per 4 KiB page, as prose does (tried 16..64 entries: 3.7x..2.4x).
 */
static const char *const dict[] = {
	"the page", "of the kernel", "and then", "is not in memory",
	"that the fault", "was written", "for each block", "with a budget",
	"by the thread", "on the region", "which has been", "but it would",
	"from the swap", "at the first", "they can", "you will see",
	"a number of", "the value is", "all the data", "when the system",
	"if there is", "more than one", "so it was", "this is why",
	"as well as", "their own", "had been", "will not", "each of them",
	"out of", "some", "into", "about", "other", "could", "only", "page",
	"fault", "kernel", "budget", "thread", "block", "swap", "time",
};
#define DICT_LEN	(sizeof(dict) / sizeof(dict[0]))

/* Page @i's text: its own seed, so any page can be made again to check. */
static void text_page(size_t i, uint8_t *pg)
{
	uint64_t s = SEED ^ (i * 0xd1b54a32d192ed03ull);
	unsigned int k = 0;
	size_t o = 0;

	while (o < PAGE) {
		uint64_t r = next_rand(&s);

		for (const char *w = dict[r % DICT_LEN]; *w && o < PAGE; w++)
			pg[o++] = (uint8_t)*w;
		if (o < PAGE)
			pg[o++] = ++k % (6 + (r >> 40) % 9) ? ' ' : '\n';
	}
}

/* The byte of page @i a touch reads: it moves, so a misplaced page shows. */
static size_t mark_off(size_t i)
{
	return (i * 67) % PAGE;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts @v (insertion: a few values). */
static double median(double *v, unsigned int n)
{
	for (unsigned int i = 1; i < n; i++)
		for (unsigned int j = i; j && v[j - 1] > v[j]; j--) {
			double t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return (v[(n - 1) / 2] + v[n / 2]) / 2;
}

/* Sorts the pass's @n steps into nearest-rank p50 and p99 of part @p. */
static void record(struct bench *b, int p, unsigned int r, size_t n)
{
	qsort(b->lat, n, sizeof(*b->lat), cmp_u32);
	b->p50[p][r] = b->lat[(size_t)(0.50 * (double)n + 0.999999) - 1] / 1e3;
	b->p99[p][r] = b->lat[(size_t)(0.99 * (double)n + 0.999999) - 1] / 1e3;
}

/* Returns 0, EXIT_SKIP without userfaultfd, or 1; the region in *@reg. */
static int setup(const struct bench *b, size_t budget, struct upg_runtime **rt,
		 struct upg_region **reg)
{
	struct upg_options o = b->opts;
	int ret;

	o.block_size = PAGE;
	o.budget = budget;
	if (!budget)
		o.budget_total = 0;
	ret = upg_runtime_create(&o, rt);
	if (ret) {
		fprintf(stderr, "swapin_latency: upg_runtime_create: %s\n",
			strerror(-ret));
		return ret == -ENOSYS || ret == -EPERM ? EXIT_SKIP : 1;
	}
	ret = upg_region_create(*rt, b->len, reg);
	if (ret) {
		fprintf(stderr, "swapin_latency: upg_region_create: %s\n",
			strerror(-ret));
		upg_runtime_destroy(*rt);
		return 1;
	}
	return 0;
}

static int pass_uffd(struct bench *b, unsigned int r)
{
	struct upg_runtime *rt;
	struct upg_region *reg;
	volatile uint8_t *base;
	int ret = setup(b, 0, &rt, &reg);

	if (ret)
		return ret;
	base = upg_region_addr(reg);
	for (size_t k = 0; k < b->nr_all; k++) {
		size_t i = b->order_all[k];
		uint64_t t0 = now_ns();

		base[i * PAGE + mark_off(i)] = (uint8_t)(i % 251 + 1);
		b->lat[k] = step_ns(t0, now_ns());
	}
	for (size_t i = 0; i < b->nr_all && !ret; i += CHECK_STRIDE)
		if (base[i * PAGE + mark_off(i)] != (uint8_t)(i % 251 + 1)) {
			fprintf(stderr, "swapin_latency: uffd pass: page %zu lost its byte\n", i);
			ret = 1;
		}
	upg_runtime_destroy(rt);	/* the region with it */
	record(b, UFFD, r, b->nr_all);
	return ret;
}

/* The decompress a swap-in does, of the pages the swap-in pass touches. */
static int pass_lz4(struct bench *b, unsigned int r)
{
	const int bound = LZ4_COMPRESSBOUND(PAGE);
	static uint8_t src[PAGE], dst[PAGE];
	size_t stored = 0;

	for (size_t k = 0; k < b->nr_sw; k++) {
		text_page(b->order_sw[k], src);
		b->lz4_len[k] = LZ4_compress_default((char *)src, b->lz4 + k * bound,
						     PAGE, bound);
		stored += (size_t)b->lz4_len[k];
	}
	b->lz4_ratio = (double)(b->nr_sw * PAGE) / (double)stored;
	for (size_t k = 0; k < b->nr_sw; k++) {
		size_t i = b->order_sw[k];
		uint64_t t0 = now_ns();
		int n = LZ4_decompress_safe(b->lz4 + k * bound, (char *)dst,
					    b->lz4_len[k], PAGE);

		b->lat[k] = step_ns(t0, now_ns());
		text_page(i, src);
		if (n != PAGE || memcmp(dst, src, PAGE)) {
			fprintf(stderr, "swapin_latency: lz4: page %zu did not round-trip\n", i);
			return 1;
		}
	}
	record(b, LZ4, r, b->nr_sw);
	return 0;
}

/* The byte each touch read, and every CHECK_STRIDEth page whole. */
static int check_swapped(const struct bench *b, const uint8_t *base)
{
	static uint8_t want[PAGE];

	for (size_t k = 0; k < b->nr_sw; k++) {
		size_t i = b->order_sw[k];

		text_page(i, want);
		if (b->got[k] != want[mark_off(i)] ||
		    (i % CHECK_STRIDE == 0 && memcmp(base + i * PAGE, want, PAGE))) {
			fprintf(stderr, "swapin_latency: page %zu came back wrong "
				"(read 0x%02x, wrote 0x%02x)\n", i, b->got[k],
				want[mark_off(i)]);
			return 1;
		}
	}
	return 0;
}

static int pass_swapin(struct bench *b, unsigned int r)
{
	struct upg_stats st0 = { .size = sizeof(st0) }, st1 = { .size = sizeof(st1) };
	struct upg_runtime *rt;
	struct upg_region *reg;
	uint8_t *base;
	int ret = setup(b, b->budget, &rt, &reg);

	if (ret)
		return ret;
	base = upg_region_addr(reg);
	for (size_t i = 0; i < b->nr_all; i++)
		text_page(i, base + i * PAGE);
	ret = upg_stats_get(rt, &st0);
	for (size_t k = 0; k < b->nr_sw && !ret; k++) {
		volatile uint8_t *p = base + b->order_sw[k] * PAGE + mark_off(b->order_sw[k]);
		uint64_t t0 = now_ns();

		b->got[k] = *p;
		b->lat[k] = step_ns(t0, now_ns());
	}
	ret = ret ? ret : upg_stats_get(rt, &st1);
	if (ret)
		fprintf(stderr, "swapin_latency: upg_stats_get: %s\n", strerror(-ret));
	ret = ret ? 1 : check_swapped(b, base);
	upg_runtime_destroy(rt);
	b->share[r] = (double)(st1.swapins - st0.swapins) / (double)b->nr_sw;
	b->zpool_ratio = st0.zpool_stored_bytes ?
		(double)st0.zpool_orig_bytes / (double)st0.zpool_stored_bytes : 0;
	record(b, SWAPIN, r, b->nr_sw);
	return ret;
}

static void report(struct bench *b)
{
	double p50[NR_PARTS], p99[NR_PARTS], ratio, share;
	unsigned int n = b->reps;

	printf("\n%-22s %9s %9s   (median over %u reps)\n", "", "p50 us",
	       "p99 us", n);
	for (int p = 0; p < NR_PARTS; p++) {
		p50[p] = median(b->p50[p], n);
		p99[p] = median(b->p99[p], n);
		if (p == SWAPIN)
			printf("%-22s %9.2f\n", "sum (uffd + lz4)", p50[UFFD] + p50[LZ4]);
		printf("%-22s %9.2f %9.2f\n", part_name[p], p50[p], p99[p]);
	}
	share = median(b->share, n);
	ratio = p50[SWAPIN] / (p50[UFFD] + p50[LZ4]);
	printf("swapin_ratio = swapin_p50 / (uffd_p50 + lz4_p50) = %.3f   "
	       "(goal <= %.1f: %s)\n", ratio, GOAL, ratio <= GOAL ? "met" : "MISSED");
	if (share < MIN_SWAPIN_SHARE)
		printf("!!! WARNING: only %.0f%% of the %zu touches were swap-ins "
		       "(need %.0f%%): the swap-in figure is not a swap-in's !!!\n",
		       share * 100, b->nr_sw, MIN_SWAPIN_SHARE * 100);
	printf("swapin_latency: swapin_ratio=%.3f goal=%.1f %s swapin_p50_us=%.2f "
	       "uffd_p50_us=%.2f lz4_p50_us=%.2f swapin_p99_us=%.2f swapins=%.0f%%\n",
	       ratio, GOAL, ratio <= GOAL ? "met" : "MISSED", p50[SWAPIN],
	       p50[UFFD], p50[LZ4], p99[SWAPIN], share * 100);
}

static int run(struct bench *b)
{
	int ret = 0;

	printf("\n%-4s %15s %15s %15s %6s %6s %6s %8s\n", "rep", "uffd p50/p99",
	       "lz4 p50/p99", "swapin p50/p99", "ratio", "lz4 x", "zpool", "swapins");
	for (unsigned int r = 0; r < b->reps; r++) {
		ret = pass_uffd(b, r);
		ret = ret ? ret : pass_lz4(b, r);
		ret = ret ? ret : pass_swapin(b, r);
		if (ret)
			break;
		printf("%-4u %7.2f/%-7.2f %7.2f/%-7.2f %7.2f/%-7.2f %6.2f %6.2f %6.2f %7.1f%%\n",
		       r + 1, b->p50[UFFD][r], b->p99[UFFD][r], b->p50[LZ4][r],
		       b->p99[LZ4][r], b->p50[SWAPIN][r], b->p99[SWAPIN][r],
		       b->p50[SWAPIN][r] / (b->p50[UFFD][r] + b->p50[LZ4][r]),
		       b->lz4_ratio, b->zpool_ratio, b->share[r] * 100);
		fflush(stdout);
	}
	if (!ret)
		report(b);
	return ret;
}

static void *alloc_faulted(size_t len)
{
	uint8_t *p = malloc(len);

	for (size_t i = 0; p && i < len; i += PAGE)
		((volatile uint8_t *)p)[i] = 1;
	return p;
}

static void shuffle(uint32_t *order, size_t n)
{
	uint64_t seed = SEED;

	for (size_t i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = next_rand(&seed) % (i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
}

static int bufs_alloc(struct bench *b)
{
	b->nr_all = b->len / PAGE;
	b->nr_sw = (b->budget / 2 < b->len / 4 ? b->budget / 2 : b->len / 4) / PAGE;
	b->order_all = alloc_faulted(b->nr_all * sizeof(uint32_t));
	b->order_sw = alloc_faulted(b->nr_sw * sizeof(uint32_t));
	b->lat = alloc_faulted(b->nr_all * sizeof(uint32_t));
	b->got = alloc_faulted(b->nr_sw);
	b->lz4 = alloc_faulted(b->nr_sw * LZ4_COMPRESSBOUND(PAGE));
	b->lz4_len = alloc_faulted(b->nr_sw * sizeof(int));
	if (!b->order_all || !b->order_sw || !b->lat || !b->got || !b->lz4 ||
	    !b->lz4_len)
		return -1;
	shuffle(b->order_all, b->nr_all);
	shuffle(b->order_sw, b->nr_sw);
	return 0;
}

static uint64_t clock_cost_ns(void)
{
	uint32_t d[1001];

	for (size_t i = 0; i < 1001; i++) {
		uint64_t t0 = now_ns();

		d[i] = (uint32_t)(now_ns() - t0);
	}
	qsort(d, 1001, sizeof(d[0]), cmp_u32);
	return d[500];
}

/* Sizes as UPAGER_* variables take them; --budget also "N%" of --size. */
static int parse_args(int argc, char **argv, struct bench *b)
{
	unsigned long pct = 25;
	uint64_t v = 0;
	char *end;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strncmp(a, "--size=", 7) && !upg_parse_size(a + 7, &v) &&
		    v >= 4 * PAGE) {
			b->len = (size_t)(v + PAGE - 1) & ~(PAGE - 1);
		} else if (!strncmp(a, "--budget=", 9) &&
			   (pct = strtoul(a + 9, &end, 10), !strcmp(end, "%"))) {
			if (pct < 1 || pct > 99)
				goto bad;
		} else if (!strncmp(a, "--budget=", 9) && !upg_parse_size(a + 9, &v)) {
			b->budget = (size_t)v & ~(PAGE - 1);
			pct = 0;
		} else if (!strncmp(a, "--reps=", 7) &&
			   (b->reps = (unsigned int)strtoul(a + 7, &end, 10)) &&
			   !*end && b->reps <= MAX_REPS) {
			continue;
		} else {
			goto bad;
		}
	}
	if (pct)
		b->budget = b->len / PAGE * pct / 100 * PAGE;
	if (b->budget >= 2 * PAGE && b->budget < b->len)
		return 0;
	fprintf(stderr, "swapin_latency: need 2 pages <= budget < size\n");
bad:
	fprintf(stderr, "usage: swapin_latency [--size=256M] [--budget=25%%|SIZE] "
		"[--reps=5 (1..%d)]\n", MAX_REPS);
	return -1;
}

int main(int argc, char **argv)
{
	static struct bench b = { .len = 256ul << 20, .reps = 5 };
	int ret;

	if (upg_options_init(&b.opts)) {
		fprintf(stderr, "swapin_latency: a UPAGER_* variable is bad (see above)\n");
		return 2;
	}
	if (parse_args(argc, argv, &b))
		return 2;
	if (bufs_alloc(&b)) {
		fprintf(stderr, "swapin_latency: out of memory\n");
		return 1;
	}
	clock_ns = clock_cost_ns();
	printf("swapin_latency: swap-in faults vs uffd round trip + LZ4 decompress\n"
	       "config: size=%zuKiB (%zu pages) budget=%zuKiB block=4K reps=%u; "
	       "swap-in pass: %zu pages, the first %zuKiB, random order\n"
	       "clock: CLOCK_MONOTONIC, %llu ns a back-to-back pair, taken off "
	       "every step\n", b.len >> 10, b.nr_all, b.budget >> 10, b.reps,
	       b.nr_sw, b.nr_sw * PAGE >> 10, (unsigned long long)clock_ns);
	ret = run(&b);
	free(b.order_all);
	free(b.order_sw);
	free(b.lat);
	free(b.got);
	free(b.lz4);
	free(b.lz4_len);
	return ret;
}
