/*
 * fault_latency: first-touch page faults through upager against the
 * kernel's own anonymous first touch, in the same run on the same CPUs.
 *
 * For each pattern (seq, rand) and each repetition, a fresh plain mmap and a
 * fresh upager region are touched one byte per 4 KiB page in the same order.
 * The rate passes read no clock per touch, so the clock's own cost stays out
 * of ns/page and the ratio; the figure is the median over repetitions. A
 * second pass per repetition times every touch with clock_gettime
 * (CLOCK_MONOTONIC, vDSO; its back-to-back cost is printed and included) for
 * the application-side percentiles. The library's service times come from
 * upg_stats_get(). Every pass checks a sample of pages: a wrong byte fails.
 *
 * A user of the public API only: it links the shared library, nothing else.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <upager/upager.h>

#define PAGE		4096ul
/* Pages between checked pages: odd, so it meets every offset in a block. */
#define CHECK_STRIDE	13
#define SEED		0x5eedf00dull
/* meson's exit code for "skipped": no userfaultfd here. */
#define EXIT_SKIP	77

enum { SEQ, RAND, NR_PATTERNS };
enum { KERNEL, UPAGER, NR_ENGINES };

static const char *const pattern_name[] = { "seq", "rand" };
static const char *const engine_name[] = { "kernel", "upager" };

struct cfg {
	size_t len;
	unsigned int reps;
	bool read;
	struct upg_options opts[NR_PATTERNS];	/* seq and rand differ in block */
	int touch_cpu;				/* -1: the toucher is not pinned */
};

struct engine_res {
	double ns_page, ns_min, ns_max;	/* median, min, max over reps */
	double p50_us, p99_us;		/* per touch, over all timed passes */
};

struct pattern_res {
	struct engine_res eng[NR_ENGINES];
	double ratio;			/* upager / kernel ns_page */
	double lib_p50_us, lib_p99_us;	/* upg_stats_get service times */
	double faults_per_pass, wakeups_per_fault;
};

/* Per-pattern scratch, all outside the measured regions and prefaulted. */
struct bufs {
	uint32_t *order;		/* page index of each touch */
	uint32_t *lat[NR_ENGINES];	/* ns of each timed touch, all reps */
	double *ns[NR_ENGINES];		/* ns/page of each rate pass */
};

static volatile uint8_t sink;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The byte written to page @i, never zero so a lost write shows. */
static uint8_t mark(size_t i)
{
	return (uint8_t)(i % 251 + 1);
}

/* Where in page @i it goes: it moves, so a page mapped twice shows. */
static size_t mark_off(size_t i)
{
	return (i * 67) % PAGE;
}

static inline void touch_one(uint8_t *base, size_t i, bool read)
{
	volatile uint8_t *p = base + i * PAGE + mark_off(i);

	if (read)
		sink = *p;
	else
		*p = mark(i);
}

static uint64_t touch_all(uint8_t *base, const uint32_t *order, size_t n,
			  bool read)
{
	uint64_t t0 = now_ns();

	for (size_t k = 0; k < n; k++)
		touch_one(base, order[k], read);
	return now_ns() - t0;
}

static void touch_timed(uint8_t *base, const uint32_t *order, size_t n,
			bool read, uint32_t *lat)
{
	for (size_t k = 0; k < n; k++) {
		uint64_t t0 = now_ns(), dt;

		touch_one(base, order[k], read);
		dt = now_ns() - t0;
		lat[k] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
	}
}

static int check_page(const uint8_t *base, size_t i, bool read,
		      const char *what)
{
	const uint8_t *pg = base + i * PAGE;

	for (size_t b = 0; b < PAGE; b++) {
		uint8_t want = !read && b == mark_off(i) ? mark(i) : 0;

		if (pg[b] != want) {
			fprintf(stderr, "fault_latency: %s: page %zu byte %zu "
				"reads 0x%02x, wrote 0x%02x\n", what, i, b,
				pg[b], want);
			return -1;
		}
	}
	return 0;
}

