/*
 * upager-demo: a program whose heap is served by upager, under a budget
 * smaller than its working set, side by side with the same work under the
 * kernel's own swap.
 *
 * An in-memory key-value store: a table of 64-byte records (--size,
 * default 256 MiB) is written once, front to back, by two threads; then
 * the two threads look up a million keys drawn from a zipf(0.99)
 * distribution (a few hot keys, a long cold tail, as caches see; the hot
 * records are the newest, at the front) and sum the values. Both sides
 * must give the same checksum.
 *
 * Both run under the same budget (--budget, default 25 %): upager's, with
 * cold blocks compressed into its zpool, and, as root, the kernel's own
 * swap: the plain table lives in a child process inside a memory cgroup
 * limited to the budget with zram (lz4) behind it, set up and torn down
 * by upager-bench's kernel engine code. Without root the kernel side runs
 * without a limit, and says so.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <upager/upager.h>

#include "dist.h"
#include "job.h"
#include "kernel.h"

#define NR_THREADS	2
#define NR_LOOKUPS	(1u << 20)
#define RECORD		64

struct record {
	uint64_t key, value;
	char text[RECORD - 16];	/* compressible, as real records are */
};

struct table {
	struct record *rec;
	size_t nr;
};

struct job {
	struct table *t;
	uint64_t first, count;	/* build: records first .. first + count - 1 */
	unsigned int id;
	uint64_t sum;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static void *build(void *arg)
{
	static const char words[] = "user session cart item price total user session cart item";
	struct job *j = arg;

	for (uint64_t k = j->first; k < j->first + j->count; k++) {
		struct record *r = &j->t->rec[k];

		r->key = k;
		r->value = mix(k * 7);
		memcpy(r->text, words + k % 8, sizeof(r->text));
	}
	return NULL;
}

/*
 * zipf(0.99) keys, the same stream on both sides (seeded by thread). Key
 * k is the k-th most popular: the newest records, at the front of the
 * table, are the hot ones, as in a cache of recent items.
 */
static void *probe(void *arg)
{
	struct job *j = arg;
	struct bench_dist d;
	struct bench_rng rng;

	bench_dist_init(&d, BENCH_DIST_ZIPF, 0.99, j->t->nr);
	bench_rng_seed(&rng, 42 + j->id);
	for (unsigned int i = 0; i < NR_LOOKUPS / NR_THREADS; i++) {
		const struct record *r = &j->t->rec[bench_dist_unscatter(&d, bench_dist_next(&d, &rng))];

		j->sum += r->value ^ r->key ^ (uint8_t)r->text[5];
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write every record, then look keys up; returns the checksum. */
static uint64_t run(struct table *t, double *build_s, double *probe_s)
{
	uint64_t keys = t->nr, sum = 0;
	struct job jobs[NR_THREADS];
	pthread_t th[NR_THREADS];
	double t0;

	for (int pass = 0; pass < 2; pass++) {
		t0 = now_s();
		for (int i = 0; i < NR_THREADS; i++) {
			jobs[i] = (struct job){ t, keys * (uint64_t)i / NR_THREADS,
				keys / NR_THREADS, (unsigned int)i, 0 };
			pthread_create(&th[i], NULL, pass ? probe : build, &jobs[i]);
		}
		for (int i = 0; i < NR_THREADS; i++)
			pthread_join(th[i], NULL);
		*(pass ? probe_s : build_s) = now_s() - t0;
	}
	for (int i = 0; i < NR_THREADS; i++)
		sum += jobs[i].sum;
	return sum;
}

struct kernel_result {
	double build_s, probe_s;
	uint64_t sum;
	int status;
};

/* The plain table, in a child (so a memory cgroup can hold it). */
static void kernel_child(size_t size, int go, int out)
{
	struct kernel_result res = { 0 };
	struct table plain = { .nr = size / RECORD };
	char byte;

	if (read(go, &byte, 1) != 1)
		_exit(1);
	plain.rec = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (plain.rec == MAP_FAILED)
		res.status = -1;
	else
		res.sum = run(&plain, &res.build_s, &res.probe_s);
	if (write(out, &res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(1);
	_exit(0);
}

/*
 * Run the plain table under the kernel's swap: a memory cgroup limited to
 * @budget with zram behind it when we may, else no limit (said in @how).
 */
static int run_kernel(size_t size, size_t budget, struct kernel_result *res,
		      char *how, size_t how_len)
{
	struct bench_kernel_env *env = NULL;
	char why[256];
	int go[2], out[2], status;
	pid_t pid;
	int ret;

	ret = bench_kernel_check(BENCH_ENGINE_KERNEL_ZRAM, why, sizeof(why));
	if (!ret)
		ret = bench_kernel_setup(BENCH_ENGINE_KERNEL_ZRAM, budget, size, "/var/tmp",
					 &env, why, sizeof(why));
	if (ret)
		snprintf(how, how_len, "no limit (%s)", why);
	else
		snprintf(how, how_len, "memory cgroup limit %zu MiB + zram (lz4)", budget >> 20);
	if (pipe(go) || pipe(out))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		kernel_child(size, go[0], out[1]);
	ret = pid < 0 ? -1 : env ? bench_kernel_enter(env, pid) : 0;
	if (!ret && write(go[1], "g", 1) != 1)
		ret = -1;
	if (!ret && read(out[0], res, sizeof(*res)) != (ssize_t)sizeof(*res))
		ret = -1;
	close(go[1]);
	close(out[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	bench_kernel_teardown(env);
	return ret ? ret : res->status;
}

/*
 * --size and --budget read as upager-bench reads them (its job parser:
 * "512M", "25%", the same checks and messages). Returns 0 or 2.
 */
static int parse_args(int argc, char **argv, size_t *size, size_t *budget)
{
	struct bench_job job;
	char err[256];

	bench_job_defaults(&job);
	if (bench_job_set(&job, "size", "256M", err, sizeof(err)) ||
	    bench_job_set(&job, "budget", "25%", err, sizeof(err)))
		goto bad;
	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (strncmp(argv[i], "--", 2) || !eq ||
		    (strncmp(argv[i], "--size=", 7) && strncmp(argv[i], "--budget=", 9))) {
			snprintf(err, sizeof(err), "unknown argument %s", argv[i]);
			goto bad;
		}
		*eq = '\0';
		if (bench_job_set(&job, argv[i] + 2, eq + 1, err, sizeof(err)))
			goto bad;
	}
	if (bench_job_finish(&job, err, sizeof(err)))
		goto bad;
	*size = job.size;
	*budget = bench_job_budget(&job);
	if (*size >= (1 << 20) && !(*size & (*size - 1)))
		return 0;
	snprintf(err, sizeof(err), "size must be a power of two, at least 1M");
bad:
	fprintf(stderr, "upager-demo: %s\nusage: upager-demo [--size=256M] [--budget=25%%|BYTES]\n",
		err);
	return 2;
}

int main(int argc, char **argv)
{
	size_t size, budget;
	struct upg_runtime *rt;
	struct upg_region *region;
	struct upg_stats st = { .size = sizeof(st) };
	struct kernel_result k;
	struct upg_options o;
	struct table managed;
	char how[512];
	double ub, up;
	uint64_t usum;
	int ret;

	if (parse_args(argc, argv, &size, &budget))
		return 2;
	managed.nr = size / RECORD;
	printf("key-value table of %zu MiB (%zu records), %d threads, %u zipf(0.99) "
	       "lookups, budget %zu MiB\n", size >> 20, managed.nr, NR_THREADS,
	       NR_LOOKUPS, budget >> 20);
	fflush(stdout);

	if (run_kernel(size, budget, &k, how, sizeof(how))) {
		fprintf(stderr, "upager-demo: the kernel side failed\n");
		return 1;
	}

	upg_options_init(&o);		/* defaults + UPAGER_* */
	o.budget = budget < size ? budget : 0;
	ret = upg_runtime_create(&o, &rt);
	if (ret) {
		fprintf(stderr, "upager-demo: %s\n", strerror(-ret));
		return 1;
	}
	ret = upg_region_create(rt, size, &region);
	if (ret) {
		fprintf(stderr, "upager-demo: region: %s\n", strerror(-ret));
		return 1;
	}
	managed.rec = upg_region_addr(region);
	usum = run(&managed, &ub, &up);
	upg_stats_get(rt, &st);
	upg_region_destroy(region);
	upg_runtime_destroy(rt);

	printf("%-8s %10s %10s  %-16s  %s\n", "memory", "build s", "probe s", "checksum", "under");
	printf("%-8s %10.3f %10.3f  %016llx  %s\n", "kernel", k.build_s, k.probe_s,
	       (unsigned long long)k.sum, how);
	printf("%-8s %10.3f %10.3f  %016llx  upager budget %zu MiB + zpool (lz4)\n", "upager",
	       ub, up, (unsigned long long)usum, budget >> 20);
	printf("upager: %llu faults, %llu blocks compressed, %llu brought back, "
	       "zpool %.1f MiB (%.2fx), fills waited %.2f s in all\n",
	       (unsigned long long)st.faults, (unsigned long long)st.evictions,
	       (unsigned long long)st.swapins, (double)st.zpool_bytes / (1 << 20),
	       st.zpool_stored_bytes ? (double)st.zpool_orig_bytes / (double)st.zpool_stored_bytes : 0,
	       (double)st.stall_ns / 1e9);
	if (k.sum != usum) {
		fprintf(stderr, "upager-demo: CHECKSUMS DIFFER\n");
		return 1;
	}
	printf("checksums match\n");
	return 0;
}
