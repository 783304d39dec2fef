/*
 * evict_cost: what it costs to take scattered pages out of a mapping that
 * another CPU is using, two ways, in the same run. The evictor's cost at
 * a random access pattern is one TLB shoot-down per page (README, "what
 * holds zipf back"); this measures how much a batched drop would save.
 *  move  one UFFDIO_MOVE per victim into a staging area (what the clock
 *        does now when the cold blocks are not neighbours);
 *  span  write-protect the span from the first victim to the last in one
 *        call, copy the victims out, drop them with one
 *        process_madvise(MADV_DONTNEED), unprotect the span. The drops
 *        raise REMOVE events that the readers must read before the call
 *        returns, as on a real region.
 * Victims are every --gap-th page of a populated region, the pages between
 * them stay mapped; --batch victims a span. A thread on another CPU reads
 * other memory of the process throughout, so every flush crosses CPUs, as
 * with a two-threaded application. Two pinned readers, as the runtime
 * starts them. Prints the median over --reps of us per victim and the
 * ratio span/move. Needs userfaultfd with MOVE, WP and REMOVE events.
 *
 * Uses lib/uffd/ (internal): this measures kernel primitives, not the API.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"
#include "uffd/uffd.h"

#define PAGE		4096ul
#define EXIT_SKIP	77
#define VICTIMS		4096ul	/* per repetition and way */
#define MAX_BATCH	512
#define MAX_REPS	31
#define SPIN_LEN	(64ul << 20)

struct run {
	unsigned int gap, batch, reps;
	struct upg_uffd uffd, staging;
	uint8_t *region, *spin_mem;
	/*
	 * The moves' staging area, registered with the staging userfaultfd
	 * as the pager's is; the copies need mapped memory, which a write
	 * into a registered range cannot map: a plain mapping of their own.
	 */
	uint8_t *move_slots, *copy_slots;
	size_t region_len;
	int pidfd;
	volatile bool stop;
};

static void nothing_fault(void *ctx, struct upg_counters *c, uintptr_t addr, bool write,
			  bool wp, uint32_t tid)
{
	(void)ctx, (void)c, (void)addr, (void)write, (void)wp, (void)tid;
	fprintf(stderr, "evict_cost: unexpected fault at %#lx\n", (unsigned long)addr);
	abort();
}

static void nothing_range(void *ctx, struct upg_counters *c, uintptr_t s, uintptr_t e)
{
	(void)ctx, (void)c, (void)s, (void)e;
}

static void nothing_remap(void *ctx, struct upg_counters *c, uintptr_t f, uintptr_t t,
			  size_t len)
{
	(void)ctx, (void)c, (void)f, (void)t, (void)len;
}