static int check_sample(const uint8_t *base, size_t n, bool read,
			const char *what)
{
	for (size_t i = 0; i < n; i += CHECK_STRIDE)
		if (check_page(base, i, read, what))
			return -1;
	return check_page(base, n - 1, read, what);
}

/*
 * One pass over a fresh region of engine @e: the ns its touches took, or
 * -1 on a failure (said on stderr). @lat NULL: a rate pass, one clock read
 * either side of the loop; else each touch is timed into @lat.
 */
static int64_t one_pass(int e, struct upg_runtime *rt, const struct cfg *c,
			const uint32_t *order, uint32_t *lat)
{
	size_t n = c->len / PAGE;
	struct upg_region *reg = NULL;
	uint64_t ns = 0;
	uint8_t *base;
	int ret;

	if (e == KERNEL) {
		base = mmap(NULL, c->len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (base == MAP_FAILED) {
			perror("fault_latency: mmap");
			return -1;
		}
	} else {
		ret = upg_region_create(rt, c->len, &reg);
		if (ret) {
			fprintf(stderr, "fault_latency: upg_region_create: %s\n",
				strerror(-ret));
			return -1;
		}
		base = upg_region_addr(reg);
	}
	if (lat)
		touch_timed(base, order, n, c->read, lat);
	else
		ns = touch_all(base, order, n, c->read);
	ret = check_sample(base, n, c->read, engine_name[e]);
	if (e == KERNEL)
		munmap(base, c->len);
	else
		upg_region_destroy(reg);
	return ret ? -1 : (int64_t)ns;
}

/* Write every page, so the bench's own first touches are not measured. */
static void *alloc_faulted(size_t len)
{
	uint8_t *p = malloc(len);

	for (size_t i = 0; p && i < len; i += PAGE)
		((volatile uint8_t *)p)[i] = 1;
	return p;
}

static void bufs_free(struct bufs *b)
{
	free(b->order);
	for (int e = 0; e < NR_ENGINES; e++) {
		free(b->lat[e]);
		free(b->ns[e]);
	}
}

/* splitmix64: a fixed seed gives the same permutation in every run. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int bufs_alloc(struct bufs *b, size_t n, unsigned int reps, int pat)
{
	uint64_t seed = SEED;

	*b = (struct bufs){ .order = alloc_faulted(n * sizeof(uint32_t)) };
	for (int e = 0; e < NR_ENGINES; e++) {
		b->lat[e] = alloc_faulted(n * reps * sizeof(uint32_t));
		b->ns[e] = alloc_faulted(reps * sizeof(double));
		if (!b->lat[e] || !b->ns[e])
			goto err;
	}
	if (!b->order)
		goto err;
	for (size_t i = 0; i < n; i++)
		b->order[i] = (uint32_t)i;
	for (size_t i = n - 1; pat == RAND && i > 0; i--) {
		size_t j = next_rand(&seed) % (i + 1);
		uint32_t t = b->order[i];

		b->order[i] = b->order[j];
		b->order[j] = t;
	}
	return 0;
err:
	bufs_free(b);
	return -1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank of a sorted array: the smallest value with q of n at or below. */
static double pct_us(const uint32_t *sorted, size_t n, double q)
{
	size_t rank = (size_t)(q * (double)n + 0.999999);

	return sorted[rank ? rank - 1 : 0] / 1e3;
}

static void summarize(const struct cfg *c, struct bufs *b,
		      struct pattern_res *res)
{
	size_t nlat = c->len / PAGE * c->reps;
	unsigned int r = c->reps;

	for (int e = 0; e < NR_ENGINES; e++) {
		struct engine_res *er = &res->eng[e];

		qsort(b->ns[e], r, sizeof(double), cmp_double);
		er->ns_page = (b->ns[e][(r - 1) / 2] + b->ns[e][r / 2]) / 2;
		er->ns_min = b->ns[e][0];
		er->ns_max = b->ns[e][r - 1];
		qsort(b->lat[e], nlat, sizeof(uint32_t), cmp_u32);
		er->p50_us = pct_us(b->lat[e], nlat, 0.50);
		er->p99_us = pct_us(b->lat[e], nlat, 0.99);
	}
	res->ratio = res->eng[UPAGER].ns_page / res->eng[KERNEL].ns_page;
}

/* The library's own view, summed over every pass of this runtime. */
static int lib_stats(struct upg_runtime *rt, unsigned int passes,
		     struct pattern_res *res)
{
	struct upg_stats st = { .size = sizeof(st) };
	int ret = upg_stats_get(rt, &st);

	if (ret) {
		fprintf(stderr, "fault_latency: upg_stats_get: %s\n", strerror(-ret));
		return -1;
	}
	if (st.fill_failed)
		fprintf(stderr, "fault_latency: warning: %llu fills failed\n",
			(unsigned long long)st.fill_failed);
	res->lib_p50_us = st.fault_ns_p50 / 1e3;
	res->lib_p99_us = st.fault_ns_p99 / 1e3;
	res->faults_per_pass = (double)st.faults / passes;
	res->wakeups_per_fault = st.faults ? (double)st.reader_wakeups / st.faults : 0;
	return 0;
}

static cpu_set_t orig_mask;

static int pin_toucher(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "fault_latency: pin to CPU %d: %s\n", cpu,
			strerror(errno));
		return -1;
	}
	return 0;
}

