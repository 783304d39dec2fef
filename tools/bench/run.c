/*
 * The access loop. Threads share one region; each thread walks its own
 * slice for sequential jobs, or draws units from the job's distribution
 * over the whole region for random ones. Reads sum every word of the unit
 * (the data is really read, as an application would); writes copy a page
 * of the job's content from a small pool, so what the engines compress
 * keeps the job's compressibility. One access in BENCH_LAT_SAMPLE is timed.
 *
 * The loop itself must not be what is measured: per access it does one
 * draw, one branch on the kind, the access, and a counter bump; the clock
 * is read only for samples and every 256 accesses for the phase.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "content.h"
#include "dist.h"
#include "run.h"

#define POOL_PAGES	64	/* content pages that writes copy from */
#define CHECK_EVERY	256	/* accesses between looks at the phase */

enum phase { PHASE_RAMP, PHASE_MEASURE, PHASE_STOP };

struct thread_ctx {
	pthread_t thread;
	const struct bench_job *job;
	const struct bench_dist *dist;
	uint8_t *base;
	const uint8_t *pool;
	unsigned int id;
	int *phase;
	uint64_t first_unit, nr_units;	/* sequential slice */
	uint64_t quota;			/* measured accesses; 0 = until STOP */
	/* Results, read by the controller (relaxed atomics: progress only). */
	uint64_t ops;
	uint64_t sum;
	uint64_t lat_hist[UPG_LAT_BUCKETS];
	uint64_t lat_min, lat_max, lat_samples;
} __attribute__((aligned(64)));

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t read_unit(const uint8_t *p, uint64_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t s = 0;

	for (uint64_t i = 0; i < len / 8; i++)
		s += w[i];
	return s;
}

static void write_unit(uint8_t *p, uint64_t len, const uint8_t *pool, uint64_t unit)
{
	for (uint64_t off = 0; off < len; off += BENCH_PAGE)
		memcpy(p + off, pool + ((unit + off / BENCH_PAGE) % POOL_PAGES) * BENCH_PAGE,
		       BENCH_PAGE);
}

static void record_lat(struct thread_ctx *t, uint64_t ns)
{
	t->lat_hist[upg_lat_bucket(ns)]++;
	if (!t->lat_samples || ns < t->lat_min)
		t->lat_min = ns;
	if (ns > t->lat_max)
		t->lat_max = ns;
	t->lat_samples++;
}

static bool is_read(const struct bench_job *job, struct bench_rng *rng)
{
	switch (job->rw) {
	case BENCH_READ:
	case BENCH_RANDREAD:
		return true;
	case BENCH_WRITE:
	case BENCH_RANDWRITE:
		return false;
	default:
		return bench_rng_next(rng) % 100 < job->rwmixread;
	}
}

static void *thread_main(void *arg)
{
	struct thread_ctx *t = arg;
	const struct bench_job *job = t->job;
	bool random = bench_rw_is_random(job->rw);
	uint64_t next_seq = 0, measured = 0, n = 0, next_sample;
	struct bench_rng rng;
	int phase;

	bench_rng_seed(&rng, job->seed * 1000003u + t->id);
	/*
	 * One access in BENCH_LAT_SAMPLE on average, at random gaps: a fixed
	 * stride would sample the same page of every fill block on
	 * sequential jobs (only the faults, or none of them).
	 */
	next_sample = 1 + bench_rng_next(&rng) % (2 * BENCH_LAT_SAMPLE - 1);
	while ((phase = __atomic_load_n(t->phase, __ATOMIC_ACQUIRE)) != PHASE_STOP) {
		for (unsigned int i = 0; i < CHECK_EVERY; i++, n++) {
			uint64_t unit = random ? bench_dist_next(t->dist, &rng)
					       : t->first_unit + next_seq++ % t->nr_units;
			uint8_t *p = t->base + unit * job->bs;
			bool sample = n == next_sample && phase == PHASE_MEASURE;
			uint64_t t0 = sample ? now_ns() : 0;

			if (n == next_sample)
				next_sample += 1 + bench_rng_next(&rng) % (2 * BENCH_LAT_SAMPLE - 1);

			if (is_read(job, &rng))
				t->sum += read_unit(p, job->bs);
			else
				write_unit(p, job->bs, t->pool, unit);
			if (sample)
				record_lat(t, now_ns() - t0);
		}
		if (phase != PHASE_MEASURE)
			continue;
		measured += CHECK_EVERY;
		__atomic_store_n(&t->ops, measured, __ATOMIC_RELAXED);
		if (t->quota && measured >= t->quota)
			break;
	}
	return NULL;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Faults so far: upager's (@rt), else the kernel's major faults. */
static uint64_t fault_count(struct upg_runtime *rt)
{
	struct upg_stats st = { .size = sizeof(st) };
	struct rusage ru;

	if (rt)
		return upg_stats_get(rt, &st) ? 0 : st.faults;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_majflt;
}

/* busy and total jiffies of all CPUs, from /proc/stat's first line. */
static void cpu_jiffies(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*busy = *total - v[3] - v[4];	/* less idle and iowait */
	}
	fclose(f);
}