static const struct upg_uffd_ops ops = {
	.fault = nothing_fault,
	.remove = nothing_range,
	.unmap = nothing_range,
	.remap = nothing_remap,
};

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void pin_self(unsigned int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* The application's other thread: in the mm, on the other CPU. */
static void *spin_main(void *arg)
{
	struct run *run = arg;
	volatile uint8_t sum = 0;

	pin_self(1);
	while (!run->stop)
		for (size_t off = 0; off < SPIN_LEN && !run->stop; off += 64 * PAGE)
			sum += run->spin_mem[off];
	return NULL;
}

static uint8_t *victim(const struct run *run, size_t i)
{
	return run->region + i * run->gap * PAGE;
}

/* Map the victims again (COPY: a write there would fault), @slots emptied. */
static int repopulate(struct run *run, uint8_t *slots)
{
	static uint8_t ones[PAGE];

	memset(ones, 1, PAGE);
	if (madvise(slots, VICTIMS * PAGE, MADV_DONTNEED))
		return -errno;
	for (size_t i = 0; i < VICTIMS; i++) {
		size_t done;
		int ret = upg_uffd_fill_copy(&run->uffd, (uintptr_t)victim(run, i), PAGE, ones,
					     false, &done);

		if (ret && ret != -EEXIST)
			return ret;
	}
	return 0;
}

static double way_move(struct run *run)
{
	double t0 = now_us();

	for (size_t i = 0; i < VICTIMS; i++) {
		size_t done;
		int ret = upg_uffd_move(&run->staging, (uintptr_t)(run->move_slots + i * PAGE),
					(uintptr_t)victim(run, i), PAGE, &done);

		if (ret) {
			fprintf(stderr, "evict_cost: UFFDIO_MOVE: %s\n", strerror(-ret));
			return -1;
		}
	}
	return (now_us() - t0) / VICTIMS;
}

static double way_span(struct run *run)
{
	struct iovec iov[MAX_BATCH];
	double t0 = now_us();

	for (size_t i = 0; i < VICTIMS; i += run->batch) {
		size_t k = VICTIMS - i < run->batch ? VICTIMS - i : run->batch;
		uintptr_t start = (uintptr_t)victim(run, i);
		size_t len = (uintptr_t)victim(run, i + k - 1) + PAGE - start;
		int ret = upg_uffd_writeprotect(&run->uffd, start, len, true);

		for (size_t j = 0; !ret && j < k; j++) {
			memcpy(run->copy_slots + (i + j) * PAGE, victim(run, i + j), PAGE);
			iov[j] = (struct iovec){ victim(run, i + j), PAGE };
		}
		if (!ret) {
			long got = syscall(SYS_process_madvise, run->pidfd, iov, k, MADV_DONTNEED, 0);

			ret = got < 0 ? -errno : (size_t)got != k * PAGE ? -EIO : 0;
		}
		if (!ret)
			ret = upg_uffd_writeprotect(&run->uffd, start, len, false);
		if (ret) {
			fprintf(stderr, "evict_cost: span of %zu: %s\n", k, strerror(-ret));
			return -1;
		}
	}
	return (now_us() - t0) / VICTIMS;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int setup(struct run *run)
{
	unsigned int want = UPG_FEAT_MOVE | UPG_FEAT_WP | UPG_FEAT_EVENT_REMOVE;
	int ret = upg_uffd_init(&run->uffd, UPG_FEAT_ALL, false);

	if (ret)
		return ret;
	if ((run->uffd.features & want) != want) {
		fprintf(stderr, "evict_cost: needs UFFDIO_MOVE, write-protect and REMOVE events\n");
		return -EOPNOTSUPP;
	}
	ret = upg_uffd_init_staging(&run->staging, UPG_FEAT_ALL);
	if (ret)
		return ret;
	run->region_len = VICTIMS * run->gap * PAGE;
	run->region = mmap(NULL, run->region_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	run->move_slots = mmap(NULL, VICTIMS * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	run->copy_slots = mmap(NULL, VICTIMS * PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	run->spin_mem = mmap(NULL, SPIN_LEN, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (run->region == MAP_FAILED || run->move_slots == MAP_FAILED ||
	    run->copy_slots == MAP_FAILED || run->spin_mem == MAP_FAILED)
		return -ENOMEM;
	/* 4 KiB pages only: a huge page would move or drop as one. */
	madvise(run->region, run->region_len, MADV_NOHUGEPAGE);
	madvise(run->move_slots, VICTIMS * PAGE, MADV_NOHUGEPAGE);
	memset(run->region, 1, run->region_len);
	memset(run->spin_mem, 1, SPIN_LEN);
	ret = upg_uffd_register(&run->uffd, (uintptr_t)run->region, run->region_len, true);
	if (!ret)
		ret = upg_uffd_register(&run->staging, (uintptr_t)run->move_slots, VICTIMS * PAGE,
					false);
	run->pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	return ret ? ret : run->pidfd < 0 ? -errno : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: evict_cost [--gap=N (4)] [--batch=N (64, <= %d)] "
		"[--reps=N (7, <= %d)]\n", MAX_BATCH, MAX_REPS);
	exit(2);
}

static void parse(struct run *run, int argc, char **argv)
{
	run->gap = 4;
	run->batch = 64;
	run->reps = 7;
	for (int i = 1; i < argc; i++) {
		char *end;
		unsigned long v;

		if (!strncmp(argv[i], "--", 2) && strchr(argv[i], '='))
			v = strtoul(strchr(argv[i], '=') + 1, &end, 10);
		else
			usage();
		if (*end || !v)
			usage();
		if (!strncmp(argv[i], "--gap=", 6) && v <= 512)
			run->gap = (unsigned int)v;
		else if (!strncmp(argv[i], "--batch=", 8) && v <= MAX_BATCH)
			run->batch = (unsigned int)v;
		else if (!strncmp(argv[i], "--reps=", 7) && v <= MAX_REPS)
			run->reps = (unsigned int)v;
		else
			usage();
	}
}

int main(int argc, char **argv)
{
	static struct upg_counters counters[2];
	struct run run = { 0 };
	struct upg_uffd_loop *loop = NULL;
	double move[MAX_REPS], span[MAX_REPS];
	pthread_t spinner;
	int ret;

	parse(&run, argc, argv);
	pin_self(0);
	ret = setup(&run);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP)
		return EXIT_SKIP;
	if (!ret)
		ret = upg_uffd_loop_start(&run.uffd, 2, true, &ops, &run, counters, &loop);
	if (ret) {
		fprintf(stderr, "evict_cost: setup: %s\n", strerror(-ret));
		return 1;
	}
	pthread_create(&spinner, NULL, spin_main, &run);
	for (unsigned int r = 0; r < run.reps; r++) {
		if (repopulate(&run, run.move_slots) || (move[r] = way_move(&run)) < 0)
			return 1;
		if (repopulate(&run, run.copy_slots) || (span[r] = way_span(&run)) < 0)
			return 1;
	}
	run.stop = true;
	pthread_join(spinner, NULL);
	upg_uffd_loop_stop(loop);
	qsort(move, run.reps, sizeof(double), cmp_double);
	qsort(span, run.reps, sizeof(double), cmp_double);
	printf("%lu victims every %u pages, %u a span, median of %u runs:\n", VICTIMS, run.gap,
	       run.batch, run.reps);
	printf("  move  %7.2f us a victim (one UFFDIO_MOVE each)\n", move[run.reps / 2]);
	printf("  span  %7.2f us a victim (write-protect, copy, one drop, unprotect)\n",
	       span[run.reps / 2]);
	printf("  span/move %.2fx\n", span[run.reps / 2] / move[run.reps / 2]);
	return 0;
}