static int measure(const struct cfg *c, struct upg_runtime *rt, struct bufs *b)
{
	size_t n = c->len / PAGE;

	for (unsigned int r = 0; r < c->reps; r++) {
		/* Alternate who goes first, so drift in the VM hits both. */
		for (unsigned int j = 0; j < NR_ENGINES; j++) {
			int e = (int)((r + j) % NR_ENGINES);
			int64_t ns = one_pass(e, rt, c, b->order, NULL);

			if (ns < 0 || one_pass(e, rt, c, b->order, b->lat[e] + r * n) < 0)
				return -1;
			b->ns[e][r] = (double)ns / (double)n;
		}
	}
	return 0;
}

/* Returns 0, EXIT_SKIP without userfaultfd, or 1. */
static int run_pattern(const struct cfg *c, int pat, struct pattern_res *res)
{
	struct upg_runtime *rt;
	struct bufs b;
	int ret;

	if (bufs_alloc(&b, c->len / PAGE, c->reps, pat)) {
		fprintf(stderr, "fault_latency: out of memory\n");
		return 1;
	}
	ret = upg_runtime_create(&c->opts[pat], &rt);
	if (ret) {
		fprintf(stderr, "fault_latency: upg_runtime_create: %s\n",
			strerror(-ret));
		bufs_free(&b);
		return ret == -ENOSYS || ret == -EPERM ? EXIT_SKIP : 1;
	}
	/* Pin after create: unpinned readers inherit the creator's CPUs. */
	ret = pin_toucher(c->touch_cpu) || measure(c, rt, &b) ||
	      lib_stats(rt, 2 * c->reps, res);
	sched_setaffinity(0, sizeof(orig_mask), &orig_mask);
	upg_runtime_destroy(rt);
	if (!ret)
		summarize(c, &b, res);
	bufs_free(&b);
	return ret;
}

static int run_config(const struct cfg *c, struct pattern_res res[NR_PATTERNS])
{
	for (int pat = 0; pat < NR_PATTERNS; pat++) {
		int ret = run_pattern(c, pat, &res[pat]);

		if (ret)
			return ret;
	}
	return 0;
}