/* A "Key:   123 kB" line of /proc/self/status, in bytes. */
static uint64_t status_kb(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	uint64_t v = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtoull(line + klen + 1, NULL, 10) * 1024;
			break;
		}
	fclose(f);
	return v;
}

/*
 * The region under test. ram and the kernel engines get plain anonymous
 * memory (the kernel ones live in the parent's memory cgroup); upager gets
 * a region of a runtime with default options plus UPAGER_* variables, and
 * the job's budget (none when the budget is the whole size).
 */
struct target {
	uint8_t *base;
	struct upg_runtime *rt;
	struct upg_region *region;
};

static int target_map(const struct bench_job *job, enum bench_engine e,
		      struct target *t)
{
	struct upg_options o;
	int ret;

	*t = (struct target){ 0 };
	if (e != BENCH_ENGINE_UPAGER) {
		/*
		 * ram has no limit: let the kernel fault it all in at once,
		 * which on this VM is 20x cheaper than a fault a page. Not
		 * under a cgroup limit: zero pages would be swapped out only
		 * to be swapped in by the populate's writes.
		 */
		int populate = e == BENCH_ENGINE_RAM ? MAP_POPULATE : 0;
		void *p = mmap(NULL, job->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | populate, -1, 0);

		if (p == MAP_FAILED)
			return -errno;
		t->base = p;
		return 0;
	}
	/* Defaults and UPAGER_* variables; the job's budget over them. */
	upg_options_init(&o);
	o.budget = bench_job_budget(job) < job->size ? bench_job_budget(job) : 0;
	ret = upg_runtime_create(&o, &t->rt);
	if (ret)
		return ret;
	ret = upg_region_create(t->rt, job->size, &t->region);
	if (ret) {
		upg_runtime_destroy(t->rt);
		return ret;
	}
	t->base = upg_region_addr(t->region);
	return 0;
}

static void target_unmap(const struct bench_job *job, struct target *t)
{
	if (t->rt) {
		upg_region_destroy(t->region);
		upg_runtime_destroy(t->rt);
	} else if (t->base) {
		munmap(t->base, job->size);
	}
}

struct populate_part {
	pthread_t thread;
	const struct bench_job *job;
	uint8_t *base;
	uint64_t first, last;	/* pages */
	bool thread_started;
};

static void *populate_part(void *arg)
{
	struct populate_part *p = arg;

	for (uint64_t pg = p->first; pg < p->last; pg++)
		bench_content_fill(p->job->content, p->job->seed, pg, p->base + pg * BENCH_PAGE);
	return NULL;
}

/*
 * Write every page's content, with the job's threads: first touch is most
 * of the cost (a fault a page), and every engine pays it the same way.
 */
static void populate(const struct bench_job *job, uint8_t *base)
{
	uint64_t pages = job->size / BENCH_PAGE;
	unsigned int n = job->numjobs;
	struct populate_part *parts = calloc(n, sizeof(*parts));

	if (!parts)
		n = 1;
	for (unsigned int i = 0; i < n; i++) {
		struct populate_part one = { .job = job, .base = base,
			.first = pages * i / n, .last = pages * (i + 1) / n };

		if (!parts) {
			populate_part(&one);
			return;
		}
		parts[i] = one;
		if (pthread_create(&parts[i].thread, NULL, populate_part, &parts[i]))
			populate_part(&parts[i]);	/* no thread: do it here */
		else
			parts[i].thread_started = true;
	}
	for (unsigned int i = 0; i < n; i++)
		if (parts[i].thread_started)
			pthread_join(parts[i].thread, NULL);
	free(parts);
}