static void print_table(const struct pattern_res res[NR_PATTERNS])
{
	printf("\n%-5s %-7s %9s %21s %16s %16s %9s %8s\n", "pat", "engine",
	       "ns/page", "(min..max)", "touch p50/p99us", "lib p50/p99us",
	       "flt/pass", "wake/flt");
	for (int pat = 0; pat < NR_PATTERNS; pat++) {
		for (int e = 0; e < NR_ENGINES; e++) {
			const struct engine_res *er = &res[pat].eng[e];

			printf("%-5s %-7s %9.1f (%9.1f..%9.1f) %7.1f/%-8.1f",
			       pattern_name[pat], engine_name[e], er->ns_page,
			       er->ns_min, er->ns_max, er->p50_us, er->p99_us);
			if (e == UPAGER)
				printf(" %7.1f/%-8.1f %9.0f %8.2f",
				       res[pat].lib_p50_us, res[pat].lib_p99_us,
				       res[pat].faults_per_pass,
				       res[pat].wakeups_per_fault);
			printf("\n");
		}
		printf("%-5s ratio   %9.2f  (upager/kernel median ns/page)\n",
		       pattern_name[pat], res[pat].ratio);
	}
}

static void print_final(const struct pattern_res res[NR_PATTERNS])
{
	printf("fault_latency: seq_ratio=%.2f rand_ratio=%.2f p50_us=%.1f p99_us=%.1f\n",
	       res[SEQ].ratio, res[RAND].ratio, res[RAND].eng[UPAGER].p50_us,
	       res[RAND].eng[UPAGER].p99_us);
}

struct placement {
	const char *label;
	enum upg_fault_mode mode;
	unsigned int threads;
	bool pin;
	int touch_cpu;
};

/*
 * (d) is the brief's "reader on CPU 1, toucher on CPU 0" mirrored: the API
 * pins reader i to CPU i, so a lone pinned reader always sits on CPU 0.
 */
static const struct placement placements[] = {
	{ "(a) poll, 1 reader unpinned",       UPG_FAULT_POLL,   1, false, -1 },
	{ "(b) poll, reader+toucher on CPU0",  UPG_FAULT_POLL,   1, true,   0 },
	{ "(c) poll, pinned reader per CPU",   UPG_FAULT_POLL,   0, true,  -1 },
	{ "(d) poll, reader CPU0, toucher CPU1", UPG_FAULT_POLL, 1, true,   1 },
	{ "(e) sigbus, toucher fills",         UPG_FAULT_SIGBUS, 1, false, -1 },
};
#define DEFAULT_PLACEMENT	2	/* (c): the library's defaults */

static void print_sweep_line(const char *label, const struct pattern_res *r)
{
	printf("%-37s %7.0f %7.0f %5.2f | %7.0f %7.0f %5.2f | %6.1f %6.1f | %6.1f %6.1f\n",
	       label, r[SEQ].eng[KERNEL].ns_page, r[SEQ].eng[UPAGER].ns_page,
	       r[SEQ].ratio, r[RAND].eng[KERNEL].ns_page,
	       r[RAND].eng[UPAGER].ns_page, r[RAND].ratio,
	       r[RAND].eng[UPAGER].p50_us, r[RAND].eng[UPAGER].p99_us,
	       r[RAND].lib_p50_us, r[RAND].lib_p99_us);
	fflush(stdout);
}