/* Let every thread's quota add up to loops passes over the region. */
static void plan_threads(const struct bench_job *job, struct thread_ctx *th,
			 uint64_t nr_units)
{
	for (unsigned int i = 0; i < job->numjobs; i++) {
		uint64_t first = nr_units * i / job->numjobs;
		uint64_t last = nr_units * (i + 1) / job->numjobs;

		th[i].first_unit = first;
		th[i].nr_units = last > first ? last - first : 1;
		if (job->time_based)
			th[i].quota = 0;
		else
			th[i].quota = (bench_rw_is_random(job->rw) ? nr_units / job->numjobs
								   : th[i].nr_units) *
				      job->loops;
	}
}

static uint64_t total_ops(const struct thread_ctx *th, unsigned int n)
{
	uint64_t ops = 0;

	for (unsigned int i = 0; i < n; i++)
		ops += __atomic_load_n(&th[i].ops, __ATOMIC_RELAXED);
	return ops;
}

static bool all_done(const struct thread_ctx *th, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (!th[i].quota || __atomic_load_n(&th[i].ops, __ATOMIC_RELAXED) < th[i].quota)
			return false;
	return true;
}

/* Sleep until the runtime is over or every quota is met; print progress. */
static void wait_measured(const struct bench_job *job, struct thread_ctx *th,
			  enum bench_engine e, bool progress, uint64_t start)
{
	uint64_t deadline = job->runtime_ms ? start + job->runtime_ms * 1000000u : UINT64_MAX;
	uint64_t last_print = start, last_ops = 0;

	for (;;) {
		uint64_t now = now_ns();

		if (now >= deadline || all_done(th, job->numjobs))
			return;
		usleep(10000);
		if (progress && now - last_print >= 1000000000u) {
			uint64_t ops = total_ops(th, job->numjobs);

			fprintf(stderr, "\r%s %s: %5.1fs",
				job->name, bench_engine_name(e), (double)(now - start) / 1e9);
			if (job->runtime_ms)
				fprintf(stderr, " / %.0fs", (double)job->runtime_ms / 1e3);
			fprintf(stderr, "  %.0f ops/s   ",
				(double)(ops - last_ops) * 1e9 / (double)(now - last_print));
			last_print = now;
			last_ops = ops;
		}
	}
}

static void gather(const struct bench_job *job, struct thread_ctx *th,
		   struct bench_result *res)
{
	for (unsigned int i = 0; i < job->numjobs; i++) {
		res->ops += th[i].ops;
		for (unsigned int b = 0; b < UPG_LAT_BUCKETS; b++)
			res->lat_hist[b] += th[i].lat_hist[b];
		if (th[i].lat_samples && (!res->lat_samples || th[i].lat_min < res->lat_min))
			res->lat_min = th[i].lat_min;
		if (th[i].lat_max > res->lat_max)
			res->lat_max = th[i].lat_max;
		res->lat_samples += th[i].lat_samples;
	}
	res->bytes = res->ops * job->bs;
}

static int run_threads(const struct bench_job *job, enum bench_engine e,
		       const struct target *t, const uint8_t *pool, struct bench_result *res,
		       bool progress)
{
	uint64_t nr_units = job->size / job->bs, start, busy0, tot0, busy1, tot1;
	struct thread_ctx *th = calloc(job->numjobs, sizeof(*th));
	int phase = job->ramp_ms ? PHASE_RAMP : PHASE_MEASURE;
	struct bench_dist dist;
	double cpu0;
	int ret;

	if (!th)
		return -ENOMEM;
	ret = bench_dist_init(&dist, job->dist, job->dist_param, nr_units);
	if (ret)
		goto out;
	plan_threads(job, th, nr_units);
	for (unsigned int i = 0; i < job->numjobs; i++) {
		th[i].job = job;
		th[i].dist = &dist;
		th[i].base = t->base;
		th[i].pool = pool;
		th[i].id = i;
		th[i].phase = &phase;
		pthread_create(&th[i].thread, NULL, thread_main, &th[i]);
	}
	if (job->ramp_ms)
		usleep((useconds_t)(job->ramp_ms * 1000));
	/*
	 * Faults from the end of the ramp, as the ops. Taken before the
	 * switch: upager's statistics wait for its readers (milliseconds
	 * under load), which must not fall inside the timed run.
	 */
	res->faults = fault_count(t->rt);
	if (job->ramp_ms)
		__atomic_store_n(&phase, PHASE_MEASURE, __ATOMIC_RELEASE);
	cpu0 = cpu_seconds();
	cpu_jiffies(&busy0, &tot0);
	start = now_ns();
	wait_measured(job, th, e, progress, start);
	__atomic_store_n(&phase, PHASE_STOP, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < job->numjobs; i++)
		pthread_join(th[i].thread, NULL);
	res->run_sec = (double)(now_ns() - start) / 1e9;
	res->cpu_sec = cpu_seconds() - cpu0;
	cpu_jiffies(&busy1, &tot1);
	res->sys_busy_pct = tot1 > tot0 ? 100.0 * (double)(busy1 - busy0) / (double)(tot1 - tot0) : 0;
	res->faults = fault_count(t->rt) - res->faults;
	if (progress)
		fprintf(stderr, "\r%*s\r", 60, "");
	gather(job, th, res);
out:
	free(th);
	return ret;
}