static int run_sweep(const struct cfg *c)
{
	struct pattern_res res[NR_PATTERNS], final[NR_PATTERNS];
	long nr_cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int ret;

	memset(final, 0, sizeof(final));	/* (c) is never skipped */
	printf("\n%-37s %-21s | %-21s | %-13s | %s\n%-37s", "",
	       "seq ns/page", "rand ns/page", "rand touch us", "lib rand us",
	       "placement");
	for (int i = 0; i < 2; i++)
		printf(" %7s %7s %5s |", "kernel", "upager", "ratio");
	printf(" %6s %6s | %6s %6s\n", "p50", "p99", "p50", "p99");
	for (size_t i = 0; i < sizeof(placements) / sizeof(placements[0]); i++) {
		const struct placement *p = &placements[i];
		struct cfg pc = *c;

		if (p->touch_cpu >= nr_cpus) {
			printf("%-37s skipped: needs CPU %d\n", p->label, p->touch_cpu);
			continue;
		}
		pc.touch_cpu = p->touch_cpu;
		for (int pat = 0; pat < NR_PATTERNS; pat++) {
			pc.opts[pat].fault_mode = p->mode;
			pc.opts[pat].fault_threads = p->threads;
			pc.opts[pat].pin_threads = p->pin;
		}
		ret = run_config(&pc, res);
		if (ret)
			return ret;
		print_sweep_line(p->label, res);
		if (i == DEFAULT_PLACEMENT)
			memcpy(final, res, sizeof(final));
	}
	printf("(p50/p99 in us: application-side per touch, then the library's "
	       "service time)\nfinal line: placement (c), the default\n");
	print_final(final);
	return 0;
}

/* The bracketed word of a sysfs choice ("always [madvise] never"), or all. */
static const char *sysfs_word(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	char *open, *close;

	if (!f || !fgets(buf, (int)len, f)) {
		if (f)
			fclose(f);
		return "unknown";
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	open = strchr(buf, '[');
	close = open ? strchr(open, ']') : NULL;
	if (!close)
		return buf;
	*close = '\0';
	return open + 1;
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

static void print_intro(int argc, char **argv, const struct cfg *c)
{
	const struct upg_options *o = &c->opts[SEQ];
	long nr_cpus = sysconf(_SC_NPROCESSORS_ONLN);
	char thp[128], src[128];
	const char *mode = sysfs_word("/sys/kernel/mm/transparent_hugepage/enabled",
				      thp, sizeof(thp));

	printf("fault_latency: first-touch faults, upager vs kernel anonymous memory\ncommand:");
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\nconfig: size=%zuKiB (%zu pages) reps=%u access=%s block=%zuK "
	       "rand_block=%zuK threads=%u%s pin=%d mode=%s touch_cpu=",
	       c->len >> 10, c->len / PAGE, c->reps, c->read ? "read" : "write",
	       o->block_size >> 10, c->opts[RAND].block_size >> 10,
	       o->fault_threads, o->fault_threads ? "" : " (one per CPU)",
	       o->pin_threads, o->fault_mode == UPG_FAULT_SIGBUS ? "sigbus" : "poll");
	if (c->touch_cpu < 0)
		printf("any\n");
	else
		printf("%d\n", c->touch_cpu);
	printf("machine: %ld CPUs; THP=%s (%s); clock CLOCK_MONOTONIC on %s, "
	       "%llu ns a read pair (in per-touch figures only)\n", nr_cpus, mode,
	       strcmp(mode, "always") ? "the plain mmap gets 4 KiB pages"
				      : "the plain mmap may get 2 MiB pages",
	       sysfs_word("/sys/devices/system/clocksource/clocksource0/current_clocksource",
			  src, sizeof(src)),
	       (unsigned long long)clock_cost_ns());
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fault_latency [options]\n"
		"  --size=N[K|M|G]   region size, bare N in MiB (256)\n"
		"  --reps=N          fresh regions per pattern and engine (5)\n"
		"  --read            touch by reading (default: write)\n"
		"  --block=SIZE      upager fill block for seq (UPAGER_BLOCK_SIZE, 64K)\n"
		"  --rand-block=SIZE upager fill block for rand (4K)\n"
		"  --threads=N       fault threads, 0 = one per CPU (UPAGER_FAULT_THREADS)\n"
		"  --pin=0|1         pin reader i to CPU i (UPAGER_PIN_THREADS)\n"
		"  --mode=poll|sigbus  (UPAGER_FAULT_MODE)\n"
		"  --touch-cpu=N     pin the touching thread to CPU N\n"
		"  --placement-sweep run placements (a)..(e), one line each\n"
		"UPAGER_* variables apply first; the command line wins.\n");
}

/* Bare N is MiB; the result is whole pages. */
static int parse_len(const char *s, size_t *out)
{
	unsigned int shift = 20;
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		end++;
	else if (*end == 'G' || *end == 'g')
		shift = 30, end++;
	if (errno || end == s || *end || !v || v > ((1ull << 44) >> shift))
		return -1;
	*out = (size_t)(((v << shift) + PAGE - 1) & ~(PAGE - 1));
	return 0;
}

/* --block etc. go through upg_options_set, so they parse as UPAGER_* do. */
static int set_opt(struct cfg *c, const char *name, const char *arg)
{
	if (upg_options_set(&c->opts[SEQ], name, arg)) {
		fprintf(stderr, "fault_latency: bad value \"%s\" for UPAGER_%s\n",
			arg, name);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct cfg *c,
		      const char **rand_block, bool *sweep)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "reps", required_argument, NULL, 'r' },
		{ "read", no_argument, NULL, 'R' },
		{ "block", required_argument, NULL, 'b' },
		{ "rand-block", required_argument, NULL, 'B' },
		{ "threads", required_argument, NULL, 't' },
		{ "pin", required_argument, NULL, 'p' },
		{ "mode", required_argument, NULL, 'm' },
		{ "touch-cpu", required_argument, NULL, 'c' },
		{ "placement-sweep", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (parse_len(optarg, &c->len))
				goto bad;
			break;
		case 'r':
			c->reps = (unsigned int)strtoul(optarg, &end, 10);
			if (*end || !c->reps || c->reps > 1000)
				goto bad;
			break;
		case 'c':
			c->touch_cpu = (int)strtol(optarg, &end, 10);
			if (*end || c->touch_cpu < 0 || c->touch_cpu >= CPU_SETSIZE)
				goto bad;
			break;
		case 'R': c->read = true; break;
		case 'S': *sweep = true; break;
		case 'B': *rand_block = optarg; break;
		case 'b': if (set_opt(c, "BLOCK_SIZE", optarg)) return -1; break;
		case 't': if (set_opt(c, "FAULT_THREADS", optarg)) return -1; break;
		case 'p': if (set_opt(c, "PIN_THREADS", optarg)) return -1; break;
		case 'm': if (set_opt(c, "FAULT_MODE", optarg)) return -1; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind == argc)
		return 0;
	optarg = argv[optind];
bad:
	fprintf(stderr, "fault_latency: bad argument \"%s\"\n", optarg);
	usage(stderr);
	return -1;
}

int main(int argc, char **argv)
{
	struct cfg c = { .len = 256ul << 20, .reps = 5, .touch_cpu = -1 };
	const char *rand_block = "4K";
	bool sweep = false;

	if (upg_options_init(&c.opts[SEQ])) {
		fprintf(stderr, "fault_latency: a UPAGER_* variable is bad (see above)\n");
		return 2;
	}
	if (parse_args(argc, argv, &c, &rand_block, &sweep))
		return 2;
	c.opts[RAND] = c.opts[SEQ];
	if (upg_options_set(&c.opts[RAND], "BLOCK_SIZE", rand_block)) {
		fprintf(stderr, "fault_latency: bad --rand-block=%s\n", rand_block);
		return 2;
	}
	if (sched_getaffinity(0, sizeof(orig_mask), &orig_mask)) {
		perror("fault_latency: sched_getaffinity");
		return 1;
	}
	print_intro(argc, argv, &c);
	if (sweep)
		return run_sweep(&c);

	struct pattern_res res[NR_PATTERNS];
	int ret = run_config(&c, res);

	if (ret)
		return ret;
	print_table(res);
	print_final(res);
	return 0;
}