static uint8_t *make_pool(const struct bench_job *job)
{
	uint8_t *pool = malloc((size_t)POOL_PAGES * BENCH_PAGE);

	/* Pages other than the populated ones: writes change the data. */
	for (unsigned int i = 0; pool && i < POOL_PAGES; i++)
		bench_content_fill(job->content, job->seed ^ 0x9e3779b97f4a7c15ull, i,
				   pool + (size_t)i * BENCH_PAGE);
	return pool;
}

static void measure_one(const struct bench_job *job, enum bench_engine e,
			struct target *t, const uint8_t *pool,
			struct bench_result *res, bool progress)
{
	struct upg_stats st = { .size = sizeof(st) };

	res->status = run_threads(job, e, t, pool, res, progress);
	res->ram_resident = status_kb("VmRSS");
	res->ram_meta = status_kb("VmPTE");
	if (t->rt && !upg_stats_get(t->rt, &st)) {
		/*
		 * VmRSS holds the zpool's arenas too, and with a swap store
		 * the tier's tables and write batches (tier_bytes holds them
		 * all; the state tables stay counted there): split the store
		 * out.
		 */
		size_t store = st.tier_bytes > st.zpool_bytes ? st.tier_bytes : st.zpool_bytes;

		res->ram_store = store;
		res->ram_resident -= res->ram_resident > store ? store : 0;
		if (st.zpool_stored_bytes)
			res->compr_ratio = (double)st.zpool_orig_bytes /
					   (double)st.zpool_stored_bytes;
	}
}

static void start_result(const struct bench_job *job, enum bench_engine e,
			 struct bench_result *res)
{
	memset(res, 0, sizeof(*res));
	res->engine = e;
	res->size = job->size;
	res->budget = e == BENCH_ENGINE_RAM ? job->size : bench_job_budget(job);
}

/* Every job of the group fails with @status, each reported. */
static void fail_group(const struct bench_job *const *jobs, size_t nr,
		       enum bench_engine e, struct bench_result *res, int status,
		       const char *what,
		       void (*measured)(struct bench_result *res, void *arg), void *arg)
{
	for (size_t i = 0; i < nr; i++) {
		start_result(jobs[i], e, res);
		res->status = status;
		snprintf(res->note, sizeof(res->note), "%s: %s", what, strerror(-status));
		if (measured)
			measured(res, arg);
	}
}

void bench_run_group(const struct bench_job *const *jobs, size_t nr,
		     enum bench_engine e, struct bench_result *res, bool progress,
		     void (*populated)(void *arg),
		     void (*measured)(struct bench_result *res, void *arg), void *arg)
{
	const struct bench_job *first = jobs[0];
	double populate_sec;
	struct target t;
	uint8_t *pool = NULL;
	uint64_t t0;
	int ret;

	start_result(first, e, res);
	ret = target_map(first, e, &t);
	if (ret) {
		if (populated)
			populated(arg);	/* the parent waits for it */
		fail_group(jobs, nr, e, res, ret, "cannot map the region", measured, arg);
		return;
	}
	t0 = now_ns();
	populate(first, t.base);
	if (populated)
		populated(arg);
	populate_sec = (double)(now_ns() - t0) / 1e9;
	for (size_t i = 0; i < nr; i++) {
		start_result(jobs[i], e, res);
		/* Writes copy from a pool of the job's own content. */
		free(pool);
		pool = make_pool(jobs[i]);
		if (!pool) {
			res->status = -ENOMEM;
		} else {
			res->populate_sec = i == 0 ? populate_sec : 0;
			res->region_reused = i > 0;
			measure_one(jobs[i], e, &t, pool, res, progress);
		}
		if (measured)
			measured(res, arg);
	}
	target_unmap(first, &t);
	free(pool);
}

uint64_t bench_lat_quantile_ns(const struct bench_result *res, double q)
{
	return upg_lat_quantile(res->lat_hist, q);
}
